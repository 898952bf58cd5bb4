"""Checkpoints: atomic save, safe load, resume (Torchreid's names and call shapes).

Layout (Torchreid's): ``<save_dir>/model.pth.tar-<epoch>`` where ``epoch`` is the number of epochs
completed, plus ``<save_dir>/model-best.pth.tar`` when the declared metric improved.

Every file is written through :func:`torchreid.utils.io.atomic_torch_save`, so a process killed while
saving leaves the previous checkpoint untouched and no half-written file under the final name.

Checkpoints load with ``torch.load(weights_only=True)``: NumPy arrays and scalars found in the state
(e.g. NumPy's RNG state) are stored as plain lists / Python numbers and turned back into NumPy on load,
so nothing needs the unsafe pickle path.
"""
import contextlib
import logging
import os
import os.path as osp
import pickle
import re
import shutil
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .io import atomic_torch_save, atomic_write
from .model_utils import unwrap_model

__all__ = [
    'CHECKPOINT_PREFIX',
    'BEST_CHECKPOINT_NAME',
    'save_checkpoint',
    'load_checkpoint',
    'resume_from_checkpoint',
    'restore_checkpoint_state',
    'list_checkpoints',
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = 'model.pth.tar-'
BEST_CHECKPOINT_NAME = 'model-best.pth.tar'
_CKPT_RE = re.compile(r'^model\.pth\.tar-(\d+)$')
# Temporary files of torchreid.utils.io.atomic_write for checkpoint names: '.<name>.<random>.tmp'.
_TMP_RE = re.compile(r'^\.(model\.pth\.tar-\d+|model-best\.pth\.tar)\..+\.tmp$')

# Tag of an encoded NumPy array (weights_only unpickling refuses ndarray objects).
_NDARRAY_TAG = '__ndarray__'


def _rebuild(obj, convert):
    """``convert(obj)`` if it changes ``obj``; otherwise dicts, lists and tuples rebuilt with their items
    passed through here (an OrderedDict stays one)."""
    converted = convert(obj)
    if converted is not obj:
        return converted
    if isinstance(obj, dict):
        items = ((k, _rebuild(v, convert)) for k, v in obj.items())
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, list):
        return [_rebuild(v, convert) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_rebuild(v, convert) for v in obj)
    return obj


def _encode(obj):
    """A NumPy value as a type ``torch.load(weights_only=True)`` accepts (use through :func:`_rebuild`)."""
    if isinstance(obj, np.ndarray):
        return {_NDARRAY_TAG: obj.tolist(), 'dtype': str(obj.dtype), 'shape': list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj):
    """Inverse of :func:`_encode`."""
    if isinstance(obj, dict) and _NDARRAY_TAG in obj and set(obj) == {_NDARRAY_TAG, 'dtype', 'shape'}:
        return np.asarray(obj[_NDARRAY_TAG], dtype=np.dtype(obj['dtype'])).reshape(obj['shape'])
    return obj


def _strip_module_prefix(state_dict):
    """Remove the ``module.`` prefix DataParallel / DDP add to every key."""
    out = OrderedDict()
    for k, v in state_dict.items():
        out[k[7:] if k.startswith('module.') else k] = v
    return out


def _remove_stale_temp_files(save_dir):
    # A process killed (SIGKILL, power loss) while saving cannot clean up its temporary file; the next
    # save in the same folder does. Only names atomic_write gives to checkpoint temporaries match.
    for name in os.listdir(save_dir):
        if _TMP_RE.match(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(osp.join(save_dir, name))
                logger.info('Removed the leftover of an interrupted save: "%s"', name)


def list_checkpoints(save_dir: str) -> List[Tuple[int, str]]:
    """``[(epoch, path), ...]`` of the ``model.pth.tar-<epoch>`` files in ``save_dir``, oldest first."""
    if not osp.isdir(save_dir):
        return []
    found = []
    for name in os.listdir(save_dir):
        m = _CKPT_RE.match(name)
        if m:
            found.append((int(m.group(1)), osp.join(save_dir, name)))
    return sorted(found)


def save_checkpoint(state: Dict[str, Any], save_dir: str, is_best: bool = False,
                    remove_module_from_keys: bool = True, keep_last: Optional[int] = None) -> str:
    """Save ``state`` to ``<save_dir>/model.pth.tar-<state['epoch']>`` atomically.

    Args:
        state (dict): must hold ``state_dict`` and ``epoch`` (epochs completed); usually also
            ``optimizer``, ``scheduler``, ``scaler``, ``rng_state``, ``best_metric``, ``metric_name``.
        save_dir (str): folder (created when missing).
        is_best (bool): also write ``model-best.pth.tar`` (an atomic copy of the new file).
        remove_module_from_keys (bool): strip DataParallel's ``module.`` prefix from the weights.
        keep_last (int, optional): keep only the newest ``keep_last`` ``model.pth.tar-*`` files
            (``model-best.pth.tar`` is never deleted). ``None`` keeps everything.

    Returns:
        str: path of the written checkpoint.
    """
    if not isinstance(state, dict):
        raise TypeError(f'save_checkpoint: state must be a dict, got {type(state).__name__}')
    for key in ('state_dict', 'epoch'):
        if key not in state:
            raise KeyError(f"save_checkpoint: state has no '{key}' entry (required)")
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 1):
        raise ValueError(f'save_checkpoint: keep_last must be a positive int or None, got {keep_last!r}')
    state = dict(state)
    if remove_module_from_keys:
        state['state_dict'] = _strip_module_prefix(state['state_dict'])
    state = _rebuild(state, _encode)

    os.makedirs(save_dir, exist_ok=True)
    _remove_stale_temp_files(save_dir)
    fpath = osp.join(save_dir, f"{CHECKPOINT_PREFIX}{int(state['epoch'])}")
    atomic_torch_save(state, fpath)
    logger.info('Checkpoint saved to "%s"', fpath)

    if is_best:
        best_path = osp.join(save_dir, BEST_CHECKPOINT_NAME)
        with open(fpath, 'rb') as src, atomic_write(best_path, 'wb') as dst:
            shutil.copyfileobj(src, dst)
        logger.info('Best checkpoint updated: "%s"', best_path)

    if keep_last is not None:
        for _, old in list_checkpoints(save_dir)[:-keep_last]:
            if osp.abspath(old) != osp.abspath(fpath):
                os.remove(old)
                logger.debug('Removed old checkpoint "%s" (keep_last=%d)', old, keep_last)
    return fpath


