"""DukeMTMC-reID (Zheng et al., ICCV 2017): Market-1501's layout and naming on the DukeMTMC videos.

``<root>/dukemtmc-reid/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}/<pid>_c<cam>_f<frame>.jpg``,
8 cameras. Counts (Torchreid): train 702 ids / 16,522 images / 8 cameras; query 702 ids / 2,228 images;
gallery 1,110 ids / 17,661 images (408 of them distractor identities).
"""
import logging
import os.path as osp
import re
from typing import Any, List, Tuple

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import DatasetLayoutError, fetch_dataset, list_files

logger = logging.getLogger(__name__)

__all__ = ['DukeMTMCreID']

_NAME = re.compile(r'^(\d+)_c(\d+)_f\d+\.jpg$')
_MANUAL = ('Get DukeMTMC-reID.zip (https://github.com/layumi/DukeMTMC-reID_evaluation; the original '
           'http://vision.cs.duke.edu/DukeMTMC/ is offline) and extract it so that '
           '{dataset_dir}/DukeMTMC-reID/bounding_box_train, query and bounding_box_test exist.')


class DukeMTMCreID(ImageDataset):
    """DukeMTMC-reID: 702 train ids, 1,110 test ids (query 702), 8 cameras; Market-style evaluation."""
    dataset_dir = 'dukemtmc-reid'
    dataset_url = 'http://vision.cs.duke.edu/DukeMTMC/data/misc/DukeMTMC-reID.zip'
    eval_metric = 'default'

    def __init__(self, root: str = '', download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        data_dir = osp.join(self.dataset_dir, 'DukeMTMC-reID')
        self.train_dir = osp.join(data_dir, 'bounding_box_train')
        self.query_dir = osp.join(data_dir, 'query')
        self.gallery_dir = osp.join(data_dir, 'bounding_box_test')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.train_dir, self.query_dir, self.gallery_dir],
                      self.dataset_url, download, _MANUAL.format(dataset_dir=self.dataset_dir))
        train = self.process_dir(self.train_dir, relabel=True)
        query = self.process_dir(self.query_dir)
        gallery = self.process_dir(self.gallery_dir)
        super().__init__(train, query, gallery, **kwargs)

    @staticmethod
    def process_dir(dir_path: str, relabel: bool = False) -> List[Tuple[str, int, int, int]]:
        """Records of one folder: pid and camera (1..8, stored 0-based) from each name."""
        parsed, bad = [], []
        for name in list_files(dir_path, ('.jpg',)):
            match = _NAME.match(name)
            if match is None or not 1 <= int(match.group(2)) <= 8:
                bad.append(osp.join(dir_path, name))
                continue
            parsed.append((osp.join(dir_path, name), int(match.group(1)), int(match.group(2)) - 1))
        if bad:
            raise DatasetLayoutError(f'DukeMTMCreID: {summarise_paths(bad)} break the naming rule '
                                     '<pid>_c<cam>_f<frame>.jpg with cam in 1..8')
        if not parsed:
            raise FileNotFoundError(f'DukeMTMCreID: no .jpg images in {dir_path}')
        if relabel:
            pid_map = {pid: i for i, pid in enumerate(sorted({p[1] for p in parsed}))}
            parsed = [(path, pid_map[pid], camid) for path, pid, camid in parsed]
        return [(path, pid, camid, 0) for path, pid, camid in parsed]
