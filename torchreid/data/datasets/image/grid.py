"""GRID (Loy et al., ICCV 2009 / IJCV 2010): 250 paired identities plus 775 gallery distractors, 8 cameras.

``<root>/grid/underground_reid/{probe,gallery}/*.jpeg`` named ``<pid:04d>_<cam>_<...>.jpeg`` (pid 0000 marks the
gallery distractors), and ``underground_reid/features_and_partitions.mat`` whose ``trainIdxAll`` holds the 10
official partitions (each: the 125 training pids). Split ``split_id`` (0..9, written to ``splits.json``): the
train pids' probe and gallery images form train (relabelled); every other probe image is a query and every
other gallery image (distractors included) a gallery item. Counts: train 125 ids / 250 images; query 125;
gallery 900.
"""
import logging
import os.path as osp
from typing import Any, Dict, List

import numpy as np

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import (DatasetLayoutError, fetch_dataset, list_files, read_split_file, records_from_json,
                         records_to_json, select_split, write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['GRID']

_MANUAL = ('Get underground_reid.zip (http://personal.ie.cuhk.edu.hk/~ccloy/downloads_qmul_underground_reid.html) '
           'and extract it into {dataset_dir} so that {dataset_dir}/underground_reid/probe, gallery and '
           'features_and_partitions.mat exist.')


class GRID(ImageDataset):
    """GRID: the 10 official partitions (``split_id``)."""
    dataset_dir = 'grid'
    dataset_url = 'http://personal.ie.cuhk.edu.hk/~ccloy/files/datasets/underground_reid.zip'

    def __init__(self, root: str = '', split_id: int = 0, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        data_dir = osp.join(self.dataset_dir, 'underground_reid')
        self.probe_dir = osp.join(data_dir, 'probe')
        self.gallery_dir = osp.join(data_dir, 'gallery')
        self.split_mat_path = osp.join(data_dir, 'features_and_partitions.mat')
        self.split_path = osp.join(self.dataset_dir, 'splits.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.probe_dir, self.gallery_dir, self.split_mat_path],
                      self.dataset_url, download, _MANUAL.format(dataset_dir=self.dataset_dir))
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'query', 'gallery'))
        train, query, gallery = (records_from_json(split[f], self.dataset_dir, self.split_path, f)
                                 for f in ('train', 'query', 'gallery'))
        super().__init__(train, query, gallery, **kwargs)

    def _parse(self, dir_path: str) -> List[tuple]:
        """``[(path, pid, camid)]`` of one folder (camid 0-based)."""
        records, bad = [], []
        for name in list_files(dir_path, ('.jpeg', '.jpg')):
            fields = name.split('_')
            try:
                pid, camid = int(fields[0]), int(fields[1]) - 1
            except (IndexError, ValueError):
                bad.append(osp.join(dir_path, name))
                continue
            records.append((osp.join(dir_path, name), pid, camid))
        if bad:
            raise DatasetLayoutError(f'GRID: {summarise_paths(bad)} break the naming rule <pid>_<cam>_<...>.jpeg')
        return records

    def prepare_split(self) -> None:
        """Turn the 10 partitions of ``features_and_partitions.mat`` into ``splits.json`` (once)."""
        if osp.exists(self.split_path):
            return
        from scipy.io import loadmat

        mat = loadmat(self.split_mat_path)
        if 'trainIdxAll' not in mat:
            raise DatasetLayoutError(f'GRID: {self.split_mat_path} has no trainIdxAll field')
        probe, gallery_all = self._parse(self.probe_dir), self._parse(self.gallery_dir)
        splits: List[Dict[str, Any]] = []
        for k, partition in enumerate(mat['trainIdxAll'].ravel()):
            # Each partition is a MATLAB struct whose third field is the list of training pids.
            train_pids = [int(p) for p in np.asarray(partition[0][0][2]).ravel()]
            relabel = {pid: label for label, pid in enumerate(train_pids)}
            if len(relabel) != len(train_pids):
                raise DatasetLayoutError(f'GRID: {self.split_mat_path}: partition {k} repeats a training pid')
            train, query, gallery = [], [], []
            for records, test_list in ((probe, query), (gallery_all, gallery)):
                for path, pid, camid in records:
                    if pid in relabel:
                        train.append((path, relabel[pid], camid))
                    else:
                        test_list.append((path, pid, camid))
            splits.append({'train': records_to_json(train, self.dataset_dir),
                           'query': records_to_json(query, self.dataset_dir),
                           'gallery': records_to_json(gallery, self.dataset_dir),
                           'num_train_pids': len(train_pids), 'num_query_pids': len({r[1] for r in query}),
                           'num_gallery_pids': len({r[1] for r in gallery})})
        write_split_file(self.split_path, splits)