def load_checkpoint(fpath: Union[str, 'os.PathLike[str]'], weights_only: bool = True) -> Any:
    """Load a checkpoint onto the CPU.

    Args:
        fpath (str): path to the file.
        weights_only (bool): use PyTorch's safe unpickler (the default; our own checkpoints load this
            way). Set False only for a trusted file holding arbitrary Python objects.

    Returns:
        dict (or whatever the file holds), with NumPy values restored.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is truncated / not a checkpoint / holds objects the safe loader refuses.
    """
    if fpath is None or fpath == '':
        raise ValueError('load_checkpoint: fpath is empty')
    fpath = os.fspath(fpath)
    if not osp.isfile(fpath):
        raise FileNotFoundError(f'checkpoint file not found: "{fpath}"')
    try:
        checkpoint = torch.load(fpath, map_location='cpu', weights_only=weights_only)
    except pickle.UnpicklingError as e:
        msg = str(e).lower()
        if weights_only and ('weights_only' in msg or 'weights only' in msg):
            raise RuntimeError(
                f'checkpoint "{fpath}" holds Python objects that torch.load(weights_only=True) refuses; '
                f'if you trust this file, call load_checkpoint(fpath, weights_only=False). Detail: {e}'
            ) from e
        raise RuntimeError(f'checkpoint "{fpath}" is corrupt or not a PyTorch checkpoint: {e}') from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise RuntimeError(
            f'checkpoint "{fpath}" is corrupt, truncated or not a PyTorch checkpoint: '
            f'{type(e).__name__}: {e}'
        ) from e
    return _rebuild(checkpoint, _decode)


def restore_checkpoint_state(checkpoint: Dict[str, Any], model: nn.Module,
                             optimizer: Optional[torch.optim.Optimizer] = None,
                             scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None,
                             scaler: Optional[torch.amp.GradScaler] = None, restore_rng: bool = True,
                             fpath: Union[str, 'os.PathLike[str]'] = '<checkpoint>') -> int:
    """Load an already-read checkpoint dict into ``model`` / ``optimizer`` / ``scheduler`` / ``scaler``.

    Returns the checkpoint's ``epoch`` (epochs completed = the epoch to start from).
    """
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise KeyError(f'"{fpath}" has no "state_dict" entry: not a resumable checkpoint')
    unwrap_model(model).load_state_dict(_strip_module_prefix(checkpoint['state_dict']))
    logger.info('Loaded model weights from "%s"', fpath)
    if optimizer is not None:
        if checkpoint.get('optimizer') is None:
            raise KeyError(f'"{fpath}" has no optimizer state; cannot resume the optimizer')
        optimizer.load_state_dict(checkpoint['optimizer'])
        logger.info('Loaded optimizer state')
    if scheduler is not None:
        if checkpoint.get('scheduler') is None:
            raise KeyError(f'"{fpath}" has no scheduler state; cannot resume the scheduler')
        scheduler.load_state_dict(checkpoint['scheduler'])
        logger.info('Loaded scheduler state')
    if scaler is not None and checkpoint.get('scaler'):
        scaler.load_state_dict(checkpoint['scaler'])
    if restore_rng:
        rng_state = checkpoint.get('rng_state')
        if rng_state is None:
            logger.warning('"%s" has no rng_state: the resumed run will not replay the same randomness', fpath)
        else:
            from .tools import set_rng_state

            set_rng_state(rng_state)
    if 'epoch' not in checkpoint:
        raise KeyError(f'"{fpath}" has no "epoch" entry: cannot tell where to resume')
    start_epoch = int(checkpoint['epoch'])
    logger.info('Resuming from epoch %d', start_epoch)
    if checkpoint.get('best_metric') is not None:
        logger.info('Best %s so far: %.4f', checkpoint.get('metric_name', 'metric'), checkpoint['best_metric'])
    elif checkpoint.get('rank1') is not None:
        logger.info('Last rank1 = %.1f%%', 100 * checkpoint['rank1'])
    return start_epoch


def resume_from_checkpoint(fpath: Union[str, 'os.PathLike[str]'], model: nn.Module,
                           optimizer: Optional[torch.optim.Optimizer] = None,
                           scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None,
                           scaler: Optional[torch.amp.GradScaler] = None, restore_rng: bool = True) -> int:
    """Resume training from a checkpoint (Torchreid's call shape).

    Loads model weights, and when given the optimizer, scheduler and AMP scaler states; restores the
    Python / NumPy / torch RNG states saved at the end of that epoch (``restore_rng``).

    Returns:
        int: ``start_epoch`` (the number of epochs already completed).
    """
    checkpoint = load_checkpoint(fpath)
    return restore_checkpoint_state(checkpoint, model, optimizer, scheduler, scaler, restore_rng, fpath)
