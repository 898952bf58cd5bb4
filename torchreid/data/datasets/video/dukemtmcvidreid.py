"""DukeMTMC-VideoReID (Wu et al., CVPR 2018): 1,812 identities, 8 cameras, hand-drawn tracklets.

``<root>/dukemtmc-vidreid/DukeMTMC-VideoReID/{train,query,gallery}/<pid:04d>/<tracklet:04d>/<frame>.jpg`` with
frames named ``0001_C6_F0001_X30823.jpg`` (or without the underscores, ``0001C6F0001X30823.jpg``): camera
``C<n>`` and the frame's place in the tracklet ``F<nnnn>``. The parsed tracklets are cached in
``split_{train,query,gallery}.json`` (``{"tracklets": [[frame paths], pid, camid], ...}``; the files Torchreid
writes are read too). Counts: train 702 ids / 2,196 tracklets; query 702 ids / 702; gallery 1,110 ids / 2,636.
"""
import logging
import os
import os.path as osp
import re
from typing import Any, List

from torchreid.utils.io import atomic_write_json

from ..image.zoo_common import DatasetLayoutError, SplitFileError, fetch_dataset, list_files, records_from_json
from .video_dataset import VideoDataset

logger = logging.getLogger(__name__)

__all__ = ['DukeMTMCVidReID']

_FRAME = re.compile(r'^\d+_?C(\d)_?F(\d+)_?X\d+\.jpg$')
_MANUAL = ('Get DukeMTMC-VideoReID.zip (https://github.com/Yu-Wu/DukeMTMC-VideoReID; the original '
           'http://vision.cs.duke.edu/DukeMTMC/ is offline) and extract it into {dataset_dir} so that '
           '{dataset_dir}/DukeMTMC-VideoReID/train, query and gallery exist.')


class DukeMTMCVidReID(VideoDataset):
    """DukeMTMC-VideoReID: 8 cameras; Market-style evaluation of tracklets."""
    dataset_dir = 'dukemtmc-vidreid'
    dataset_url = 'http://vision.cs.duke.edu/DukeMTMC/data/misc/DukeMTMC-VideoReID.zip'

    def __init__(self, root: str = '', min_seq_len: int = 0, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        dirs = {s: osp.join(self.dataset_dir, 'DukeMTMC-VideoReID', s) for s in ('train', 'query', 'gallery')}
        fetch_dataset(type(self).__name__, self.dataset_dir, list(dirs.values()), self.dataset_url, download,
                      _MANUAL.format(dataset_dir=self.dataset_dir))
        self.min_seq_len = int(min_seq_len)
        train, query, gallery = (self.process_dir(dirs[s], osp.join(self.dataset_dir, f'split_{s}.json'),
                                                  relabel=s == 'train') for s in ('train', 'query', 'gallery'))
        super().__init__(train, query, gallery, **kwargs)

    def process_dir(self, dir_path: str, cache_path: str, relabel: bool) -> List[tuple]:
        """Tracklets of one folder (read from ``cache_path`` when it exists, else parsed and cached)."""
        if osp.exists(cache_path):
            return self._read_cache(cache_path)
        pids = sorted(int(e.name) for e in os.scandir(dir_path) if e.is_dir() and e.name.isdigit())
        pid_map = {pid: i for i, pid in enumerate(pids)} if relabel else None
        tracklets, bad = [], []
        for pid in pids:
            person_dir = osp.join(dir_path, f'{pid:04d}')
            for tracklet in sorted(e.name for e in os.scandir(person_dir) if e.is_dir()):
                folder = osp.join(person_dir, tracklet)
                frames = []
                for name in list_files(folder, ('.jpg',)):
                    match = _FRAME.match(name)
                    if match is None:
                        bad.append(osp.join(folder, name))
                        continue
                    frames.append((int(match.group(2)), int(match.group(1)), osp.join(folder, name)))
                if not frames or len(frames) < self.min_seq_len:
                    continue
                cams = {cam for _, cam, _ in frames}
                if len(cams) != 1:
                    bad.append(f'{folder} (frames from cameras {sorted(cams)})')
                    continue
                frames.sort()
                tracklets.append((tuple(p for _, _, p in frames), pid_map[pid] if relabel else pid, cams.pop() - 1))
        if bad:
            raise DatasetLayoutError(f'DukeMTMCVidReID: {len(bad)} frame(s) break the naming rule '
                                     f'<pid>_C<cam>_F<frame>_X<n>.jpg or mix cameras: {bad[:10]}')
        if not tracklets:
            raise FileNotFoundError(f'DukeMTMCVidReID: no tracklet in {dir_path}')
        atomic_write_json(cache_path, {'tracklets': [[[osp.relpath(p, self.dataset_dir) for p in paths], pid, cam]
                                                     for paths, pid, cam in tracklets]})
        return tracklets

    def _read_cache(self, cache_path: str) -> List[tuple]:
        import json

        with open(cache_path, 'r', encoding='utf-8') as f:
            try:
                cache = json.load(f)
            except json.JSONDecodeError as err:
                raise SplitFileError(f'{cache_path}: not valid JSON ({err}); delete it to have it rebuilt') from err
        if not isinstance(cache, dict) or 'tracklets' not in cache:
            raise SplitFileError(f'{cache_path}: expected {{"tracklets": [[frame paths], pid, camid], ...}}')

        def frame_paths(paths: Any) -> tuple:
            if not isinstance(paths, list) or not paths:
                raise SplitFileError(f'{cache_path}: a tracklet must start with a non-empty list of frame paths')
            return tuple(osp.join(self.dataset_dir, p) for p in paths)

        return records_from_json(cache['tracklets'], self.dataset_dir, cache_path, 'tracklets', paths=frame_paths)
