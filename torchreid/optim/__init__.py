"""Optimizers (with a staged learning rate for pretrained layers) and per-epoch lr schedules with warmup."""
from .lr_scheduler import AVAI_SCHEDULERS, WarmupScheduler, build_lr_scheduler
from .optimizer import AVAI_OPTIMS, build_optimizer

__all__ = ['build_optimizer', 'build_lr_scheduler', 'WarmupScheduler', 'AVAI_OPTIMS', 'AVAI_SCHEDULERS']
