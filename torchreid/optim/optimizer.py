"""``build_optimizer``: Torchreid's optimizer factory (adam, amsgrad, sgd, rmsprop, radam, adamw), with the
transformer recipe's options: layer-wise lr decay and no weight decay on norms, biases, position embeddings
and class tokens."""
import logging
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from torchreid.utils.model_utils import named_children

logger = logging.getLogger(__name__)

__all__ = ['build_optimizer', 'AVAILABLE_OPTIMIZERS', 'AVAI_OPTIMS', 'layer_ids', 'decay_param_groups']

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


#: Top-level children of a ReID model that belong to its head (trained from scratch): the top layer in
#: layer-wise lr decay. The same names as ``torchreid.models.head.NEW_LAYER_NAMES`` (not imported: optim does
#: not depend on models).
_HEAD_CHILDREN = ('fc', 'bnneck', 'classifier', 'global_pool', 'dropout')


def layer_ids(model: nn.Module) -> Tuple[Dict[str, int], int]:
    """``({parameter name: depth}, number of depths)`` for layer-wise lr decay; the head is the deepest.

    * a model with timm's ``group_matcher`` (timm models, ``timm/...`` ReID models): timm's grouping
      (stem 0, then one depth per transformer block / CNN stage, the head last);
    * a ReID model built from stages (``model._stage_names``): one depth per stage in order, the head last;
    * any other module: one depth per top-level child in order, the head children last.
    Parameters owned by the model itself (not by a child) count as head.
    """
    names = [name for name, _ in model.named_parameters()]
    if hasattr(model, 'group_matcher'):
        from timm.models import group_parameters

        found = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
        ids = {name: int(found[name]) for name in names if name in found}
    else:
        stages = list(getattr(model, '_stage_names', None) or
                      [n for n, _ in model.named_children() if n not in _HEAD_CHILDREN])
        order = {stage: i for i, stage in enumerate(stages)}
        ids = {name: order[name.split('.', 1)[0]] for name in names if '.' in name and name.split('.', 1)[0] in order}
    top = (max(ids.values()) + 1) if ids else 0
    # anything not placed (the head, model-level parameters) sits on top, at the full lr
    for name in names:
        ids.setdefault(name, top)
    return ids, max(ids.values()) + 1 if ids else 0


def _no_weight_decay_names(model: nn.Module) -> set:
    names = model.no_weight_decay() if hasattr(model, 'no_weight_decay') else ()
    return set(names)


def decay_param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: Optional[float] = None,
                       no_decay_norm_bias: bool = True) -> List[Dict[str, Any]]:
    """Param groups for the transformer recipe (BEiT / timm style).

    ``no_decay_norm_bias``: tensors with <= 1 dimension (norm weights, biases) and the names of the model's
    ``no_weight_decay()`` (position embeddings, class tokens) get ``weight_decay=0``.
    ``layer_decay``: a parameter at depth ``i`` of ``n`` (:func:`layer_ids`) gets
    ``lr * layer_decay ** (n - 1 - i)``: the head the full lr, each block below it ``layer_decay`` times less.
    Every parameter is placed, frozen ones included (layers may be opened later, e.g. after fixbase epochs).
    Each group carries ``lr``, ``weight_decay``, ``lr_scale`` and ``layer_id``.
    """
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f'build_optimizer: layer_decay must lie in (0, 1], got {layer_decay!r}')
    ids, depth = layer_ids(model) if layer_decay is not None else ({}, 1)
    no_wd = _no_weight_decay_names(model) if no_decay_norm_bias else set()
    groups: 'OrderedDict[Tuple[int, bool], Dict[str, Any]]' = OrderedDict()
    for name, param in model.named_parameters():
        layer = ids.get(name, depth - 1)
        decayed = not (no_decay_norm_bias and (param.ndim <= 1 or name in no_wd))
        key = (layer, decayed)
        if key not in groups:
            scale = layer_decay ** (depth - 1 - layer) if layer_decay is not None else 1.0
            groups[key] = {'params': [], 'lr': lr * scale, 'lr_scale': scale, 'layer_id': layer,
                           'weight_decay': weight_decay if decayed else 0.0}
        groups[key]['params'].append(param)
    ordered = [groups[k] for k in sorted(groups)]
    logger.info('build_optimizer: %d param groups (layer_decay=%s, no weight decay on norms/biases/%s: %s); '
                'lr scales from %.3g to %.3g', len(ordered), layer_decay, sorted(no_wd) or 'none',
                no_decay_norm_bias, min(g['lr_scale'] for g in ordered), max(g['lr_scale'] for g in ordered))
    return ordered


