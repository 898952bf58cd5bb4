"""Rebuild a model from a self-describing checkpoint (as timm / torchvision weights describe themselves).

A checkpoint written by the engine carries, beside ``state_dict``:

* ``model_spec``: ``{'name', 'num_classes', 'loss', 'kwargs'}`` (:class:`~torchreid.models.registry.ModelSpec`,
  from :func:`~torchreid.models.registry.describe_model`) or None;
* ``input_size``: ``[height, width]`` or None;
* ``normalization``: ``{'mean': [3 floats], 'std': [3 floats]}`` or None;
* ``config`` (the run's config as a plain dict) and ``torchreid_version`` (not needed to rebuild).

:func:`build_model_from_checkpoint` builds the recorded architecture with ``pretrained=False`` and loads the
weights strictly: every tensor outside the classifier must be there, with its shape, and nothing else.

    >>> model = build_model_from_checkpoint('log/model/model-best.pth.tar', device='cpu')
    >>> checkpoint_input_size('log/model/model-best.pth.tar')
    (256, 128)
"""
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from torchreid.utils.checkpoint import load_checkpoint
from torchreid.utils.model_utils import resolve_device

from .registry import ModelSpec, UnknownModelError, build_model

__all__ = ['build_model_from_checkpoint', 'checkpoint_input_size', 'checkpoint_normalization', 'CheckpointError',
           'CLASSIFIER_PREFIX']

logger = logging.getLogger(__name__)

#: State-dict keys under this prefix belong to the identity classifier: loaded when they fit, else skipped.
CLASSIFIER_PREFIX = 'classifier.'

#: How many keys an error lists before saying how many more there are.
_KEYS_SHOWN = 5

CheckpointLike = Union[str, 'os.PathLike[str]', Mapping[str, Any]]


class CheckpointError(ValueError):
    """A checkpoint that cannot rebuild its model: it does not describe it, its description is invalid, or its
    weights do not match the architecture it describes."""


def _as_checkpoint(checkpoint: CheckpointLike, source: Optional[str], caller: str) -> Tuple[Mapping, str]:
    """``(checkpoint dict, name for messages)``; a path is read with the safe ``load_checkpoint``."""
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        return load_checkpoint(path), f'checkpoint "{path}"'
    if isinstance(checkpoint, Mapping):
        return checkpoint, f'checkpoint "{source}"' if source else 'the checkpoint dict'
    raise TypeError(f'{caller}: checkpoint must be a path or a loaded checkpoint dict, '
                    f'got {type(checkpoint).__name__}')


def _list_keys(keys: List[str], quote: bool = True) -> str:
    shown = ', '.join(repr(k) if quote else k for k in keys[:_KEYS_SHOWN])
    more = f' and {len(keys) - _KEYS_SHOWN} more' if len(keys) > _KEYS_SHOWN else ''
    return f'{len(keys)}: {shown}{more}'


def _no_spec_message(ckpt: Any, where: str) -> str:
    if not isinstance(ckpt, Mapping):
        what = f'it holds a {type(ckpt).__name__}, not a checkpoint dict'
    elif 'state_dict' not in ckpt and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        what = 'it is a bare state dict'
    elif 'model_spec' not in ckpt:
        what = "it has no 'model_spec' entry (a Torchreid checkpoint, or one written before checkpoints " \
               "described their model)"
    else:
        what = ("its 'model_spec' is None (the model was not built by torchreid.models.build_model, or one of "
                "its keyword values is not a plain value)")
    return (f'{where} does not describe its model: {what}. Build the model yourself and load the weights '
            f'instead: FeatureExtractor(model_name=..., model_path=...), or scripts/export_onnx.py '
            f'--model-name NAME --weights FILE')


