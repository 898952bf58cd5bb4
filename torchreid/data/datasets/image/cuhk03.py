"""CUHK03 (Li et al., CVPR 2014): 1,467 identities from 5 camera pairs, "labeled" and "detected" boxes.

Layout under ``<root>/cuhk03/``::

    cuhk03_release/cuhk-03.mat                      the release (MATLAB v7.3, read with h5py)
    cuhk03_new_protocol_config_labeled.mat          Zhong et al. (CVPR 2017) 767/700 protocol (scipy)
    cuhk03_new_protocol_config_detected.mat
    images_labeled/, images_detected/               written here from cuhk-03.mat on first use
    splits_{classic,new}_{labeled,detected}.json    written here on first use (Torchreid's files are read too)

``cuhk-03.mat`` holds, for ``labeled`` and ``detected``, one cell per camera pair of ``pids x 10`` images
(images 1-5 from the pair's first camera, 6-10 from its second; some cells are empty), and ``testsets``:
the 20 classic test sets of ``(camera pair, pid)`` (1-based). Images are saved as
``<pair>_<pid:03d>_<view>_<image:02d>.png``; the camera id of a record is the view (0 or 1).

Protocols (``cuhk03_labeled`` picks the box kind, ``cuhk03_classic_split`` the protocol, ``split_id``
one of the classic splits):

- new (default): 767 train ids (labeled 7,368 / detected 7,365 images), 700 test ids with query 1,400 and
  gallery 5,328 (labeled) / 5,332 (detected) images; Market-style evaluation.
- classic: 20 splits of 1,367 train ids / 100 test ids; query and gallery are the same test images and the
  ``'cuhk03'`` metric is used (one random gallery image per identity, repeated).
"""
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from torchreid.utils.io import atomic_write

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import (DatasetLayoutError, fetch_dataset, read_split_file, records_from_json,
                         records_to_json, select_split, write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['CUHK03']

_KINDS = ('detected', 'labeled')
_IMAGES_PER_PERSON = 10  # 5 per camera of the pair
_MANUAL = ('Get cuhk03_release.zip from the authors (http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html) '
           'and extract it into {dataset_dir} (giving {dataset_dir}/cuhk03_release/cuhk-03.mat); get '
           'cuhk03_new_protocol_config_labeled.mat and cuhk03_new_protocol_config_detected.mat from '
           'https://github.com/zhunzhong07/person-re-ranking/tree/master/evaluation/data/CUHK03 and put them '
           'in {dataset_dir}.')


class CUHK03(ImageDataset):
    """CUHK03 with Torchreid's options ``split_id``, ``cuhk03_labeled`` and ``cuhk03_classic_split``."""
    dataset_dir = 'cuhk03'
    dataset_url = None

    def __init__(self, root: str = '', split_id: int = 0, cuhk03_labeled: bool = False,
                 cuhk03_classic_split: bool = False, **kwargs: Any):
        self.locate(root, kwargs)
        self.raw_mat_path = osp.join(self.dataset_dir, 'cuhk03_release', 'cuhk-03.mat')
        self.image_dirs = {k: osp.join(self.dataset_dir, f'images_{k}') for k in _KINDS}
        self.new_protocol_paths = {k: osp.join(self.dataset_dir, f'cuhk03_new_protocol_config_{k}.mat')
                                   for k in _KINDS}
        self.split_paths = {(protocol, k): osp.join(self.dataset_dir, f'splits_{protocol}_{k}.json')
                            for protocol in ('classic', 'new') for k in _KINDS}
        self.preprocess_split()

        kind = 'labeled' if cuhk03_labeled else 'detected'
        protocol = 'classic' if cuhk03_classic_split else 'new'
        split_path = self.split_paths[(protocol, kind)]
        split = select_split(read_split_file(split_path), split_id, split_path, ('train', 'query', 'gallery'))
        train, query, gallery = (records_from_json(split[f], self.dataset_dir, split_path, f)
                                 for f in ('train', 'query', 'gallery'))
        # Classic: query and gallery are the same images, scored with CUHK03's own single-shot protocol.
        self.eval_metric = 'cuhk03' if cuhk03_classic_split else 'default'
        super().__init__(train, query, gallery, **kwargs)

    # ----- preparation (once) -----
    def preprocess_split(self) -> None:
        """Extract the images from ``cuhk-03.mat`` and write the four split files, unless already done."""
        if all(osp.isdir(d) for d in self.image_dirs.values()) and all(
                osp.isfile(p) for p in self.split_paths.values()):
            return
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.raw_mat_path, *self.new_protocol_paths.values()],
                      self.dataset_url, False, _MANUAL.format(dataset_dir=self.dataset_dir))
        import h5py

        logger.info('CUHK03: extracting images from %s', self.raw_mat_path)
        with h5py.File(self.raw_mat_path, 'r') as mat:
            people = {kind: self._extract_images(mat, kind) for kind in _KINDS}
            test_sets = self._classic_test_sets(mat)
        for kind in _KINDS:
            classic = [self._classic_split(people[kind], test_set) for test_set in test_sets]
            write_split_file(self.split_paths[('classic', kind)], classic)
            write_split_file(self.split_paths[('new', kind)], [self._new_split(kind)])

    def _field(self, mat: Any, name: str) -> Any:
        if name not in mat:
            raise DatasetLayoutError(f'CUHK03: {self.raw_mat_path} has no {name!r} field (fields: '
                                     f'{", ".join(sorted(mat.keys()))}); is it the cuhk03_release file?')
        return mat[name]

    def _extract_images(self, mat: Any, kind: str) -> List[Tuple[int, int, List[str]]]:
        """Save every image of ``kind`` as png; ``[(camera pair, pid, [paths])]`` (1-based ids)."""
        from PIL import Image

        image_dir = self.image_dirs[kind]
        os.makedirs(image_dir, exist_ok=True)
        people = []
        for pair_idx, pair_ref in enumerate(self._field(mat, kind)[0]):
            grid = mat[pair_ref][()].T  # MATLAB is column-major: pids x 10 after the transpose
            if grid.ndim != 2 or grid.shape[1] != _IMAGES_PER_PERSON:
                raise DatasetLayoutError(f'CUHK03: {self.raw_mat_path}: {kind} camera pair {pair_idx + 1} should '
                                         f'hold pids x {_IMAGES_PER_PERSON} images, got shape {grid.shape}')
            for pid_idx in range(grid.shape[0]):
                paths = []
                for img_idx, img_ref in enumerate(grid[pid_idx]):
                    img = mat[img_ref][()].T
                    if img.size == 0 or img.ndim < 3:
                        continue  # an empty cell: this person has fewer images in this view
                    view = 1 if img_idx < _IMAGES_PER_PERSON // 2 else 2
                    name = f'{pair_idx + 1:d}_{pid_idx + 1:03d}_{view:d}_{img_idx + 1:02d}.png'
                    path = osp.join(image_dir, name)
                    if not osp.isfile(path):
                        with atomic_write(path, 'wb') as f:
                            Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(f, format='PNG')
                    paths.append(path)
                if not paths:
                    raise DatasetLayoutError(f'CUHK03: {self.raw_mat_path}: {kind} camera pair {pair_idx + 1}, '
                                             f'person {pid_idx + 1} has no image')
                people.append((pair_idx + 1, pid_idx + 1, paths))
            logger.info('CUHK03: %s camera pair %d: %d identities', kind, pair_idx + 1, grid.shape[0])
        return people

    def _classic_test_sets(self, mat: Any) -> List[set]:
        test_sets = []
        for split_ref in self._field(mat, 'testsets')[0]:
            pairs = np.atleast_2d(mat[split_ref][()].T)
            test_sets.append({(int(pair), int(pid)) for pair, pid in pairs})
        return test_sets

    @staticmethod
    def _camid(path: str) -> int:
        return int(osp.basename(path).split('_')[2]) - 1  # the view, 0-based

    def _classic_split(self, people: Sequence[Tuple[int, int, List[str]]], test_set: set) -> Dict[str, Any]:
        """Train: every person not in ``test_set``; query = gallery = the test persons (both relabelled)."""
        train, test = [], []
        num_train, num_test = 0, 0
        for pair, pid, paths in people:
            if (pair, pid) in test_set:
                test += [(p, num_test, self._camid(p)) for p in paths]
                num_test += 1
            else:
                train += [(p, num_train, self._camid(p)) for p in paths]
                num_train += 1
        test_json = records_to_json(test, self.dataset_dir)
        return {'train': records_to_json(train, self.dataset_dir), 'query': test_json, 'gallery': test_json,
                'num_train_pids': num_train, 'num_train_imgs': len(train), 'num_query_pids': num_test,
                'num_query_imgs': len(test), 'num_gallery_pids': num_test, 'num_gallery_imgs': len(test)}

    def _new_split(self, kind: str) -> Dict[str, Any]:
        """The 767/700 protocol of ``cuhk03_new_protocol_config_<kind>.mat`` (1-based indices into filelist)."""
        from scipy.io import loadmat

        path = self.new_protocol_paths[kind]
        config = loadmat(path)
        absent = [k for k in ('train_idx', 'query_idx', 'gallery_idx', 'labels', 'filelist') if k not in config]
        if absent:
            raise DatasetLayoutError(f'CUHK03: {path} lacks field(s) {", ".join(absent)}')
        names = [str(np.asarray(item).ravel()[0]) for item in config['filelist'].ravel()]
        labels = config['labels'].ravel().astype(np.int64)
        if len(names) != len(labels):
            raise DatasetLayoutError(f'CUHK03: {path}: filelist has {len(names)} names but labels {len(labels)}')
        index = {f: config[f].ravel().astype(np.int64) - 1 for f in ('train_idx', 'query_idx', 'gallery_idx')}
        for field, idx in index.items():
            if idx.size and (idx.min() < 0 or idx.max() >= len(names)):
                raise DatasetLayoutError(f'CUHK03: {path}: {field} must hold 1-based indices into filelist '
                                         f'(1..{len(names)})')
        missing = [osp.join(self.image_dirs[kind], names[i]) for idx in index.values() for i in idx
                   if not osp.isfile(osp.join(self.image_dirs[kind], names[i]))]
        if missing:
            raise DatasetLayoutError(f'CUHK03: {path} names images that {self.raw_mat_path} did not provide: '
                                     f'{summarise_paths(sorted(set(missing)))}')
        train_pids = sorted({int(labels[i]) for i in index['train_idx']})
        relabel = {pid: label for label, pid in enumerate(train_pids)}

        def records(idx: np.ndarray, train: bool) -> List[Tuple[str, int, int]]:
            out = []
            for i in idx:
                pid = int(labels[i])
                out.append((osp.join(self.image_dirs[kind], names[i]), relabel[pid] if train else pid,
                            self._camid(names[i])))
            return out

        split = {}
        for field, key, train in (('train', 'train_idx', True), ('query', 'query_idx', False),
                                  ('gallery', 'gallery_idx', False)):
            recs = records(index[key], train)
            split[field] = records_to_json(recs, self.dataset_dir)
            split[f'num_{field}_pids'] = len({r[1] for r in recs})
            split[f'num_{field}_imgs'] = len(recs)
        return split
