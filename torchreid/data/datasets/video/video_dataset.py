"""VideoDataset: records whose first field is a tracklet (a tuple of frame paths), sampled to ``seq_len``.

A record is ``(img_paths, pid, camid, dsetid)`` as in Torchreid. An item is a clip of ``seq_len`` frames
(``[S, C, H, W]`` once the transform gives tensors), chosen by ``sample_method``:

- ``'evenly'``: frames spread evenly over the tracklet (its length cut to a multiple of ``seq_len``); a
  shorter tracklet is padded by repeating its last frame;
- ``'random'``: ``seq_len`` random frames in temporal order (with replacement when the tracklet is shorter);
- ``'all'``: every frame (clips then differ in length: one tracklet per test batch).
"""
import logging
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ..dataset import Dataset, read_image

logger = logging.getLogger(__name__)

__all__ = ['VideoDataset', 'SAMPLE_METHODS', 'sample_frame_indices']

SAMPLE_METHODS = ('evenly', 'random', 'all')
_MODES = ('train', 'query', 'gallery')


def sample_frame_indices(num_frames: int, seq_len: int, sample_method: str,
                         rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Indices of the frames a clip takes from a tracklet of ``num_frames`` (see the module docstring).

    ``rng``: the generator ``'random'`` draws from (None: NumPy's global one, which the data loader's
    ``worker_init_fn`` seeds per worker).
    """
    if num_frames < 1:
        raise ValueError(f'a tracklet needs at least one frame, got {num_frames}')
    if sample_method == 'all':
        return np.arange(num_frames)
    if sample_method == 'random':
        draw = rng.choice if rng is not None else np.random.choice
        return np.sort(draw(num_frames, size=seq_len, replace=num_frames < seq_len))
    if sample_method == 'evenly':
        if num_frames >= seq_len:
            usable = num_frames - num_frames % seq_len
            return np.arange(0, usable, usable // seq_len)[:seq_len]
        return np.concatenate([np.arange(num_frames), np.full(seq_len - num_frames, num_frames - 1)])
    raise ValueError(f"sample_method must be one of {', '.join(SAMPLE_METHODS)}, got {sample_method!r}")


class VideoDataset(Dataset):
    """A dataset of tracklets; items are ``{'img', 'pid', 'camid', 'dsetid'}`` with ``img`` ``[S, C, H, W]``.

    Args:
        train, query, gallery: lists of ``(img_paths, pid, camid[, dsetid])``, ``img_paths`` a sequence of
            frame paths in temporal order.
        seq_len: frames per clip (``'evenly'`` / ``'random'``).
        sample_method: ``'evenly'``, ``'random'`` or ``'all'``.
        **kwargs: :class:`~torchreid.data.datasets.dataset.Dataset`'s (``transform``, ``mode``, ``combineall``,
            ``verbose``) and the shared dataset options.
    """

    def __init__(self, train: Iterable[Sequence[Any]], query: Iterable[Sequence[Any]],
                 gallery: Iterable[Sequence[Any]], seq_len: int = 15, sample_method: str = 'evenly', **kwargs: Any):
        if sample_method not in SAMPLE_METHODS:
            raise ValueError(f"{type(self).__name__}: sample_method must be one of {', '.join(SAMPLE_METHODS)}, "
                             f'got {sample_method!r}')
        if isinstance(seq_len, bool) or int(seq_len) != seq_len or int(seq_len) < 1:
            raise ValueError(f'{type(self).__name__}: seq_len must be a positive int, got {seq_len!r}')
        if int(kwargs.get('k_tfm', 1)) != 1:
            raise ValueError(f'{type(self).__name__}: k_tfm must be 1 for video data (one transform per frame)')
        self.seq_len = int(seq_len)
        self.sample_method = sample_method
        super().__init__([self._as_tracklet(r, 'train') for r in train],
                         [self._as_tracklet(r, 'query') for r in query],
                         [self._as_tracklet(r, 'gallery') for r in gallery], **kwargs)

    @staticmethod
    def _as_tracklet(record: Sequence[Any], subset: str) -> tuple:
        paths = record[0]
        if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or not paths:
            raise ValueError(f'{subset}: a video record must start with a non-empty sequence of frame paths, '
                             f'got {paths!r}')
        return (tuple(paths), *record[1:])

    def __getitem__(self, index: int) -> dict:
        img_paths, pid, camid, dsetid = self.data[index]
        indices = sample_frame_indices(len(img_paths), self.seq_len, self.sample_method)
        frames = [self._transform_image(read_image(img_paths[i])) for i in indices]
        clip: Union[torch.Tensor, List[Image.Image]] = (
            torch.stack(frames, 0) if frames and isinstance(frames[0], torch.Tensor) else frames)
        return {'img': clip, 'pid': pid, 'camid': camid, 'dsetid': dsetid}

    def __add__(self, other: 'Dataset') -> 'Dataset':
        """Combined training tracklets (``other``'s ids offset past ours), our query / gallery and sampling."""
        if not isinstance(other, VideoDataset):
            return NotImplemented
        combined = Dataset.__add__(self, other)
        result = VideoDataset(combined.train, self.query, self.gallery, seq_len=self.seq_len,
                              sample_method=self.sample_method, transform=self.transform, mode=self.mode,
                              verbose=False)
        result.eval_metric = self.eval_metric
        result.hidden_labels = self.hidden_labels
        return result

    @staticmethod
    def record_image_paths(record: Sequence[Any]) -> Sequence[str]:
        """Every frame of a tracklet (what ``verify_images`` checks)."""
        return tuple(record[0])

    def summary_rows(self) -> List[Tuple[str, Union[int, str], int, int]]:
        return [(subset, self.get_num_pids(getattr(self, subset)), len(getattr(self, subset)),
                 self.get_num_cams(getattr(self, subset))) for subset in _MODES]

    def show_summary(self) -> None:
        lines = [f'=> Loaded {type(self).__name__} (seq_len {self.seq_len}, sample_method {self.sample_method!r})']
        for subset, ids, tracklets, cams in self.summary_rows():
            lengths = [len(r[0]) for r in getattr(self, subset)]
            frames = (f', frames per tracklet {min(lengths)}/{sum(lengths) / len(lengths):.1f}/{max(lengths)} '
                      '(min/mean/max)') if lengths else ''
            lines.append(f'  {subset}: {ids} ids, {tracklets} tracklets, {cams} cameras{frames}')
        logger.info('\n'.join(lines))