def _load_strict_except_classifier(model: nn.Module, state_dict: Mapping[str, Any], where: str) -> None:
    """Load ``state_dict`` into ``model``: strictly outside the classifier, the classifier only if it fits."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{where}: 'state_dict' must be a dict of tensors, got {type(state_dict).__name__}")
    weights = OrderedDict()
    for key, value in state_dict.items():
        key = str(key)
        weights[key[len('module.'):] if key.startswith('module.') else key] = value
    own = model.state_dict()

    def outside(keys):
        return [k for k in keys if not k.startswith(CLASSIFIER_PREFIX)]

    missing = outside(k for k in own if k not in weights)
    unexpected = outside(k for k in weights if k not in own)
    not_tensors = outside(k for k in weights if k in own and not isinstance(weights[k], torch.Tensor))
    mismatched = [f'{k!r} (checkpoint {tuple(weights[k].shape)}, model {tuple(own[k].shape)})'
                  for k in outside(own) if k in weights and isinstance(weights[k], torch.Tensor)
                  and weights[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f'missing key(s) {_list_keys(missing)}')
    if unexpected:
        problems.append(f'unexpected key(s) {_list_keys(unexpected)}')
    if not_tensors:
        problems.append(f'value(s) that are not tensors {_list_keys(not_tensors)}')
    if mismatched:
        problems.append(f'shape mismatch(es) {_list_keys(mismatched, quote=False)}')
    if problems:
        raise CheckpointError(
            f'{where}: the weights do not match the architecture its model_spec describes ({type(model).__name__}'
            f'); ' + '; '.join(problems) + ' (only classifier.* tensors may differ)'
        )

    own_cls = [k for k in own if k.startswith(CLASSIFIER_PREFIX)]
    file_cls = [k for k in weights if k.startswith(CLASSIFIER_PREFIX)]
    fits = (sorted(own_cls) == sorted(file_cls)
            and all(isinstance(weights[k], torch.Tensor) and weights[k].shape == own[k].shape for k in own_cls))
    to_load = OrderedDict((k, v) for k, v in weights.items() if not k.startswith(CLASSIFIER_PREFIX))
    if fits:
        to_load.update((k, weights[k]) for k in own_cls)
    else:
        shapes = {k: tuple(weights[k].shape) for k in file_cls if isinstance(weights[k], torch.Tensor)}
        logger.info('%s: classifier not loaded (checkpoint %s, model %s); the features do not use it', where,
                    shapes or 'has none', {k: tuple(own[k].shape) for k in own_cls})
        to_load.update((k, own[k]) for k in own_cls)
    model.load_state_dict(to_load, strict=True)


def build_model_from_checkpoint(checkpoint: CheckpointLike, num_classes: Optional[int] = None,
                                device: Union[str, int, torch.device, None] = None, *,
                                source: Optional[str] = None) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights.

    Args:
        checkpoint: a path (read with :func:`torchreid.utils.checkpoint.load_checkpoint`, the safe loader) or
            an already-loaded checkpoint dict.
        num_classes: classifier width to build instead of the recorded one (e.g. ``0`` or ``1`` for feature
            extraction); a classifier that then does not fit is skipped (logged at INFO).
        device: where to put the model (see :func:`torchreid.utils.model_utils.resolve_device`; None picks CUDA
            when available).
        source: the file a loaded dict came from, named in error messages.

    Returns:
        the model, in eval mode, on ``device``, with its ``model_spec``.

    Raises:
        CheckpointError (a ValueError): the checkpoint has no (or an invalid) ``model_spec`` or no
            ``state_dict``; a tensor outside ``classifier.*`` is missing, unexpected, or of another shape
            (the message names the file and lists the keys); the recorded keywords no longer build the model.
        UnknownModelError: the recorded model name is not registered (register it before loading).
    """
    ckpt, where = _as_checkpoint(checkpoint, source, 'build_model_from_checkpoint')
    raw_spec = ckpt.get('model_spec') if isinstance(ckpt, Mapping) else None
    if raw_spec is None:
        raise CheckpointError(_no_spec_message(ckpt, where))
    try:
        spec = ModelSpec.from_dict(raw_spec)
    except ValueError as e:
        raise CheckpointError(f'{where}: invalid model_spec: {e}') from None
    if 'state_dict' not in ckpt:
        raise CheckpointError(f"{where}: no 'state_dict' entry (the weights); keys there: {sorted(map(str, ckpt))}")
    if num_classes is None:
        num_classes = spec.num_classes
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f'build_model_from_checkpoint: num_classes must be an int >= 0 or None, got {num_classes!r}')
    device = resolve_device(device)

    try:
        model = build_model(spec.name, num_classes=num_classes, loss=spec.loss, pretrained=False, **spec.kwargs)
    except UnknownModelError as e:
        raise UnknownModelError(f'{where} describes a model named {spec.name!r}, which is not registered (a custom '
                                f'model must be registered with register_model before loading). {e}') from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f'{where}: building {spec.name!r} with its recorded keywords {spec.kwargs} failed '
                              f'(written by torchreid {ckpt.get("torchreid_version", "of unknown version")}): '
                              f'{e}') from e
    _load_strict_except_classifier(model, ckpt['state_dict'], where)
    logger.info('Rebuilt %s (num_classes=%d, loss=%s, %s) from %s', spec.name, num_classes, spec.loss,
                spec.kwargs or 'default keywords', where)
    return model.to(device).eval()


def _number_list(value: Any, length: int, field: str, where: str) -> List[float]:
    if hasattr(value, 'tolist') and not isinstance(value, (list, tuple)):
        value = value.tolist()  # a NumPy array / torch tensor
    if (not isinstance(value, (list, tuple)) or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise CheckpointError(f'{where}: {field} must be a list of {length} numbers, got {value!r}')
    return [float(v) for v in value]


def checkpoint_input_size(checkpoint: CheckpointLike, *, source: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """``(height, width)`` the model was trained at, or None when the checkpoint does not record it.

    A recorded value that is not two positive ints raises :class:`CheckpointError`.
    """
    ckpt, where = _as_checkpoint(checkpoint, source, 'checkpoint_input_size')
    value = ckpt.get('input_size') if isinstance(ckpt, Mapping) else None
    if value is None:
        return None
    size = _number_list(value, 2, "'input_size' ([height, width])", where)
    if not all(s == int(s) and s > 0 for s in size):
        raise CheckpointError(f"{where}: 'input_size' must be two positive ints [height, width], got {value!r}")
    return int(size[0]), int(size[1])


def checkpoint_normalization(checkpoint: CheckpointLike, *,
                             source: Optional[str] = None) -> Optional[Dict[str, List[float]]]:
    """``{'mean': [3 floats], 'std': [3 floats]}`` the model's inputs were normalised with, or None when the
    checkpoint does not record it.

    A recorded value of another shape, or a std that is not > 0, raises :class:`CheckpointError`.
    """
    ckpt, where = _as_checkpoint(checkpoint, source, 'checkpoint_normalization')
    value = ckpt.get('normalization') if isinstance(ckpt, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {'mean', 'std'}:
        raise CheckpointError(f"{where}: 'normalization' must be a dict {{'mean': [3 floats], 'std': [3 floats]}}, "
                              f'got {value!r}')
    mean = _number_list(value['mean'], 3, "'normalization'['mean']", where)
    std = _number_list(value['std'], 3, "'normalization'['std']", where)
    if not all(s > 0 for s in std):
        raise CheckpointError(f"{where}: 'normalization'['std'] must be > 0, got {std}")
    return {'mean': mean, 'std': std}
