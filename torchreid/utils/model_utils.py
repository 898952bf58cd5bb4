"""Helpers on models: freezing/unfreezing layers, parameter counts, device selection."""
import logging
from typing import Dict, Iterable, Sequence, Union

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

__all__ = ['open_all_layers', 'open_specified_layers', 'count_num_param', 'resolve_device', 'named_children',
           'unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DataParallel / DistributedDataParallel / ``torch.compile`` wrappers (nested ones too);
    any other model as it is. Checkpoints hold the unwrapped model's weights, so their keys carry no
    ``module.`` or ``_orig_mod.`` prefix and load into the bare model."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):   # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def named_children(model: nn.Module, names: Iterable[str], caller: str) -> Dict[str, nn.Module]:
    """``{name: module}`` for the named top-level children of ``model`` (DataParallel unwrapped).

    A name that is not a child is an error naming ``caller``, the missing names and the children there are.
    """
    model = unwrap_model(model)
    children = dict(model.named_children())
    missing = [name for name in names if name not in children]
    if missing:
        raise ValueError(f'{caller}: {missing} are not child modules of {type(model).__name__}; '
                         f'its children are {sorted(children)}')
    return children


def open_all_layers(model: nn.Module) -> None:
    """Put the whole model in train mode and make every parameter trainable."""
    model.train()
    for p in model.parameters():
        p.requires_grad = True


def open_specified_layers(model: nn.Module, open_layers: Union[str, Sequence[str]]) -> None:
    """Train only the top-level child modules named in ``open_layers``; freeze the others.

    The named children go to train mode with ``requires_grad=True``; every other child goes to eval mode
    (its BatchNorm statistics stay fixed) with ``requires_grad=False``. Used for ``fixbase_epoch``.

    Args:
        model (nn.Module): the model (a DataParallel wrapper is unwrapped).
        open_layers (str or list of str): names of top-level children, e.g. ``'classifier'``.
    """
    if isinstance(open_layers, str):
        open_layers = [open_layers]
    open_layers = list(open_layers)
    children = named_children(model, open_layers, 'open_specified_layers')
    for name, module in children.items():
        is_open = name in open_layers
        module.train(is_open)
        for p in module.parameters():
            p.requires_grad = is_open


def count_num_param(model: nn.Module) -> int:
    """Number of parameters used at test time.

    As in Torchreid, the parameters of ``model.classifier`` (when it is a module) are not counted: the
    identity classifier is dropped at test time.
    """
    num_param = sum(p.numel() for p in model.parameters())
    model = unwrap_model(model)
    classifier = getattr(model, 'classifier', None)
    if isinstance(classifier, nn.Module):
        num_param -= sum(p.numel() for p in classifier.parameters())
    return num_param


def _mps_available() -> bool:
    mps = getattr(torch.backends, 'mps', None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: Union[str, int, torch.device, None] = 'auto') -> torch.device:
    """Turn a device request into a ``torch.device`` that exists on this machine.

    ``None`` or ``'auto'`` (the config's default) picks ``cuda`` when available, else ``cpu``; MPS is
    never picked automatically (some ops are missing there), only when asked for by name. Strings
    (``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``), ints (a CUDA index) and ``torch.device`` objects are
    checked: an unavailable device raises ValueError saying why. This is the library's one resolver: the
    data manager, the engine, the feature extractor and the config all go through it.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if isinstance(device, bool):
        raise TypeError('resolve_device: device must be a str, int or torch.device, not a bool '
                        '(use device="cuda" or device="cpu" instead of use_gpu)')
    if isinstance(device, int):
        device = f'cuda:{device}'
    if isinstance(device, str):
        try:
            device = torch.device(device.strip())
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f'resolve_device: {device!r} is not a valid device string (expected e.g. "auto", "cpu", "cuda", '
                f'"cuda:1", "mps"): {e}'
            ) from None
    if not isinstance(device, torch.device):
        raise TypeError(f'resolve_device: device must be a str, int or torch.device, got {type(device).__name__}')

    if device.type == 'cpu':
        return device
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'resolve_device: device {str(device)!r} requested but CUDA is not available here')
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f'resolve_device: device {str(device)!r} requested but only {count} CUDA device(s) exist '
                f'(valid indices 0..{count - 1})'
            )
        return device
    if device.type == 'mps':
        if not _mps_available():
            raise ValueError(f'resolve_device: device {str(device)!r} requested but MPS is not available here')
        return device
    backend = getattr(torch, device.type, None)
    is_available = getattr(backend, 'is_available', None)
    if callable(is_available):
        if not is_available():
            raise ValueError(f'resolve_device: device {str(device)!r} requested but it is not available here')
        return device
    raise ValueError(
        f'resolve_device: unsupported device type {device.type!r}; expected "cpu", "cuda[:index]" or "mps"'
    )