def _split_no_decay(model: nn.Module, groups: List[Dict[str, Any]], weight_decay: float) -> List[Dict[str, Any]]:
    """Each group of ``groups`` split in two: its norm weights / biases / ``no_weight_decay()`` tensors get
    ``weight_decay=0``, the rest ``weight_decay``."""
    names = {id(p): n for n, p in model.named_parameters()}
    no_wd = _no_weight_decay_names(model)
    out = []
    for group in groups:
        exempt = [p for p in group['params'] if p.ndim <= 1 or names.get(id(p)) in no_wd]
        exempt_ids = {id(p) for p in exempt}
        rest = [p for p in group['params'] if id(p) not in exempt_ids]
        extra = {k: v for k, v in group.items() if k != 'params'}
        if rest:
            out.append(dict(extra, params=rest, weight_decay=weight_decay))
        if exempt:
            out.append(dict(extra, params=exempt, weight_decay=0.0))
    return out


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
    layer_decay: Optional[float] = None,
    no_decay_norm_bias: bool = False,
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
        layer_decay (float or None): layer-wise lr decay (e.g. 0.65 for ViT-B fine-tuning): depth ``i`` of
            ``n`` trains at ``lr * layer_decay ** (n - 1 - i)``, the head at ``lr``; depths come from timm's
            ``group_matcher`` (one per transformer block) or the model's stages (see :func:`layer_ids`).
            Implies ``no_decay_norm_bias``. Needs a model; not combinable with ``staged_lr``.
        no_decay_norm_bias (bool): no weight decay on norm weights, biases and the model's
            ``no_weight_decay()`` names (position embeddings, class tokens). Needs a model.

    The transformer recipe: ``build_optimizer(model, optim='adamw', lr=4e-5, weight_decay=0.05,
    layer_decay=0.65)``. Param groups then differ in ``lr`` and an lr scheduler scales each one.
    """
    if optim not in AVAILABLE_OPTIMIZERS:
        raise ValueError(f'build_optimizer: unknown optimizer {optim!r}; expected one of AVAILABLE_OPTIMIZERS: '
                         f'{", ".join(AVAILABLE_OPTIMIZERS)}')
    if lr <= 0:
        raise ValueError(f'build_optimizer: lr must be > 0, got {lr!r}')

    if isinstance(model, nn.DataParallel) or isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    grouped = layer_decay is not None or no_decay_norm_bias
    if staged_lr and layer_decay is not None:
        raise ValueError('build_optimizer: staged_lr and layer_decay both set the lr of the pretrained layers; '
                         'use one of them')
    if isinstance(model, nn.Module):
        if staged_lr:
            param_groups = _staged_param_groups(model, lr, new_layers, base_lr_mult)
            if no_decay_norm_bias:
                param_groups = _split_no_decay(model, param_groups, weight_decay)
        elif grouped:
            param_groups = decay_param_groups(model, lr, weight_decay, layer_decay, no_decay_norm_bias=True)
        else:
            param_groups = list(model.parameters())
    else:
        if staged_lr or grouped:
            option = 'staged_lr=True' if staged_lr else ('layer_decay' if layer_decay is not None
                                                          else 'no_decay_norm_bias=True')
            raise TypeError(
                f'build_optimizer: {option} needs an nn.Module (to find layers by name), '
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
