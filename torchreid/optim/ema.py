"""``ModelEMA``: an exponential moving average of a model's weights, evaluated in place of the model.

After every optimizer step, ``ema.update(model)`` moves each floating-point parameter of the averaged copy
towards the model's: ``ema = d * ema + (1 - d) * model``. The decay warms up,
``d_n = decay * (1 - exp(-n / warmup_updates))`` after ``n`` updates, so the average follows the model closely
while its early weights are still poor and settles to ``decay`` after a few ``warmup_updates`` (YOLOv5's
EMA warm-up). Buffers (BatchNorm running statistics, counters) are **copied** from the model,
not averaged: they describe the activations of the current weights.

Written here rather than taken from timm's ``ModelEmaV3`` (which averages the buffers, not copies them, and
warms up with a power law) or ``torch.optim.swa_utils.AveragedModel`` (no warm-up, buffers left stale): the
three behaviours above are the recipe's.

The engine wiring: create ``ModelEMA(model)`` after the model is on its device (and before wrapping it in
DDP is fine: the wrapper is unwrapped), call ``update(model)`` right after each ``optimizer.step()``, evaluate
and export ``ema.module``, and save ``ema.state_dict()`` in checkpoints (``load_state_dict`` on resume).
"""
import copy
import logging
import math
from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn as nn

from torchreid.utils.model_utils import unwrap_model

__all__ = ['ModelEMA', 'evaluation_checkpoint']

logger = logging.getLogger(__name__)


class ModelEMA:
    """EMA of ``model``'s weights (see the module docstring).

    Args:
        model: the model being trained (DataParallel / DDP / ``torch.compile`` wrappers are unwrapped).
        decay: the final decay, in [0, 1).
        warmup_updates: the warm-up time constant in updates; 0 for a constant ``decay`` from the start.
        device: where the averaged copy lives (e.g. ``'cpu'`` to spare GPU memory); default: the model's.

    Attributes:
        module: the averaged model, in eval mode, its parameters without gradients.
        num_updates: how many times :meth:`update` ran.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, warmup_updates: int = 2000,
                 device: Optional[Union[str, torch.device]] = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'ModelEMA: decay must lie in [0, 1), got {decay!r}')
        if isinstance(warmup_updates, bool) or int(warmup_updates) != warmup_updates or warmup_updates < 0:
            raise ValueError(f'ModelEMA: warmup_updates must be an int >= 0, got {warmup_updates!r}')
        self.decay = float(decay)
        self.warmup_updates = int(warmup_updates)
        self.num_updates = 0
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        if device is not None:
            self.module.to(device)
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if self.warmup_updates == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-(self.num_updates + 1) / self.warmup_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model`` (call it after each optimizer step)."""
        model = unwrap_model(model)
        decay = self.current_decay()
        own_params = dict(self.module.named_parameters())
        ema_values, model_values = [], []
        for name, param in model.named_parameters():
            if name not in own_params:
                raise KeyError(f'ModelEMA.update: the model has a parameter {name!r} the averaged copy lacks '
                               f'(was the model changed after the ModelEMA was created?)')
            target = own_params[name]
            if target.is_floating_point():
                ema_values.append(target)
                model_values.append(param.detach().to(device=target.device, dtype=target.dtype))
            else:
                target.copy_(param)
        if ema_values:
            torch._foreach_lerp_(ema_values, model_values, 1.0 - decay)
        own_buffers = dict(self.module.named_buffers())
        for name, buf in model.named_buffers():
            if name in own_buffers:
                own_buffers[name].copy_(buf)
        self.num_updates += 1

    def state_dict(self) -> Dict[str, Any]:
        """``{'module': averaged weights, 'num_updates', 'decay', 'warmup_updates'}`` (plain values and tensors:
        loadable with ``torch.load(weights_only=True)``)."""
        return {'module': self.module.state_dict(), 'num_updates': self.num_updates, 'decay': self.decay,
                'warmup_updates': self.warmup_updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (strictly: the same architecture)."""
        missing = [k for k in ('module', 'num_updates') if k not in state]
        if missing:
            raise KeyError(f'ModelEMA.load_state_dict: missing {missing}; expected the dict ModelEMA.state_dict() '
                           f'returns')
        self.module.load_state_dict(state['module'], strict=True)
        self.num_updates = int(state['num_updates'])
        self.decay = float(state.get('decay', self.decay))
        self.warmup_updates = int(state.get('warmup_updates', self.warmup_updates))

    def __repr__(self) -> str:
        return (f'ModelEMA(decay={self.decay}, warmup_updates={self.warmup_updates}, '
                f'num_updates={self.num_updates}, module={type(self.module).__name__})')


def evaluation_checkpoint(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The checkpoint with the weights to evaluate as its ``state_dict``: the EMA's when the run kept one
    (``checkpoint['ema']``, written by the engine with ``train.ema_decay``), so a test-only run, a
    ``FeatureExtractor`` or a model soup uses the weights the run evaluated; otherwise the checkpoint itself."""
    ema = checkpoint.get('ema') if isinstance(checkpoint, Mapping) else None
    if not ema or 'module' not in ema:
        return dict(checkpoint)
    logger.info('Using the EMA weights of the checkpoint (%d updates)', int(ema.get('num_updates', 0)))
    return {**checkpoint, 'state_dict': ema['module']}
