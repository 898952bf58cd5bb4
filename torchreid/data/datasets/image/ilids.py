"""QMUL-iLIDS (Zheng et al., BMVC 2009): 119 identities, 476 images from airport cameras.

``<root>/ilids/i-LIDS_Pedestrian/Persons/<pid:04d><image:03d>.jpg``; the image number stands in for the
camera (the release gives none). Splits (Torchreid): 10 random ones in ``splits.json``: half of the
identities (59) train with all their images (relabelled); for each of the other 60, two random images,
one query and one gallery (pids kept). Counts: train 59 ids; query 60; gallery 60.
"""
import logging
import os.path as osp
import random
import re
from collections import defaultdict
from typing import Any, Dict, List, Optional

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import (SPLIT_SEED, DatasetLayoutError, SplitFileError, fetch_dataset, list_files,
                         read_split_file, select_split, write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['iLIDS']

_NAME = re.compile(r'^(\d{4})(\d{3})\.jpg$')
_NUM_SPLITS = 10
_MANUAL = ('Get i-LIDS_Pedestrian.tgz (http://www.eecs.qmul.ac.uk/~jason/data/i-LIDS_Pedestrian.tgz) and extract '
           'it into {dataset_dir} so that {dataset_dir}/i-LIDS_Pedestrian/Persons/*.jpg exist.')


class iLIDS(ImageDataset):
    """QMUL-iLIDS: 10 random splits (``split_id``)."""
    dataset_dir = 'ilids'
    dataset_url = 'http://www.eecs.qmul.ac.uk/~jason/data/i-LIDS_Pedestrian.tgz'

    def __init__(self, root: str = '', split_id: int = 0, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        self.data_dir = osp.join(self.dataset_dir, 'i-LIDS_Pedestrian', 'Persons')
        self.split_path = osp.join(self.dataset_dir, 'splits.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.data_dir], self.dataset_url, download,
                      _MANUAL.format(dataset_dir=self.dataset_dir))
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'query', 'gallery'))
        train_pids = sorted({self._pid_cam(n)[0] for n in split['train']})
        relabel = {pid: label for label, pid in enumerate(train_pids)}
        train = self._records(split['train'], relabel)
        query = self._records(split['query'])
        gallery = self._records(split['gallery'])
        super().__init__(train, query, gallery, **kwargs)

    def _pid_cam(self, name: Any) -> tuple:
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None:
            raise SplitFileError(f'{self.split_path}: {name!r} is not an iLIDS image name <pid:04d><image:03d>.jpg')
        return int(match.group(1)), int(match.group(2)) - 1

    def _records(self, names: List[str], relabel: Optional[Dict[int, int]] = None) -> List[tuple]:
        records = []
        for name in names:
            pid, camid = self._pid_cam(name)
            records.append((osp.join(self.data_dir, name), relabel[pid] if relabel else pid, camid))
        return records

    def prepare_split(self) -> None:
        """Draw and write the 10 splits (image names) if ``splits.json`` does not exist."""
        if osp.exists(self.split_path):
            return
        names = list_files(self.data_dir, ('.jpg',))
        bad = [osp.join(self.data_dir, n) for n in names if not _NAME.match(n)]
        if bad:
            raise DatasetLayoutError(f'iLIDS: {summarise_paths(bad)} break the naming rule <pid:04d><image:03d>.jpg')
        by_pid: Dict[int, List[str]] = defaultdict(list)
        for name in names:
            by_pid[int(name[:4])].append(name)
        pids = sorted(by_pid)
        rng = random.Random(SPLIT_SEED)
        splits = []
        for _ in range(_NUM_SPLITS):
            order = list(pids)
            rng.shuffle(order)
            num_train = int(len(pids) * 0.5)
            train_pids, test_pids = order[:num_train], order[num_train:]
            too_few = [pid for pid in test_pids if len(by_pid[pid]) < 2]
            if too_few:
                raise DatasetLayoutError(f'iLIDS: identities {too_few[:10]} have fewer than 2 images in '
                                         f'{self.data_dir}; a test identity needs one query and one gallery image')
            query, gallery = [], []
            for pid in test_pids:
                first, second = rng.sample(by_pid[pid], 2)
                query.append(first)
                gallery.append(second)
            splits.append({'train': [n for pid in train_pids for n in by_pid[pid]], 'query': query,
                           'gallery': gallery})
        write_split_file(self.split_path, splits)
