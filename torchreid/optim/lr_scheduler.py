"""``build_lr_scheduler``: per-epoch learning-rate schedules (single_step, multi_step, cosine) with an
optional warmup.

One scheduler class computes the learning rate in closed form from ``last_epoch``, so a resumed run
(``state_dict`` / ``load_state_dict``) continues with exactly the same values, and warmup and main
schedule need no chaining of several torch schedulers.
"""
import bisect
import logging
import math
import numbers
from typing import Any, List, Optional, Sequence, Union

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

__all__ = ['build_lr_scheduler', 'WarmupScheduler', 'AVAILABLE_LR_SCHEDULERS', 'AVAILABLE_WARMUP_METHODS',
           'AVAI_SCH', 'AVAI_SCHEDULERS']

AVAILABLE_LR_SCHEDULERS = ('single_step', 'multi_step', 'cosine')
AVAILABLE_WARMUP_METHODS = ('linear', 'constant')
# Older names of the same tuple: Torchreid's (AVAI_SCH) and this project's first one (AVAI_SCHEDULERS).
AVAI_SCH = AVAILABLE_LR_SCHEDULERS
AVAI_SCHEDULERS = AVAILABLE_LR_SCHEDULERS


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


class WarmupScheduler(LRScheduler):
    """Per-epoch schedule: ``warmup_epochs`` of warmup, then the main schedule counted from the warmup end.

    At epoch ``e`` (``last_epoch``, 0 for the first epoch) each group's lr is ``base_lr * factor(e)``:

    - warmup (``e < warmup_epochs``): ``linear``: ``warmup_factor + (1 - warmup_factor) * e / warmup_epochs``
      (from ``warmup_factor * base_lr`` up to ``base_lr`` reached at ``e = warmup_epochs``); ``constant``:
      ``warmup_factor``.
    - then with ``t = e - warmup_epochs``:
      ``single_step``: ``gamma ** (t // stepsize)``; ``multi_step``: ``gamma ** (number of milestones <= t)``;
      ``cosine``: ``base_lr`` for the first ``cosine_delay_epochs`` (FastReID's delay epochs), then with
      ``u = t - cosine_delay_epochs``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * u / T)) / 2`` with
      ``T = max_epoch - warmup_epochs - cosine_delay_epochs``, so the lr reaches ``min_lr`` at
      ``e = max_epoch`` and stays there.
    """

    def __init__(self, optimizer: Optimizer, mode: str, stepsize: Optional[int] = None,
                 milestones: Sequence[int] = (), gamma: float = 0.1, max_epoch: int = 1, warmup_epochs: int = 0,
                 warmup_factor: float = 0.1, warmup_method: str = 'linear', min_lr: float = 0.0,
                 cosine_delay_epochs: int = 0, last_epoch: int = -1):
        self.mode = mode
        self.stepsize = stepsize
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.max_epoch = max_epoch
        self.warmup_epochs = warmup_epochs
        self.warmup_factor = warmup_factor
        self.warmup_method = warmup_method
        self.min_lr = min_lr
        self.cosine_delay_epochs = cosine_delay_epochs
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            if self.warmup_method == 'constant':
                return base_lr * self.warmup_factor
            alpha = epoch / self.warmup_epochs
            return base_lr * (self.warmup_factor + (1.0 - self.warmup_factor) * alpha)
        t = epoch - self.warmup_epochs
        if self.mode == 'single_step':
            return base_lr * self.gamma ** (t // self.stepsize)
        if self.mode == 'multi_step':
            return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)
        # cosine; a group whose base lr is below min_lr keeps its base lr instead of growing.
        t = max(0, t - self.cosine_delay_epochs)
        period = max(1, self.max_epoch - self.warmup_epochs - self.cosine_delay_epochs)
        floor = min(self.min_lr, base_lr)
        progress = min(t, period) / period
        return floor + (base_lr - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0

    def get_lr(self) -> List[float]:
        return [self._lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> List[float]:
        return self.get_lr()


def build_lr_scheduler(
    optimizer: Optimizer,
    lr_scheduler: str = 'single_step',
    stepsize: Union[int, Sequence[int]] = 1,
    gamma: float = 0.1,
    max_epoch: int = 1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.1,
    min_lr: float = 0.0,
    warmup_method: str = 'linear',
    cosine_delay_epochs: int = 0,
) -> WarmupScheduler:
    """Build a per-epoch learning-rate scheduler (call ``scheduler.step()`` once at the end of every epoch).

    Args:
        optimizer: a torch optimizer.
        lr_scheduler (str): ``'single_step'``, ``'multi_step'`` or ``'cosine'``.
        stepsize (int or list of int): ``single_step``: decay every ``stepsize`` epochs (a list: its last
            value, as Torchreid); ``multi_step``: list of milestone epochs.
        gamma (float): decay factor of the step schedules.
        max_epoch (int): length of the cosine schedule (warmup included).
        warmup_epochs (int): number of warmup epochs (0: none).
        warmup_factor (float): lr multiplier at the first warmup epoch, in (0, 1].
        min_lr (float): final lr of the cosine schedule.
        warmup_method (str): ``'linear'`` or ``'constant'``.
        cosine_delay_epochs (int): ``cosine`` only: epochs at the full lr after the warmup, before the decay
            starts (FastReID's delay epochs): the network learns at the peak lr while it is far from
            converged and is annealed only over the last ``max_epoch - warmup_epochs - cosine_delay_epochs``.
    Milestones and step sizes count from the end of the warmup.
    """
    if lr_scheduler not in AVAILABLE_LR_SCHEDULERS:
        raise ValueError(
            f'build_lr_scheduler: unknown lr_scheduler {lr_scheduler!r}; expected one of AVAILABLE_LR_SCHEDULERS: '
            f'{", ".join(AVAILABLE_LR_SCHEDULERS)}'
        )
    if not _is_int(warmup_epochs) or warmup_epochs < 0:
        raise ValueError(f'build_lr_scheduler: warmup_epochs must be an int >= 0, got {warmup_epochs!r}')
    if warmup_method not in AVAILABLE_WARMUP_METHODS:
        raise ValueError(
            f'build_lr_scheduler: unknown warmup_method {warmup_method!r}; expected one of '
            f'AVAILABLE_WARMUP_METHODS: {", ".join(AVAILABLE_WARMUP_METHODS)}'
        )
    if warmup_epochs > 0 and not 0.0 < warmup_factor <= 1.0:
        raise ValueError(f'build_lr_scheduler: warmup_factor must lie in (0, 1], got {warmup_factor!r}')
    if gamma <= 0:
        raise ValueError(f'build_lr_scheduler: gamma must be > 0, got {gamma!r}')
    if min_lr < 0:
        raise ValueError(f'build_lr_scheduler: min_lr must be >= 0, got {min_lr!r}')

    single, milestones = None, ()
    if lr_scheduler == 'single_step':
        if isinstance(stepsize, (list, tuple)):
            if not stepsize:
                raise ValueError('build_lr_scheduler: single_step got an empty stepsize list')
            stepsize = stepsize[-1]
        if not _is_int(stepsize) or stepsize < 1:
            raise ValueError(f'build_lr_scheduler: single_step needs stepsize as an int >= 1, got {stepsize!r}')
        single = int(stepsize)
    elif lr_scheduler == 'multi_step':
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(
                f'build_lr_scheduler: multi_step needs stepsize as a list of epochs, got {type(stepsize).__name__} '
                f'{stepsize!r}'
            )
        if not stepsize or not all(_is_int(s) and s >= 1 for s in stepsize):
            raise ValueError(f'build_lr_scheduler: multi_step milestones must be ints >= 1, got {list(stepsize)!r}')
        milestones = [int(s) for s in stepsize]
    else:
        if not _is_int(max_epoch) or max_epoch < 1:
            raise ValueError(f'build_lr_scheduler: cosine needs max_epoch as an int >= 1, got {max_epoch!r}')
        if not _is_int(cosine_delay_epochs) or cosine_delay_epochs < 0:
            raise ValueError(
                f'build_lr_scheduler: cosine_delay_epochs must be an int >= 0, got {cosine_delay_epochs!r}'
            )
        if warmup_epochs + cosine_delay_epochs >= max_epoch:
            raise ValueError(
                f'build_lr_scheduler: warmup_epochs ({warmup_epochs}) + cosine_delay_epochs ({cosine_delay_epochs}) '
                f'must be smaller than max_epoch ({max_epoch}) for the cosine schedule'
            )

    return WarmupScheduler(
        optimizer, lr_scheduler, stepsize=single, milestones=milestones, gamma=float(gamma),
        max_epoch=int(max_epoch), warmup_epochs=int(warmup_epochs), warmup_factor=float(warmup_factor),
        warmup_method=warmup_method, min_lr=float(min_lr),
        cosine_delay_epochs=int(cosine_delay_epochs) if lr_scheduler == 'cosine' else 0,
    )
