"""Saving, retention and resuming of an engine's models: the :class:`Checkpointer`.

Layout (Torchreid's): ``<save_dir>/<model name>/model.pth.tar-<epochs done>`` and ``model-best.pth.tar``. Every
file is written atomically (:func:`torchreid.utils.checkpoint.save_checkpoint`) and loaded with the safe loader.

A checkpoint describes itself, as timm's and torchvision's weights do: besides the weights, optimizer,
scheduler, AMP scaler, RNG states and best metric (all a resume needs), it records how to rebuild the model
(``model_spec``: the registered architecture name and its factory keywords), the input size and pixel
normalisation it was trained with, the run's configuration and the library version. So
``FeatureExtractor.from_checkpoint(path)``, a test-only run and the ONNX export need nothing else.

Retention: by default the newest ``keep_last=3`` epoch files and ``model-best.pth.tar``. Every model's epoch
file is written before any best copy, and the best copy before any deletion; the epoch file of the recorded
best epoch is kept while ``model-best.pth.tar`` does not hold it, and :meth:`Checkpointer.ensure_best` restores
a best file a kill cost (see :mod:`torchreid.utils.checkpoint`).
"""
import contextlib
import logging
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch.nn as nn

from torchreid.__version__ import __version__
from torchreid.utils.checkpoint import (CHECKPOINT_PREFIX, ensure_best_checkpoint, list_checkpoints, load_checkpoint,
                                        prune_checkpoints, restore_checkpoint_state, save_checkpoint,
                                        write_best_checkpoint)
from torchreid.utils.io import remove_stale_temp_files
from torchreid.utils.distributed import broadcast_object
from torchreid.utils.model_utils import unwrap_model
from torchreid.utils.tools import get_rng_state

__all__ = ['Checkpointer', 'ModelSlot']

logger = logging.getLogger(__name__)


class ModelSlot(NamedTuple):
    """A registered model with its optimizer and scheduler (either may be None)."""

    model: nn.Module
    optimizer: Any = None
    scheduler: Any = None


