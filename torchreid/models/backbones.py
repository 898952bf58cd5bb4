"""Composing a :class:`ReIDModel` from a torchvision network: take its feature layers, drop its ImageNet head.

torchvision's own implementation and ImageNet weights are used as they are; only the layers before its
pooling/classifier are kept, under torchvision's names (so a torchvision state dict matches ours key for key).
"""
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch.nn as nn

from .head import ReIDModel, parse_model_kwargs
from .weights import (find_local_imagenet_file, init_params, load_local_imagenet_weights, local_imagenet_candidates,
                      report_unavailable, torchvision_weights_or_warn)

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

__all__ = ['build_torchvision_model', 'torchvision_model_factory', 'build_stages_model', 'set_last_stride', 'Stages']

#: ``[(name, module), ...]``: a backbone's stages, run in order.
Stages = List[Tuple[str, nn.Module]]


def set_last_stride(resnet: nn.Module, last_stride: int) -> None:
    """Set the stride of layer4's first block (its strided conv and its downsample conv) to ``last_stride``.

    ``last_stride=1`` keeps layer4 at the resolution of layer3, doubling the final map's height and width.
    """
    if last_stride not in (1, 2):
        raise ValueError(f'last_stride must be 1 or 2, got {last_stride!r}')
    block = resnet.layer4[0]
    changed = 0
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and (tuple(module.stride) == (2, 2)
                                              or getattr(module, '_reid_last_stride', False)):
            module.stride = (last_stride, last_stride)
            # remembered so that calling set_last_stride again (e.g. 1 then 2) finds the same convs
            module._reid_last_stride = True
            changed += 1
    if changed == 0:
        raise RuntimeError('set_last_stride: no stride-2 conv found in layer4[0]')
    if hasattr(block, 'stride'):
        block.stride = last_stride  # torchvision's blocks keep it as an informational attribute


def build_torchvision_model(name: str, num_classes: int, loss: str, pretrained: bool, kwargs: Mapping[str, Any], *,
                            constructor: Callable[..., nn.Module], weights_enum: Optional[Type['WeightsEnum']],
                            stages: Callable[[nn.Module], Sequence[Tuple[str, nn.Module]]],
                            feature_channels: Callable[[nn.Module], int],
                            ctor_kwargs: Optional[Mapping[str, Any]] = None,
                            head_defaults: Optional[Mapping[str, Any]] = None,
                            extra: Optional[Mapping[str, Any]] = None,
                            modify: Optional[Callable[[nn.Module, Dict[str, Any]], Any]] = None,
                            imagenet_head_prefixes: Sequence[str] = ('fc.', 'classifier.')) -> ReIDModel:
    """Build a ReID model around ``constructor`` (a torchvision model function).

    Args:
        name: the registered name (used in messages and for ``<name>_imagenet.pth`` local files).
        kwargs: the factory's ``**kwargs`` (parsed by :func:`parse_model_kwargs`).
        constructor: e.g. ``torchvision.models.resnet50``.
        weights_enum: e.g. ``torchvision.models.ResNet50_Weights``; None when torchvision has no weights.
        stages: ``net -> [(name, module), ...]`` the feature layers.
        feature_channels: ``net -> int`` channels of the last feature map.
        ctor_kwargs: extra constructor kwargs (e.g. ``width_mult``).
        head_defaults / extra: see :func:`parse_model_kwargs`; ``extra`` values reach ``modify``.
        modify: ``(net, extras) -> None`` architecture changes made before composing (last stride, IBN).
        imagenet_head_prefixes: keys of a local ImageNet file never loaded (its 1000-class head).
    """
    head, opts, extras = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained), head_defaults, extra)
    ctor_kwargs = dict(ctor_kwargs or {})
    local = find_local_imagenet_file(name, opts) if opts.pretrained else None
    if opts.pretrained and local is None and weights_enum is not None:
        net = torchvision_weights_or_warn(name, constructor, weights_enum, opts, **ctor_kwargs)
    else:
        net = constructor(weights=None, **ctor_kwargs)
        if opts.pretrained and local is None:
            report_unavailable(name, 'torchvision provides none for this variant',
                               f'no local file found (looked for {local_imagenet_candidates(name)})', opts)
    if modify is not None:
        modify(net, extras)
    model = ReIDModel(num_classes, loss, stages(net), feature_channels(net), head)
    if local is not None:
        load_local_imagenet_weights(model, name, local, opts, exclude_prefixes=imagenet_head_prefixes)
    return model


def torchvision_model_factory(name: str, constructor: Callable[..., nn.Module],
                              weights_enum: Optional[Type['WeightsEnum']],
                              stages: Callable[[nn.Module], Sequence[Tuple[str, nn.Module]]],
                              feature_channels: Callable[[nn.Module], int],
                              head_defaults: Optional[Mapping[str, Any]] = None,
                              imagenet_head_prefixes: Sequence[str] = ('fc.', 'classifier.'),
                              doc: str = '') -> Callable[..., ReIDModel]:
    """A model factory ``fn(num_classes, loss, pretrained, **kwargs)`` named ``name`` that builds
    :func:`build_torchvision_model` with these arguments (register it with ``register_model``)."""
    def factory(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
        return build_torchvision_model(name, num_classes, loss, pretrained, kwargs, constructor=constructor,
                                       weights_enum=weights_enum, stages=stages, feature_channels=feature_channels,
                                       head_defaults=head_defaults, imagenet_head_prefixes=imagenet_head_prefixes)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return factory


def build_stages_model(name: str, num_classes: int, loss: str, pretrained: bool, kwargs: Mapping[str, Any],
                       make_stages: Callable[[Dict[str, Any]], Tuple[Stages, int]], *, weights_source: str,
                       head_defaults: Optional[Mapping[str, Any]] = None,
                       extra: Optional[Mapping[str, Any]] = None,
                       imagenet_head_prefixes: Sequence[str] = ('classifier.', 'last_linear.'),
                       model_class: Type[ReIDModel] = ReIDModel) -> ReIDModel:
    """A :class:`ReIDModel` (or ``model_class``) around hand-written stages, with local ImageNet weights.

    Args:
        name: the registered name (messages, and the ``<name>_imagenet.pth`` local file).
        kwargs: the factory's ``**kwargs`` (parsed by :func:`~torchreid.models.head.parse_model_kwargs`).
        make_stages: ``extras -> (stages, feature_channels)``; ``extras`` holds the ``extra`` keywords' values.
            Its modules are initialised with :func:`~torchreid.models.weights.init_params`.
        weights_source: where the ImageNet weights are published (named in the warning when they are missing).
        head_defaults / extra: see :func:`~torchreid.models.head.parse_model_kwargs`.
        imagenet_head_prefixes: keys of the ImageNet file never loaded (its 1000-class classifier).
        model_class: a :class:`ReIDModel` subclass (e.g. one whose ``featuremaps`` wires stages non-linearly).
    """
    head, opts, extras = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained), head_defaults, extra)
    local = find_local_imagenet_file(name, opts) if opts.pretrained else None
    if opts.pretrained and local is None:
        report_unavailable(name, f'{weights_source}; torchvision provides none',
                           f'no local file found (looked for {local_imagenet_candidates(name)})', opts)
    stages, channels = make_stages(extras)
    for _, module in stages:
        init_params(module)
    model = model_class(num_classes, loss, stages, channels, head)
    if local is not None:
        load_local_imagenet_weights(model, name, local, opts, exclude_prefixes=tuple(imagenet_head_prefixes))
    return model
