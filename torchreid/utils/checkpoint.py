"""Checkpoints: atomic save, safe load, resume (Torchreid's names and call shapes).

Layout (Torchreid's): ``<save_dir>/model.pth.tar-<epoch>`` where ``epoch`` is the number of epochs
completed, plus ``<save_dir>/model-best.pth.tar`` when the declared metric improved.

Every file is written through :func:`torchreid.utils.io.atomic_torch_save`, so a process killed while
saving leaves the previous checkpoint untouched and no half-written file under the final name.
``model-best.pth.tar`` is an atomic copy of the epoch file it comes from, written before retention may
delete that file; retention never deletes the epoch file of the recorded ``best_epoch`` while
``model-best.pth.tar`` does not hold that epoch, and :func:`ensure_best_checkpoint` (called on resume)
restores a best file lost to a kill from that epoch file.

Resuming with an optimizer whose learning rate differs from the checkpoint's applies the new one (the
schedule continues from its epoch with the new base lr) and says so in the log.

Checkpoints load with ``torch.load(weights_only=True)``: NumPy arrays and scalars found in the state
(e.g. NumPy's RNG state) are stored as plain lists / Python numbers and turned back into NumPy on load,
so nothing needs the unsafe pickle path.
"""
import contextlib
import logging
import math
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .io import atomic_torch_save, atomic_write, fault_point
from .model_utils import unwrap_model

