"""Optimizers (staged learning rate for pretrained layers, layer-wise lr decay, no weight decay on norms / biases),
per-epoch lr schedules with warmup, and an EMA of the weights."""
from .lr_scheduler import (AVAI_SCH, AVAI_SCHEDULERS, AVAILABLE_LR_SCHEDULERS, AVAILABLE_WARMUP_METHODS,
                           WarmupScheduler, build_lr_scheduler)
from .ema import ModelEMA, evaluation_checkpoint
from .optimizer import AVAI_OPTIMS, AVAILABLE_OPTIMIZERS, build_optimizer, decay_param_groups, layer_ids

# AVAI_*: older names of the AVAILABLE_* tuples (the same objects), kept so existing code still imports.
__all__ = ['build_optimizer', 'build_lr_scheduler', 'WarmupScheduler', 'ModelEMA', 'evaluation_checkpoint', 'decay_param_groups', 'layer_ids',
           'AVAILABLE_OPTIMIZERS', 'AVAILABLE_LR_SCHEDULERS', 'AVAILABLE_WARMUP_METHODS', 'AVAI_OPTIMS', 'AVAI_SCH',
           'AVAI_SCHEDULERS']
