"""SenseReID (Zhao et al., CVPR 2017): a test-only set, 522 identities (query 1,040 / gallery 3,388 images).

``<root>/sensereid/SenseReID/test_probe/<pid>_<cam>.jpg`` and ``test_gallery/...``. Pids are relabelled
0..N-1 over the gallery identities (every query identity is one of them). Torchreid fills ``train`` with a
copy of the test images so the set can stand as a source; here ``train`` is empty, so using it as a source
fails with a clear error instead of silently training on the test identities.
"""
import logging
import os.path as osp
import re
from typing import Any, List

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import DatasetLayoutError, fetch_dataset, list_files

logger = logging.getLogger(__name__)

__all__ = ['SenseReID']

_NAME = re.compile(r'^(\d+)_(\d+)\.jpg$')
_MANUAL = ('Get SenseReID.zip (https://drive.google.com/file/d/0B56OfSrVI8hubVJLTzkwV2VaOWM, linked from '
           'https://github.com/Cysu/SenseReID) and extract it into {dataset_dir} so that '
           '{dataset_dir}/SenseReID/test_probe and test_gallery exist.')


class SenseReID(ImageDataset):
    """SenseReID: a target only (no training data)."""
    dataset_dir = 'sensereid'
    dataset_url = None

    def __init__(self, root: str = '', **kwargs: Any):
        self.locate(root, kwargs)
        self.query_dir = osp.join(self.dataset_dir, 'SenseReID', 'test_probe')
        self.gallery_dir = osp.join(self.dataset_dir, 'SenseReID', 'test_gallery')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.query_dir, self.gallery_dir], self.dataset_url,
                      False, _MANUAL.format(dataset_dir=self.dataset_dir))
        query, gallery = self._parse(self.query_dir), self._parse(self.gallery_dir)
        relabel = {pid: label for label, pid in enumerate(sorted({r[1] for r in gallery}))}
        strays = [path for path, pid, _ in query if pid not in relabel]
        if strays:
            raise DatasetLayoutError(f'SenseReID: query identities absent from {self.gallery_dir}: '
                                     f'{summarise_paths(strays)}')
        query = [(path, relabel[pid], cam) for path, pid, cam in query]
        gallery = [(path, relabel[pid], cam) for path, pid, cam in gallery]
        super().__init__([], query, gallery, **kwargs)

    @staticmethod
    def _parse(dir_path: str) -> List[tuple]:
        records, bad = [], []
        for name in list_files(dir_path, ('.jpg',)):
            match = _NAME.match(name)
            if match is None:
                bad.append(osp.join(dir_path, name))
                continue
            records.append((osp.join(dir_path, name), int(match.group(1)), int(match.group(2))))
        if bad:
            raise DatasetLayoutError(f'SenseReID: {summarise_paths(bad)} break the naming rule <pid>_<cam>.jpg')
        return records
