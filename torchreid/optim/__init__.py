"""Optimizers (with a staged learning rate for pretrained layers) and per-epoch lr schedules with warmup."""
from .lr_scheduler import (AVAI_SCH, AVAI_SCHEDULERS, AVAILABLE_LR_SCHEDULERS, AVAILABLE_WARMUP_METHODS,
                           WarmupScheduler, build_lr_scheduler)
from .optimizer import AVAI_OPTIMS, AVAILABLE_OPTIMIZERS, build_optimizer

# AVAI_*: older names of the AVAILABLE_* tuples (the same objects), kept so existing code still imports.
__all__ = ['build_optimizer', 'build_lr_scheduler', 'WarmupScheduler', 'AVAILABLE_OPTIMIZERS',
           'AVAILABLE_LR_SCHEDULERS', 'AVAILABLE_WARMUP_METHODS', 'AVAI_OPTIMS', 'AVAI_SCH', 'AVAI_SCHEDULERS']
