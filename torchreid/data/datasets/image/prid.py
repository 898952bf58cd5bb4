"""PRID (single-shot PRID2011; Hirzer et al., SCIA 2011): two views, 385 (A) and 749 (B) identities.

``<root>/prid2011/prid_2011/single_shot/cam_a/person_<pid:04d>.png`` and ``cam_b/...``. Only persons 1-200
appear in both views (persons with the same number above 200 are different people). Splits (Torchreid):
10 random ones in ``splits_single_shot.json``: 100 of the 200 shared persons train (both views, relabelled),
the other 100 are queries (view A) matched against view B, whose gallery also holds every person above 200.
Counts: train 100 ids / 200 images; query 100; gallery 649.
"""
import logging
import os.path as osp
import random
import re
from typing import Any, Dict, List

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import (SPLIT_SEED, DatasetLayoutError, fetch_dataset, list_files, read_split_file, select_split,
                         write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['PRID']

_NAME = re.compile(r'^person_(\d{4})\.png$')
_NUM_SHARED = 200  # persons 1..200 are seen by both cameras
_NUM_SPLITS = 10
_MANUAL = ('Get prid_2011.zip (https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/PRID11/) and '
           'extract it into {dataset_dir} so that {dataset_dir}/prid_2011/single_shot/cam_a and cam_b exist.')


class PRID(ImageDataset):
    """PRID single-shot: 2 cameras, 10 splits (``split_id``)."""
    dataset_dir = 'prid2011'
    dataset_url = None

    def __init__(self, root: str = '', split_id: int = 0, **kwargs: Any):
        self.locate(root, kwargs)
        self.cam_a_dir = osp.join(self.dataset_dir, 'prid_2011', 'single_shot', 'cam_a')
        self.cam_b_dir = osp.join(self.dataset_dir, 'prid_2011', 'single_shot', 'cam_b')
        self.split_path = osp.join(self.dataset_dir, 'splits_single_shot.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.cam_a_dir, self.cam_b_dir], self.dataset_url,
                      False, _MANUAL.format(dataset_dir=self.dataset_dir))
        cam_a, cam_b = self._pids(self.cam_a_dir), self._pids(self.cam_b_dir)
        missing = [f'person_{pid:04d}.png' for pid in range(1, _NUM_SHARED + 1) if pid not in cam_a or pid not in cam_b]
        if missing:
            raise DatasetLayoutError(f'PRID: persons 1-{_NUM_SHARED} must be in both {self.cam_a_dir} and '
                                     f'{self.cam_b_dir}; missing: {summarise_paths(missing)}')
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'test'))
        relabel = {int(pid): label for label, pid in enumerate(split['train'])}
        train = [(self._path(d, pid), relabel[pid], cam) for pid in relabel
                 for d, cam in ((self.cam_a_dir, 0), (self.cam_b_dir, 1))]
        test = [int(pid) for pid in split['test']]
        query = [(self._path(self.cam_a_dir, pid), pid, 0) for pid in test]
        extra = sorted(pid for pid in cam_b if pid > _NUM_SHARED)
        gallery = [(self._path(self.cam_b_dir, pid), pid, 1) for pid in test + extra]
        super().__init__(train, query, gallery, **kwargs)

    @staticmethod
    def _path(dir_path: str, pid: int) -> str:
        return osp.join(dir_path, f'person_{pid:04d}.png')

    @staticmethod
    def _pids(dir_path: str) -> set:
        names = list_files(dir_path, ('.png',))
        bad = [osp.join(dir_path, n) for n in names if not _NAME.match(n)]
        if bad:
            raise DatasetLayoutError(f'PRID: {summarise_paths(bad)} break the naming rule person_<pid:04d>.png')
        return {int(_NAME.match(n).group(1)) for n in names}

    def prepare_split(self) -> None:
        """Draw and write the 10 splits (train / test person numbers) if the split file does not exist."""
        if osp.exists(self.split_path):
            return
        rng = random.Random(SPLIT_SEED)
        splits: List[Dict[str, Any]] = []
        shared = list(range(1, _NUM_SHARED + 1))
        for _ in range(_NUM_SPLITS):
            train = sorted(rng.sample(shared, _NUM_SHARED // 2))
            splits.append({'train': train, 'test': [pid for pid in shared if pid not in set(train)]})
        write_split_file(self.split_path, splits)
