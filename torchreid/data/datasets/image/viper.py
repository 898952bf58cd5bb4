"""VIPeR (Gray et al., PETS 2007): 632 identities, one image per camera (``cam_a``, ``cam_b``).

``<root>/viper/VIPeR/cam_a/*.bmp`` and ``cam_b/*.bmp``: the i-th image of each folder (sorted by name) shows
the same person. Splits (Torchreid): 10 random halvings of the identities (316 train / 316 test), each used
twice: query ``cam_a`` / gallery ``cam_b``, then the reverse, giving 20 splits in ``<root>/viper/splits.json``
(``split_id`` 0..19). Train and test pids are both relabelled 0..315.
"""
import logging
import os.path as osp
import random
from typing import Any, Dict, List

from ..dataset import ImageDataset
from .zoo_common import (SPLIT_SEED, DatasetLayoutError, fetch_dataset, list_files, read_split_file,
                         records_from_json, records_to_json, select_split, write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['VIPeR']

_NUM_SHUFFLES = 10
_MANUAL = ('Get VIPeR.v1.0.zip (https://vision.soe.ucsc.edu/node/178) and extract it into {dataset_dir} so that '
           '{dataset_dir}/VIPeR/cam_a and cam_b exist.')


class VIPeR(ImageDataset):
    """VIPeR: 2 cameras, 20 splits (``split_id``)."""
    dataset_dir = 'viper'
    dataset_url = 'http://users.soe.ucsc.edu/~manduchi/VIPeR.v1.0.zip'

    def __init__(self, root: str = '', split_id: int = 0, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        self.cam_a_dir = osp.join(self.dataset_dir, 'VIPeR', 'cam_a')
        self.cam_b_dir = osp.join(self.dataset_dir, 'VIPeR', 'cam_b')
        self.split_path = osp.join(self.dataset_dir, 'splits.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.cam_a_dir, self.cam_b_dir], self.dataset_url,
                      download, _MANUAL.format(dataset_dir=self.dataset_dir))
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'query', 'gallery'))
        train, query, gallery = (records_from_json(split[f], self.dataset_dir, self.split_path, f)
                                 for f in ('train', 'query', 'gallery'))
        super().__init__(train, query, gallery, **kwargs)

    def prepare_split(self) -> None:
        """Draw and write the 20 splits if ``splits.json`` does not exist."""
        if osp.exists(self.split_path):
            return
        cam_a = [osp.join(self.cam_a_dir, n) for n in list_files(self.cam_a_dir, ('.bmp',))]
        cam_b = [osp.join(self.cam_b_dir, n) for n in list_files(self.cam_b_dir, ('.bmp',))]
        if len(cam_a) != len(cam_b) or len(cam_a) < 2:
            raise DatasetLayoutError(f'VIPeR: {self.cam_a_dir} has {len(cam_a)} .bmp image(s) and {self.cam_b_dir} '
                                     f'{len(cam_b)}; each identity needs one image in each (632 in the release)')
        rng = random.Random(SPLIT_SEED)
        num_pids = len(cam_a)
        splits: List[Dict[str, Any]] = []
        for _ in range(_NUM_SHUFFLES):
            order = list(range(num_pids))
            rng.shuffle(order)
            train_idx, test_idx = order[:num_pids // 2], order[num_pids // 2:]
            train = [rec for pid, i in enumerate(train_idx) for rec in ((cam_a[i], pid, 0), (cam_b[i], pid, 1))]
            test_a = [(cam_a[i], pid, 0) for pid, i in enumerate(test_idx)]
            test_b = [(cam_b[i], pid, 1) for pid, i in enumerate(test_idx)]
            for query, gallery in ((test_a, test_b), (test_b, test_a)):
                splits.append({'train': records_to_json(train, self.dataset_dir),
                               'query': records_to_json(query, self.dataset_dir),
                               'gallery': records_to_json(gallery, self.dataset_dir),
                               'num_train_pids': len(train_idx), 'num_query_pids': len(test_idx),
                               'num_gallery_pids': len(test_idx)})
        write_split_file(self.split_path, splits)
