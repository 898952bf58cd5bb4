"""MARS (Zheng et al., ECCV 2016): 1,261 identities, 6 cameras, tracklets from a detector and tracker.

Layout under ``<root>/mars/``::

    bbox_train/<pid:04d>/<pid:04d>C<cam>T<tracklet:04d>F<frame:03d>.jpg
    bbox_test/<pid>/...                          (pid 00-1: junk, 0000: distractors)
    info/train_name.txt, info/test_name.txt      one frame name per line
    info/tracks_train_info.mat, info/tracks_test_info.mat   [start, end, pid, camera] per tracklet (1-based,
                                                 inclusive rows of the name list)
    info/query_IDX.mat                           the query tracklets (1-based rows of the test tracks)

Protocol (Torchreid): train = every train tracklet (pids relabelled); query = the ``query_IDX`` rows; gallery
= every other test tracklet; tracklets of pid -1 (junk) are dropped, distractors (pid 0) stay in the gallery.
Counts: train 625 ids / 8,298 tracklets; query 626 ids / 1,980; gallery 622 ids / 9,330; 6 cameras.
"""
import logging
import os.path as osp
from typing import Any, List, Sequence

import numpy as np

from ..image.zoo_common import DatasetLayoutError, fetch_dataset, read_lines
from .video_dataset import VideoDataset

logger = logging.getLogger(__name__)

__all__ = ['Mars']

_JUNK_PID = -1
_MANUAL = ('Get bbox_train.zip and bbox_test.zip (http://zheng-lab.cecs.anu.edu.au/Project/project_mars.html) and '
           'extract them into {dataset_dir}; put the info folder of https://github.com/liangzheng06/MARS-evaluation '
           '(tree/master/info) at {dataset_dir}/info.')


class Mars(VideoDataset):
    """MARS: 6 cameras; Market-style evaluation of tracklets."""
    dataset_dir = 'mars'
    dataset_url = None
    junk_pids = (0, -1)

    def __init__(self, root: str = '', **kwargs: Any):
        self.locate(root, kwargs)
        info = osp.join(self.dataset_dir, 'info')
        names = ('train_name.txt', 'test_name.txt', 'tracks_train_info.mat', 'tracks_test_info.mat', 'query_IDX.mat')
        paths = {name: osp.join(info, name) for name in names}
        fetch_dataset(type(self).__name__, self.dataset_dir,
                      [osp.join(self.dataset_dir, 'bbox_train'), osp.join(self.dataset_dir, 'bbox_test'),
                       *paths.values()], self.dataset_url, False, _MANUAL.format(dataset_dir=self.dataset_dir))
        train_names = read_lines(paths['train_name.txt'])
        test_names = read_lines(paths['test_name.txt'])
        track_train = self._load(paths['tracks_train_info.mat'], 'track_train_info')
        track_test = self._load(paths['tracks_test_info.mat'], 'track_test_info')
        query_rows = self._load(paths['query_IDX.mat'], 'query_IDX').ravel().astype(np.int64) - 1
        if query_rows.size and (query_rows.min() < 0 or query_rows.max() >= len(track_test)):
            raise DatasetLayoutError(f'Mars: {paths["query_IDX.mat"]}: query_IDX must hold 1-based rows of '
                                     f'track_test_info (1..{len(track_test)})')
        is_query = np.zeros(len(track_test), dtype=bool)
        is_query[query_rows] = True
        train = self.process_data(train_names, track_train, 'bbox_train', relabel=True)
        query = self.process_data(test_names, track_test[query_rows], 'bbox_test')
        gallery = self.process_data(test_names, track_test[~is_query], 'bbox_test')
        super().__init__(train, query, gallery, **kwargs)

    @staticmethod
    def _load(path: str, key: str) -> np.ndarray:
        from scipy.io import loadmat

        mat = loadmat(path)
        if key not in mat:
            raise DatasetLayoutError(f'Mars: {path} has no {key!r} field')
        array = np.asarray(mat[key])
        if key != 'query_IDX' and (array.ndim != 2 or array.shape[1] != 4):
            raise DatasetLayoutError(f'Mars: {path}: {key} must be an N x 4 array [start, end, pid, camera], '
                                     f'got shape {array.shape}')
        return array

    def process_data(self, names: Sequence[str], tracks: np.ndarray, home_dir: str,
                     relabel: bool = False) -> List[tuple]:
        """Tracklets ``(frame paths, pid, camid)`` of ``tracks``; junk (pid -1) tracklets are dropped."""
        kept = [(int(s), int(e), int(pid), int(cam)) for s, e, pid, cam in tracks if int(pid) != _JUNK_PID]
        pid_map = {pid: i for i, pid in enumerate(sorted({t[2] for t in kept}))} if relabel else None
        tracklets, bad = [], []
        for start, end, pid, cam in kept:
            frames = list(names[start - 1:end])
            if not 1 <= start <= end <= len(names) or not 1 <= cam <= 6:
                bad.append(f'[{start}, {end}, {pid}, {cam}]: rows must lie in 1..{len(names)}, camera in 1..6')
                continue
            wrong = [f for f in frames if f[:4] != f'{pid:04d}' or f[4:6] != f'C{cam}']
            if wrong:
                bad.append(f'[{start}, {end}, {pid}, {cam}]: frame(s) of another person or camera: {wrong[:3]}')
                continue
            paths = tuple(osp.join(self.dataset_dir, home_dir, f[:4], f) for f in frames)
            tracklets.append((paths, pid_map[pid] if relabel else pid, cam - 1))
        if bad:
            shown = '; '.join(bad[:5]) + (f' (and {len(bad) - 5} more)' if len(bad) > 5 else '')
            raise DatasetLayoutError(f'Mars: {len(bad)} {home_dir} tracklet(s) disagree with the name list: {shown}')
        return tracklets

    def combine_all(self) -> None:
        """Not applied (as in Torchreid): some query identities are absent from the gallery."""
        logger.warning('Mars: combineall is ignored (some query identities do not appear in the gallery)')
