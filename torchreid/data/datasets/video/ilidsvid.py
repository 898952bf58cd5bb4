"""iLIDS-VID (Wang et al., ECCV 2014): 300 identities, one tracklet per camera (2 cameras).

``<root>/ilids-vid/i-LIDS-VID/sequences/cam1/person<NNN>/*.png`` (and ``cam2``) with the 10 official splits in
``<root>/ilids-vid/train-test people splits/train_test_splits_ilidsvid.mat`` (``ls_set``: 10 rows of 300 1-based
person indices into the sorted person folders; the first half are the test persons). Split ``split_id``
(0..9, written to ``splits.json``): train = both cameras of 150 persons; query = the cam1 tracklets, gallery
the cam2 tracklets of the other 150 (pids relabelled 0..149 in each list).
"""
import logging
import os
import os.path as osp
from typing import Any, List, Sequence

import numpy as np

from ..image.zoo_common import (DatasetLayoutError, fetch_dataset, list_files, read_split_file, select_split,
                                write_split_file)
from .video_dataset import VideoDataset

logger = logging.getLogger(__name__)

__all__ = ['iLIDSVID']

_MANUAL = ('Get iLIDS-VID.tar (https://xiatian-zhu.github.io/downloads_qmul_iLIDS-VID_ReID_dataset.html) and extract '
           'it into {dataset_dir} so that {dataset_dir}/i-LIDS-VID/sequences/cam1, cam2 and '
           '"{dataset_dir}/train-test people splits/train_test_splits_ilidsvid.mat" exist.')


class iLIDSVID(VideoDataset):
    """iLIDS-VID: 10 splits (``split_id``)."""
    dataset_dir = 'ilids-vid'
    dataset_url = 'http://www.eecs.qmul.ac.uk/~xiatian/iLIDS-VID/iLIDS-VID.tar'

    def __init__(self, root: str = '', split_id: int = 0, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        self.cam_dirs = [osp.join(self.dataset_dir, 'i-LIDS-VID', 'sequences', cam) for cam in ('cam1', 'cam2')]
        self.split_mat_path = osp.join(self.dataset_dir, 'train-test people splits', 'train_test_splits_ilidsvid.mat')
        self.split_path = osp.join(self.dataset_dir, 'splits.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [*self.cam_dirs, self.split_mat_path], self.dataset_url,
                      download, _MANUAL.format(dataset_dir=self.dataset_dir))
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'test'))
        train = self.process_data(split['train'], cams=(0, 1))
        query = self.process_data(split['test'], cams=(0,))
        gallery = self.process_data(split['test'], cams=(1,))
        super().__init__(train, query, gallery, **kwargs)

    def prepare_split(self) -> None:
        """Turn ``ls_set`` of the official mat file into ``splits.json`` (once)."""
        if osp.exists(self.split_path):
            return
        from scipy.io import loadmat

        persons = [sorted(e.name for e in os.scandir(d) if e.is_dir()) for d in self.cam_dirs]
        if persons[0] != persons[1]:
            raise DatasetLayoutError(f'iLIDSVID: {self.cam_dirs[0]} and {self.cam_dirs[1]} must hold the same '
                                     f'person folders; only in one: {sorted(set(persons[0]) ^ set(persons[1]))[:10]}')
        mat = loadmat(self.split_mat_path)
        if 'ls_set' not in mat:
            raise DatasetLayoutError(f'iLIDSVID: {self.split_mat_path} has no ls_set field')
        ls_set = np.atleast_2d(mat['ls_set']).astype(np.int64)
        if ls_set.shape[1] != len(persons[0]) or ls_set.min() < 1 or ls_set.max() > len(persons[0]):
            raise DatasetLayoutError(f'iLIDSVID: {self.split_mat_path}: each ls_set row must list the '
                                     f'{len(persons[0])} persons (1-based), got shape {ls_set.shape}')
        half = ls_set.shape[1] // 2
        splits = [{'train': [persons[0][i - 1] for i in sorted(row[half:])],
                   'test': [persons[0][i - 1] for i in sorted(row[:half])]} for row in ls_set]
        write_split_file(self.split_path, splits)

    def process_data(self, person_dirs: Sequence[str], cams: Sequence[int]) -> List[tuple]:
        """One tracklet per person and camera of ``cams``; pids are positions in ``person_dirs``."""
        tracklets = []
        for pid, person in enumerate(person_dirs):
            for cam in cams:
                folder = osp.join(self.cam_dirs[cam], person)
                frames = list_files(folder, ('.png',))
                if not frames:
                    raise DatasetLayoutError(f'iLIDSVID: no .png frames in {folder}')
                tracklets.append((tuple(osp.join(folder, f) for f in frames), pid, cam))
        return tracklets
