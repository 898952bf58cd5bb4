"""``build_optimizer``: Torchreid's optimizer factory (adam, amsgrad, sgd, rmsprop, radam, adamw)."""
import logging
from typing import Any, Dict, Iterable, List, Sequence, Union

import torch
import torch.nn as nn

from torchreid.utils.model_utils import named_children

logger = logging.getLogger(__name__)

__all__ = ['build_optimizer', 'AVAILABLE_OPTIMIZERS', 'AVAI_OPTIMS']

AVAILABLE_OPTIMIZERS = ('adam', 'amsgrad', 'sgd', 'rmsprop', 'radam', 'adamw')
# Torchreid's name, kept for code written against it.
AVAI_OPTIMS = AVAILABLE_OPTIMIZERS

#: What a torch optimizer takes besides a model: parameters, or param-group dicts.
Params = Iterable[Union[torch.Tensor, Dict[str, Any]]]


def _staged_param_groups(model: nn.Module, lr: float, new_layers: Union[str, Sequence[str]],
                         base_lr_mult: float) -> List[Dict[str, Any]]:
    """Two groups: parameters of the top-level children named in ``new_layers`` at ``lr``; all the
    others (pretrained layers, and parameters owned directly by the model) at ``lr * base_lr_mult``."""
    if isinstance(new_layers, str):
        new_layers = [new_layers] if new_layers else []
    new_layers = list(new_layers or [])
    if not new_layers:
        raise ValueError(
            'build_optimizer: staged_lr=True needs new_layers (names of top-level child modules trained at the '
            'full lr, e.g. ["classifier"]); got none'
        )
    children = named_children(model, new_layers, 'build_optimizer: new_layers')
    new_params = [p for name in new_layers for p in children[name].parameters()]
    new_ids = {id(p) for p in new_params}
    base_params = [p for p in model.parameters() if id(p) not in new_ids]
    logger.info(
        'Staged lr: %s at lr=%g, the other %d tensors at lr=%g',
        new_layers, lr, len(base_params), lr * base_lr_mult,
    )
    groups = []
    if base_params:
        groups.append({'params': base_params, 'lr': lr * base_lr_mult})
    groups.append({'params': new_params})
    return groups


def build_optimizer(
    model: Union[nn.Module, Params],
    optim: str = 'adam',
    lr: float = 0.0003,
    weight_decay: float = 5e-04,
    momentum: float = 0.9,
    sgd_dampening: float = 0,
    sgd_nesterov: bool = False,
    rmsprop_alpha: float = 0.99,
    adam_beta1: float = 0.9,
    adam_beta2: float = 0.99,
    staged_lr: bool = False,
    new_layers: Union[str, Sequence[str]] = '',
    base_lr_mult: float = 0.1,
) -> torch.optim.Optimizer:
    """Build an optimizer for ``model``.

    Args:
        model (nn.Module or iterable): a model (primary use), or an iterable of parameters / param-group
            dicts passed through to the torch optimizer.
        optim (str): one of ``AVAILABLE_OPTIMIZERS``.
        lr, weight_decay: learning rate and weight decay.
        momentum, sgd_dampening, sgd_nesterov: SGD (momentum also RMSprop) options.
        rmsprop_alpha: RMSprop smoothing constant.
        adam_beta1, adam_beta2: betas of Adam, AMSGrad, RAdam and AdamW.
        staged_lr (bool): train the top-level children named in ``new_layers`` at ``lr`` and every other
            parameter at ``lr * base_lr_mult`` (pretrained layers learn slower). Needs a model.
        new_layers (str or list of str): names of top-level child modules (``model.named_children()``).
        base_lr_mult (float): multiplier of ``lr`` for the other parameters.
    """
    if optim not in AVAILABLE_OPTIMIZERS:
        raise ValueError(f'build_optimizer: unknown optimizer {optim!r}; expected one of AVAILABLE_OPTIMIZERS: '
                         f'{", ".join(AVAILABLE_OPTIMIZERS)}')
    if lr <= 0:
        raise ValueError(f'build_optimizer: lr must be > 0, got {lr!r}')

    if isinstance(model, nn.DataParallel) or isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    if isinstance(model, nn.Module):
        if staged_lr:
            param_groups = _staged_param_groups(model, lr, new_layers, base_lr_mult)
        else:
            param_groups = list(model.parameters())
    else:
        if staged_lr:
            raise TypeError(
                'build_optimizer: staged_lr=True needs an nn.Module (to find new_layers by name), '
                f'got {type(model).__name__}'
            )
        try:
            param_groups = list(model)
        except TypeError:
            raise TypeError(
                'build_optimizer: model must be an nn.Module or an iterable of parameters / param groups, '
                f'got {type(model).__name__}'
            ) from None
    if not param_groups:
        raise ValueError('build_optimizer: the model has no parameters to optimize')

    betas = (adam_beta1, adam_beta2)
    if optim == 'adam':
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    if optim == 'amsgrad':
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=True)
    if optim == 'sgd':
        return torch.optim.SGD(
            param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
            dampening=sgd_dampening, nesterov=sgd_nesterov,
        )
    if optim == 'rmsprop':
        return torch.optim.RMSprop(
            param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay, alpha=rmsprop_alpha,
        )
    if optim == 'radam':
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