__all__ = [
    'CHECKPOINT_PREFIX',
    'BEST_CHECKPOINT_NAME',
    'save_checkpoint',
    'load_checkpoint',
    'resume_from_checkpoint',
    'restore_checkpoint_state',
    'list_checkpoints',
    'prune_checkpoints',
    'write_best_checkpoint',
    'checkpoint_epoch',
    'ensure_best_checkpoint',
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = 'model.pth.tar-'
BEST_CHECKPOINT_NAME = 'model-best.pth.tar'
_CKPT_RE = re.compile(r'^model\.pth\.tar-(\d+)$')
_COPY_CHUNK = 1 << 20

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
                    remove_module_from_keys: bool = True, keep_last: Optional[int] = None,
                    verbose: bool = True) -> str:
    """Save ``state`` to ``<save_dir>/model.pth.tar-<state['epoch']>`` atomically.

    Args:
        state (dict): must hold ``state_dict`` and ``epoch`` (epochs completed); usually also
            ``optimizer``, ``scheduler``, ``scaler``, ``rng_state``, ``best_metric``, ``best_epoch``,
            ``metric_name``.
        save_dir (str): folder (created when missing).
        is_best (bool): also write ``model-best.pth.tar`` (an atomic copy of the new file, written before
            any old file is removed).
        remove_module_from_keys (bool): strip DataParallel's ``module.`` prefix from the weights.
        keep_last (int, optional): keep only the newest ``keep_last`` ``model.pth.tar-*`` files
            (:func:`prune_checkpoints`: ``model-best.pth.tar`` is never deleted, nor the epoch file of
            ``state['best_epoch']`` while the best file does not hold it). ``None`` keeps everything.
        verbose (bool): log where the checkpoint went (the engine's checkpointer says it itself).

    Returns:
        str: path of the written checkpoint.

    Raises:
        torchreid.utils.io.DiskFullError: the disk is full (the files already there are intact).
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
    fpath = osp.join(save_dir, f"{CHECKPOINT_PREFIX}{int(state['epoch'])}")
    atomic_torch_save(state, fpath)
    if verbose:
        logger.info('Checkpoint saved to "%s"', fpath)

    if is_best:
        write_best_checkpoint(save_dir, int(state['epoch']))
    if keep_last is not None:
        prune_checkpoints(save_dir, keep_last, best_epoch=state.get('best_epoch'), keep=[fpath])
    return fpath


def _copy_atomically(src: str, dst: str) -> None:
    """Copy ``src`` over ``dst`` atomically (in at least two chunks, so the ``write`` fault point falls
    inside the copy)."""
    size = os.path.getsize(src)
    chunk = max(1, min(_COPY_CHUNK, size // 2))
    with open(src, 'rb') as fin, atomic_write(dst, 'wb') as fout:
        first = True
        while True:
            data = fin.read(chunk)
            if not data:
                break
            fout.write(data)
            if first:
                fout.flush()
                fault_point('write', dst)
                first = False


def write_best_checkpoint(save_dir: str, epoch: int) -> str:
    """Make ``<save_dir>/model-best.pth.tar`` an atomic copy of ``model.pth.tar-<epoch>``; return its path."""
    src = osp.join(save_dir, f'{CHECKPOINT_PREFIX}{int(epoch)}')
    if not osp.isfile(src):
        raise FileNotFoundError(f'write_best_checkpoint: "{src}" does not exist (the best epoch must be saved first)')
    fault_point('best', src)
    best_path = osp.join(save_dir, BEST_CHECKPOINT_NAME)
    _copy_atomically(src, best_path)
    logger.info('Best checkpoint updated: "%s" (epoch %d)', best_path, int(epoch))
    return best_path


def checkpoint_epoch(fpath: str) -> Optional[int]:
    """The ``epoch`` a checkpoint file records, or None when it is missing, unreadable or has none.

    Reads the file memory-mapped (the tensors are not loaded), so it is cheap even for a large model.
    """
    if not osp.isfile(fpath):
        return None
    try:
        ckpt = torch.load(fpath, map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "no epoch"
        return None
    epoch = ckpt.get('epoch') if isinstance(ckpt, dict) else None
    return int(epoch) if isinstance(epoch, int) else None


def prune_checkpoints(save_dir: str, keep_last: int, best_epoch: Optional[int] = None,
                      keep: Sequence[str] = ()) -> List[str]:
    """Delete all but the newest ``keep_last`` ``model.pth.tar-*`` files of ``save_dir``; return the deleted.

    Never deleted: ``model-best.pth.tar``, the files in ``keep``, and the epoch file of ``best_epoch`` while
    ``model-best.pth.tar`` does not hold that epoch (after a kill during its write, that file is the only
    copy of the best weights).
    """
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
        raise ValueError(f'prune_checkpoints: keep_last must be a positive int, got {keep_last!r}')
    protected = {osp.abspath(p) for p in keep}
    removed = []
    for epoch, old in list_checkpoints(save_dir)[:-keep_last]:
        if osp.abspath(old) in protected:
            continue
        if best_epoch is not None and epoch == int(best_epoch) and \
                checkpoint_epoch(osp.join(save_dir, BEST_CHECKPOINT_NAME)) != epoch:
            logger.warning('Kept "%s": it holds the best weights (epoch %d) and %s does not', old, epoch,
                           BEST_CHECKPOINT_NAME)
            continue
        fault_point('retention', old)
        with contextlib.suppress(FileNotFoundError):
            os.remove(old)
            removed.append(old)
            logger.debug('Removed old checkpoint "%s" (keep_last=%d)', old, keep_last)
    return removed


def ensure_best_checkpoint(save_dir: str, best_epoch: Optional[int], source_dir: Optional[str] = None,
                           metric_name: str = 'metric') -> Optional[str]:
    """Make sure ``<save_dir>/model-best.pth.tar`` holds epoch ``best_epoch``; return its path, or None.

    Called on resume: a run killed while writing the best file leaves the previous one (or none), and the
    resumed run would never write it again (its best metric is already that epoch's). The epoch file of
    ``best_epoch`` (in ``save_dir`` or ``source_dir``, the folder resumed from) or the source folder's best
    file is copied over atomically; when no file holds those weights any more, an ERROR says so and None is
    returned.
    """
    if best_epoch is None:
        return None
    best_epoch = int(best_epoch)
    best_path = osp.join(save_dir, BEST_CHECKPOINT_NAME)
    if _holds_epoch(best_path, best_epoch):
        return best_path
    folders = [save_dir] + ([source_dir] if source_dir and osp.abspath(source_dir) != osp.abspath(save_dir) else [])
    candidates = [osp.join(d, f'{CHECKPOINT_PREFIX}{best_epoch}') for d in folders]
    candidates += [osp.join(d, BEST_CHECKPOINT_NAME) for d in folders[1:]]
    state = 'missing' if not osp.exists(best_path) else 'not the best epoch (or unreadable)'
    for src in candidates:
        if _holds_epoch(src, best_epoch):
            _copy_atomically(src, best_path)
            if osp.abspath(osp.dirname(src)) == osp.abspath(save_dir) or state != 'missing':
                logger.warning('"%s" was %s: restored the best weights (epoch %d) from "%s"', best_path, state,
                               best_epoch, src)
            else:  # resumed into a new folder: the best so far comes along
                logger.info('Best weights so far (epoch %d) copied from "%s" to "%s"', best_epoch, src, best_path)
            return best_path
    logger.error('The best weights (epoch %d, by %s) are gone: "%s" is %s and no model.pth.tar-%d is left in %s. '
                 'model-best.pth.tar will hold the best of the epochs trained from now on', best_epoch,
                 metric_name, best_path, state, best_epoch, ' or '.join(f'"{d}"' for d in folders))
    return None


def _holds_epoch(fpath: str, epoch: int) -> bool:
    """Whether ``fpath`` is a complete, loadable checkpoint of ``epoch`` (read in full: this is the check
    that decides whether a file may stand for the best weights)."""
    if not osp.isfile(fpath):
        return False
    try:
        ckpt = load_checkpoint(fpath)
    except (RuntimeError, OSError) as exc:
        logger.warning('"%s" cannot be read: %s', fpath, exc)
        return False
    return isinstance(ckpt, dict) and 'state_dict' in ckpt and ckpt.get('epoch') == epoch


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
                f'unpickling them can run code. If you trust this file, call load_checkpoint(fpath, '
                f'weights_only=False) (main.py: --allow-unsafe-pickle; better, convert it once: '
                f'python scripts/convert_weights.py "{fpath}" --allow-unsafe-pickle). Detail: {e}'
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
    configured_lrs = None
    if optimizer is not None:
        if checkpoint.get('optimizer') is None:
            raise KeyError(f'"{fpath}" has no optimizer state; cannot resume the optimizer')
        configured_lrs = _base_lrs(optimizer)
        optimizer.load_state_dict(checkpoint['optimizer'])
        logger.info('Loaded optimizer state')
    if scheduler is not None:
        if checkpoint.get('scheduler') is None:
            raise KeyError(f'"{fpath}" has no scheduler state; cannot resume the scheduler')
        scheduler.load_state_dict(checkpoint['scheduler'])
        logger.info('Loaded scheduler state')
    if configured_lrs is not None:
        _apply_configured_lr(optimizer, scheduler, configured_lrs, fpath)
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


def _base_lrs(optimizer: torch.optim.Optimizer) -> List[float]:
    """Each param group's base lr: the one a scheduler started from (``initial_lr``), else its lr."""
    return [float(g.get('initial_lr', g['lr'])) for g in optimizer.param_groups]


def _apply_configured_lr(optimizer: torch.optim.Optimizer, scheduler: Any, configured: List[float],
                         fpath: str) -> None:
    """After a resume, give the param groups the base lr the optimizer was built with when it differs from
    the checkpoint's: a user resuming with a new lr means it (Torchreid's scripts build the optimizer from the
    config, then resume). The schedule keeps its place: the current lr is the new base times the factor the
    schedule had reached."""
    saved = _base_lrs(optimizer)
    if len(saved) != len(configured) or all(math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
                                            for a, b in zip(saved, configured)):
        return
    before = [g['lr'] for g in optimizer.param_groups]
    for group, old_base, new_base in zip(optimizer.param_groups, saved, configured):
        factor = group['lr'] / old_base if old_base else 1.0
        group['lr'] = new_base * factor
        if 'initial_lr' in group:
            group['initial_lr'] = new_base
    if scheduler is not None:
        if hasattr(scheduler, 'base_lrs'):
            scheduler.base_lrs = list(configured)
        if hasattr(scheduler, '_last_lr'):
            scheduler._last_lr = [g['lr'] for g in optimizer.param_groups]
    logger.warning('Learning rate: "%s" was trained with base lr %s, this run\'s optimizer has %s: the new lr '
                   'applies (current lr %s -> %s, the schedule continues from its epoch)', fpath,
                   _fmt_lrs(saved), _fmt_lrs(configured), _fmt_lrs(before),
                   _fmt_lrs([g['lr'] for g in optimizer.param_groups]))


def _fmt_lrs(lrs: Sequence[float]) -> str:
    unique = sorted(set(lrs))
    return f'{unique[0]:.6g}' if len(unique) == 1 else '[' + ', '.join(f'{v:.6g}' for v in lrs) + ']'


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