def plain_config(config) -> Optional[dict]:
    """A configuration (a yacs ``CfgNode`` or any mapping) as plain nested dicts and lists, or None."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        return {str(k): plain_config(v) if isinstance(v, (Mapping, list, tuple)) else v for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [plain_config(v) if isinstance(v, (Mapping, list, tuple)) else v for v in config]
    raise TypeError(f'config must be a mapping (e.g. a yacs CfgNode), got {type(config).__name__}')


class Checkpointer:
    """Writes and reads the checkpoints of a set of models.

    Args:
        save_dir: run folder; model ``name`` goes to ``<save_dir>/<name>/``.
        keep_last: keep the newest N epoch checkpoints of each model (None: all).
        description: ``{model name: what the checkpoints of that model record about it}`` (:meth:`describe`).
        writes: False on the ranks of a data-parallel run other than 0: every method that writes or deletes
            files does nothing there (rank 0 holds the same weights and writes them once).
    """

    def __init__(self, save_dir: str, keep_last: Optional[int] = 3,
                 description: Optional[Mapping[str, Mapping[str, Any]]] = None, writes: bool = True):
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f'Checkpointer: keep_last must be a positive int or None, got {keep_last!r}')
        self.save_dir = save_dir
        self.keep_last = keep_last
        self.description = {name: dict(desc) for name, desc in (description or {}).items()}
        self.writes = bool(writes)

    @staticmethod
    def describe(model: nn.Module, input_size: Optional[Sequence[int]] = None,
                 norm_mean: Optional[Sequence[float]] = None, norm_std: Optional[Sequence[float]] = None,
                 config: Optional[Mapping] = None) -> Dict[str, Any]:
        """The self-description of one model (values a ``weights_only`` load accepts)."""
        from torchreid.models import describe_model

        return {
            'model_spec': describe_model(model),
            'input_size': None if input_size is None else [int(x) for x in input_size],
            'normalization': None if norm_mean is None or norm_std is None else
            {'mean': [float(x) for x in norm_mean], 'std': [float(x) for x in norm_std]},
            'config': plain_config(config),
            'torchreid_version': __version__,
        }

    def model_dir(self, name: str) -> str:
        return osp.join(self.save_dir, name)

    def epoch_path(self, name: str, epochs_done: int) -> str:
        return osp.join(self.model_dir(name), f'{CHECKPOINT_PREFIX}{int(epochs_done)}')

    def save(self, slots: Mapping[str, ModelSlot], epochs_done: int, training_state: Mapping[str, Any],
             scaler: Any = None, is_best: bool = False, retain: bool = True) -> Dict[str, str]:
        """Write ``model.pth.tar-<epochs_done>`` for every model, then ``model-best.pth.tar`` when ``is_best``,
        then (``retain``) delete the epoch files ``keep_last`` no longer keeps.

        ``training_state`` holds what the engine resumes besides the per-model states (best metric and
        epoch, the metric's name, the last metric, whether a test is pending...). The RNG states are those
        of this moment. ``retain=False`` for a provisional save (an epoch saved before its test), which must
        not push a kept file out.
        """
        if not self.writes:
            return {name: self.epoch_path(name, epochs_done) for name in slots}
        rng_state = get_rng_state()
        paths = {}
        for name, slot in slots.items():
            state = {
                'state_dict': unwrap_model(slot.model).state_dict(),
                'epoch': int(epochs_done),
                'optimizer': slot.optimizer.state_dict() if slot.optimizer is not None else None,
                'scheduler': slot.scheduler.state_dict() if slot.scheduler is not None else None,
                'scaler': scaler.state_dict() if scaler is not None else None,
                'rng_state': rng_state,
                **dict(training_state),
                **self.description.get(name, {'torchreid_version': __version__}),
            }
            paths[name] = save_checkpoint(state, self.model_dir(name), verbose=False)
            if retain:
                logger.info('Checkpoint saved to "%s"', paths[name])
            else:
                logger.info('Epoch %d saved before its test to "%s"', int(epochs_done), paths[name])
        if is_best:
            self.write_best(slots, epochs_done)
        if retain:
            self.prune(slots, training_state.get('best_epoch'))
        return paths

    def write_best(self, names: Iterable[str], epochs_done: int) -> None:
        """``model-best.pth.tar`` of every model: an atomic copy of its ``model.pth.tar-<epochs_done>``."""
        if not self.writes:
            return
        for name in names:
            write_best_checkpoint(self.model_dir(name), epochs_done)

    def prune(self, names: Iterable[str], best_epoch: Optional[int] = None) -> None:
        """Apply ``keep_last`` to every model's folder (the best epoch's file survives until copied)."""
        if self.keep_last is None or not self.writes:
            return
        for name in names:
            prune_checkpoints(self.model_dir(name), self.keep_last, best_epoch=best_epoch)

    def discard(self, names: Iterable[str], epochs_done: int) -> None:
        """Delete the provisional ``model.pth.tar-<epochs_done>`` files (neither due nor best after the test)."""
        if not self.writes:
            return
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.epoch_path(name, epochs_done))

    def remove_leftovers(self, names: Iterable[str]) -> List[str]:
        """Delete the temporary files killed writes left in the run folder and the model folders.

        Only while this process holds the folder's :class:`~torchreid.utils.io.RunLock`: another live run's
        temporary files look the same.
        """
        if not self.writes:
            return []
        removed = remove_stale_temp_files(self.save_dir, recursive=False)
        for name in names:
            removed += remove_stale_temp_files(self.model_dir(name), recursive=False)
        return removed

    def ensure_best(self, names: Iterable[str], best_epoch: Optional[int], source_dirs: Mapping[str, str],
                    metric_name: str = 'metric') -> bool:
        """Make every model's ``model-best.pth.tar`` hold ``best_epoch`` (restoring it from the epoch file when
        a kill lost it; ``source_dirs``: the folders resumed from). False when some best weights are gone.
        Without ``writes`` the answer is rank 0's (a collective: every rank calls it)."""
        if not self.writes:
            return bool(broadcast_object(None))
        ok = True
        for name in names:
            restored = ensure_best_checkpoint(self.model_dir(name), best_epoch, source_dir=source_dirs.get(name),
                                              metric_name=metric_name)
            ok = ok and restored is not None
        return bool(broadcast_object(ok))

    def last_saved(self, name: str) -> Optional[str]:
        """The newest ``model.pth.tar-*`` of model ``name``, or None."""
        found = list_checkpoints(self.model_dir(name))
        return found[-1][1] if found else None

    @staticmethod
    def resume(paths: Union[str, Mapping[str, str]], slots: Mapping[str, ModelSlot], scaler: Any = None,
               restore_rng: bool = True) -> Tuple[int, Dict[str, Any]]:
        """Load every model's checkpoint into its slot; returns ``(epochs done, training state of the first)``.

        ``paths``: one path (a single model) or ``{model name: path}``. All checkpoints must be of one epoch.
        The training state has ``metric_name``, ``best_metric``, ``best_epoch``, ``test_pending`` (the epoch
        was saved before its test, which did not finish) and ``ema`` (the weights' moving average, or None).
        """
        names = list(slots)
        if isinstance(paths, Mapping):
            paths = dict(paths)
            missing = [n for n in names if n not in paths]
            if missing:
                raise KeyError(f'resume: no checkpoint given for model(s) {missing}')
        else:
            if len(names) != 1:
                raise ValueError(f'resume: {len(names)} models are registered ({names}); '
                                 'pass a dict {name: checkpoint path}')
            paths = {names[0]: paths}
        epochs, state = set(), {}
        for i, name in enumerate(names):
            ckpt = load_checkpoint(paths[name])
            slot = slots[name]
            epochs.add(restore_checkpoint_state(ckpt, slot.model, slot.optimizer, slot.scheduler,
                                                scaler if i == 0 else None, restore_rng=restore_rng and i == 0,
                                                fpath=paths[name]))
            if i == 0:
                state = {k: ckpt.get(k) for k in ('metric_name', 'best_metric', 'best_epoch', 'test_pending', 'ema')}
        if len(epochs) != 1:
            raise ValueError(f'resume: the checkpoints were saved at different epochs {sorted(epochs)}')
        return epochs.pop(), state
