"""CUHK02 (Li and Wang, CVPR 2013): 1,816 identities over 5 camera pairs P1-P5 (971, 306, 107, 193, 239).

``<root>/cuhk02/Dataset/P<k>/{cam1,cam2}/<pid>_<...>.png``. Protocol (Torchreid): P1-P4 train (pids
relabelled, numbered on after each pair: 1,577 ids), P5 tests: ``cam1`` is the query, ``cam2`` the gallery
(239 ids each). Each camera of each pair gets its own camid, in order (P1 cam1 = 0 ... P5 cam2 = 9).
"""
import logging
import os.path as osp
from typing import Any, List, Tuple

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import DatasetLayoutError, fetch_dataset, list_files

logger = logging.getLogger(__name__)

__all__ = ['CUHK02']

_CAMERA_PAIRS = ('P1', 'P2', 'P3', 'P4', 'P5')
_TEST_PAIR = 'P5'
_MANUAL = ('CUHK02 is released on request by its authors (http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html): '
           'extract it so that {dataset_dir}/Dataset/P1 ... P5, each with cam1 and cam2, exist.')


class CUHK02(ImageDataset):
    """CUHK02: P1-P4 train, P5 query (cam1) / gallery (cam2)."""
    dataset_dir = 'cuhk02'
    dataset_url = None

    def __init__(self, root: str = '', **kwargs: Any):
        self.locate(root, kwargs)
        self.data_dir = osp.join(self.dataset_dir, 'Dataset')
        required = [osp.join(self.data_dir, pair, cam) for pair in _CAMERA_PAIRS for cam in ('cam1', 'cam2')]
        fetch_dataset(type(self).__name__, self.dataset_dir, required, self.dataset_url, False,
                      _MANUAL.format(dataset_dir=self.dataset_dir))
        train, query, gallery = [], [], []
        camid = 0
        for pair in _CAMERA_PAIRS:
            cams = [self._parse(osp.join(self.data_dir, pair, cam)) for cam in ('cam1', 'cam2')]
            if pair == _TEST_PAIR:
                query = [(path, int(pid), camid) for path, pid in cams[0]]
                gallery = [(path, int(pid), camid + 1) for path, pid in cams[1]]
            else:
                offset = len({r[1] for r in train})
                relabel = {pid: offset + i for i, pid in enumerate(sorted({pid for c in cams for _, pid in c}))}
                for k, cam in enumerate(cams):
                    train += [(path, relabel[pid], camid + k) for path, pid in cam]
            camid += 2
        super().__init__(train, query, gallery, **kwargs)

    @staticmethod
    def _parse(dir_path: str) -> List[Tuple[str, str]]:
        """``[(path, pid string)]``: the pid is the name's first ``_`` field (digits)."""
        records, bad = [], []
        for name in list_files(dir_path, ('.png',)):
            pid = name.split('_')[0]
            if '_' not in name or not pid.isdigit():
                bad.append(osp.join(dir_path, name))
                continue
            records.append((osp.join(dir_path, name), pid))
        if bad:
            raise DatasetLayoutError(f'CUHK02: {summarise_paths(bad)} break the naming rule <pid>_<...>.png')
        return records
