"""MSMT17 (Wei et al., CVPR 2018): 4,101 identities, 15 cameras, split by list files.

``<root>/msmt17/MSMT17_V1/{train,test}/<pid>/<name>.jpg`` (V2: ``mask_train_v2`` / ``mask_test_v2``) with
``list_train.txt``, ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt`` beside them: one
``<path relative to the train or test folder> <pid>`` per line. The camera is the third ``_`` field of the
path (``0000/0000_000_01_0303morning_0015_0.jpg`` is camera 1, stored 0-based).

Protocol (Torchreid): train is ``list_train`` (1,041 ids, 30,248 images); ``list_val`` (2,373 images of
the same ids) is added only with ``combineall=True``; query 3,060 ids / 11,659 images; gallery
3,060 ids / 82,161 images.
"""
import logging
import os.path as osp
from typing import Any, List, Tuple

from ..dataset import ImageDataset
from .zoo_common import DatasetLayoutError, fetch_dataset, read_lines

logger = logging.getLogger(__name__)

__all__ = ['MSMT17']

# Release folder -> (train folder, test folder).
_VERSIONS = {'MSMT17_V1': ('train', 'test'), 'MSMT17_V2': ('mask_train_v2', 'mask_test_v2')}
_NUM_CAMERAS = 15
_MANUAL = ('MSMT17 is released on request by its authors (https://www.pkuvmc.com/dataset.html): put the '
           'extracted MSMT17_V1 (or MSMT17_V2) folder in {dataset_dir} so that {dataset_dir}/MSMT17_V1/'
           '{{train,test,list_train.txt,list_val.txt,list_query.txt,list_gallery.txt}} exist.')


class MSMT17(ImageDataset):
    """MSMT17 (V1 or V2, whichever folder is present; V1 first)."""
    dataset_dir = 'msmt17'
    dataset_url = None
    eval_metric = 'default'

    def __init__(self, root: str = '', combineall: bool = False, **kwargs: Any):
        self.locate(root, kwargs)
        version = next((v for v in _VERSIONS if osp.isdir(osp.join(self.dataset_dir, v))), 'MSMT17_V1')
        main_dir = osp.join(self.dataset_dir, version)
        train_dir, test_dir = (osp.join(main_dir, d) for d in _VERSIONS[version])
        lists = {name: osp.join(main_dir, f'list_{name}.txt') for name in ('train', 'val', 'query', 'gallery')}
        fetch_dataset(type(self).__name__, self.dataset_dir, [train_dir, test_dir, *lists.values()], self.dataset_url,
                      False, _MANUAL.format(dataset_dir=self.dataset_dir))
        self.version = version
        train = self.process_list(train_dir, lists['train'])
        val = self.process_list(train_dir, lists['val'])
        query = self.process_list(test_dir, lists['query'])
        gallery = self.process_list(test_dir, lists['gallery'])
        if combineall:
            # Torchreid keeps val out of train (the published protocol) unless everything is combined.
            train += val
        super().__init__(train, query, gallery, combineall=combineall, **kwargs)

    @staticmethod
    def process_list(dir_path: str, list_path: str) -> List[Tuple[str, int, int, int]]:
        """Records of one list file: ``<relative path> <pid>`` lines, the camera from the path's name."""
        records, bad = [], []
        for line_no, line in enumerate(read_lines(list_path), 1):
            parts = line.split()
            try:
                rel_path, pid = parts[0], int(parts[1])
                camid = int(osp.basename(rel_path).split('_')[2]) - 1
            except (IndexError, ValueError):
                bad.append(f'line {line_no}: {line!r}')
                continue
            if len(parts) != 2 or not 0 <= camid < _NUM_CAMERAS:
                bad.append(f'line {line_no}: {line!r}')
                continue
            records.append((osp.join(dir_path, rel_path), pid, camid, 0))
        if bad:
            shown = '; '.join(bad[:10]) + (f' (and {len(bad) - 10} more)' if len(bad) > 10 else '')
            raise DatasetLayoutError(f'MSMT17: {list_path}: {len(bad)} line(s) break the rule '
                                     f'"<pid>/<pid>_<n>_<cam 01..15>_<...>.jpg <pid>": {shown}')
        return records
