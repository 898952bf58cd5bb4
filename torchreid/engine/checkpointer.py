"""Saving, retention and resuming of an engine's models: the :class:`Checkpointer`.

Layout (Torchreid's): ``<save_dir>/<model name>/model.pth.tar-<epochs done>`` and ``model-best.pth.tar``. Every
file is written atomically (:func:`torchreid.utils.checkpoint.save_checkpoint`) and loaded with the safe loader.

A checkpoint describes itself, as timm's and torchvision's weights do: besides the weights, optimizer,
scheduler, AMP scaler, RNG states and best metric (all a resume needs), it records how to rebuild the model
(``model_spec``: the registered architecture name and its factory keywords), the input size and pixel
normalisation it was trained with, the run's configuration and the library version. So
``FeatureExtractor.from_checkpoint(path)``, a test-only run and the ONNX export need nothing else.

Retention: by default the newest ``keep_last=3`` epoch files and ``model-best.pth.tar``.
"""
import logging
import os.path as osp
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch.nn as nn

from torchreid.__version__ import __version__
from torchreid.utils.checkpoint import load_checkpoint, restore_checkpoint_state, save_checkpoint
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
    """

    def __init__(self, save_dir: str, keep_last: Optional[int] = 3,
                 description: Optional[Mapping[str, Mapping[str, Any]]] = None):
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f'Checkpointer: keep_last must be a positive int or None, got {keep_last!r}')
        self.save_dir = save_dir
        self.keep_last = keep_last
        self.description = {name: dict(desc) for name, desc in (description or {}).items()}

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

    def save(self, slots: Mapping[str, ModelSlot], epochs_done: int, training_state: Mapping[str, Any],
             scaler: Any = None, is_best: bool = False) -> Dict[str, str]:
        """Write ``model.pth.tar-<epochs_done>`` for every model (and ``model-best.pth.tar`` when ``is_best``).

        ``training_state`` holds what the engine resumes besides the per-model states (best metric and
        epoch, the metric's name, the last metric, precision...). The RNG states are those of this moment.
        """
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
            paths[name] = save_checkpoint(state, self.model_dir(name), is_best=is_best, keep_last=self.keep_last)
        return paths

    @staticmethod
    def resume(paths: Union[str, Mapping[str, str]], slots: Mapping[str, ModelSlot], scaler: Any = None,
               restore_rng: bool = True) -> Tuple[int, Dict[str, Any]]:
        """Load every model's checkpoint into its slot; returns ``(epochs done, training state of the first)``.

        ``paths``: one path (a single model) or ``{model name: path}``. All checkpoints must be of one epoch.
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
                state = {k: ckpt.get(k) for k in ('metric_name', 'best_metric', 'best_epoch')}
        if len(epochs) != 1:
            raise ValueError(f'resume: the checkpoints were saved at different epochs {sorted(epochs)}')
        return epochs.pop(), state
