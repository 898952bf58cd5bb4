"""The one ReID model shape: backbone stages -> global pooling -> [fc] -> [BNNeck] -> classifier.

Every built-in model is a :class:`ReIDModel`: the backbone's stages are registered as direct children under
their own names (``conv1, bn1, ..., layer4`` for torchvision ResNets, ``conv1 ... conv5`` for OSNet), so
torchvision / Torchreid state dicts load by name, and the new layers sit beside them as ``fc``, ``bnneck``
and ``classifier`` -- the names Torchreid's ``open_layers=['classifier']`` and staged learning rates
(``new_layers=['fc', 'classifier']``) look for among ``model.named_children()``. They exist on every model
(``nn.Identity`` when disabled), so :data:`NEW_LAYER_NAMES` is a valid ``new_layers`` for any of them.

Forward:
    * eval: features ``[B, feature_dim]`` (the BNNeck output when ``bnneck=True``);
    * train, loss 'softmax': logits ``[B, num_classes]``;
    * train, loss 'triplet': ``(logits, features)``, features taken before the BNNeck (the BNNeck recipe:
      the metric loss sees the un-normalised feature, the classifier the normalised one).
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import SUPPORTED_LOSSES
from .weights import PretrainOptions, init_classifier, init_params

__all__ = ['ReIDModel', 'GeneralizedMeanPooling', 'HeadOptions', 'parse_model_kwargs', 'NEW_LAYER_NAMES']

#: Children created by the head (not pretrained); handy as ``new_layers`` / ``open_layers``.
NEW_LAYER_NAMES = ('fc', 'bnneck', 'classifier')

POOLINGS = ('avg', 'max', 'gem')

# factory kwarg -> PretrainOptions field
_PRETRAIN_KWARGS = {'pretrained': 'pretrained', 'pretrained_path': 'path', 'pretrained_strict': 'strict',
                    'imagenet_weights': 'imagenet_weights', 'allow_unsafe_pickle': 'allow_unsafe_pickle'}


class GeneralizedMeanPooling(nn.Module):
    """GeM pooling (Radenovic et al.): ``(mean(x^p))^(1/p)`` over H, W; p=1 is average, p->inf is max.

    ``learnable=True`` makes ``p`` a trained parameter.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = False):
        super().__init__()
        if p <= 0:
            raise ValueError(f'GeneralizedMeanPooling: p must be > 0, got {p}')
        p = torch.tensor(float(p))
        if learnable:
            self.p = nn.Parameter(p)
        else:
            self.register_buffer('p', p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f'p={float(self.p):.2f}, eps={self.eps}, learnable={isinstance(self.p, nn.Parameter)}'


@dataclasses.dataclass
class HeadOptions:
    """The head's options, gathered once from a factory's kwargs."""

    #: 'avg', 'max' or 'gem'
    pooling: str = 'avg'
    gem_p: float = 3.0
    gem_learnable: bool = False
    #: sizes of the fc layers (Linear + BN1d + ReLU each) after pooling; None/[] for none
    fc_dims: Optional[Sequence[int]] = None
    #: dropout probability before the classifier (train only); None/0 for none
    dropout: Optional[float] = None
    #: BatchNorm1d before the classifier; its output is the eval feature and the classifier has no bias
    bnneck: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f'pooling must be one of {POOLINGS}, got {self.pooling!r}')
        if self.fc_dims is not None:
            if isinstance(self.fc_dims, int) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                               for d in self.fc_dims):
                raise ValueError(f'fc_dims must be a list of positive ints (or None), got {self.fc_dims!r}')
            self.fc_dims = tuple(self.fc_dims)
        if self.dropout is not None and not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout!r}')


def parse_model_kwargs(name: str, kwargs: Mapping[str, Any], head_defaults: Optional[Mapping[str, Any]] = None,
                       extra: Optional[Mapping[str, Any]] = None
                       ) -> Tuple[HeadOptions, PretrainOptions, Dict[str, Any]]:
    """Split a factory's ``**kwargs`` into ``(HeadOptions, PretrainOptions, extras)``.

    ``head_defaults``: the model's own defaults (e.g. ``fc_dims=[512]`` for OSNet).
    ``extra``: ``{kwarg: default}`` the model itself understands (e.g. ``last_stride``).
    Anything else raises ``TypeError`` naming the model and the kwarg (a typo must not be ignored);
    ``use_gpu`` is accepted and ignored (Torchreid compatibility), ``dropout_p`` is Torchreid's name of
    ``dropout``.
    """
    kwargs = dict(kwargs)
    kwargs.pop('use_gpu', None)
    if 'dropout_p' in kwargs:
        if 'dropout' in kwargs:
            raise TypeError(f'{name}: pass dropout or dropout_p (its Torchreid name), not both')
        kwargs['dropout'] = kwargs.pop('dropout_p')
    head_kw = dict(head_defaults or {})
    for field in dataclasses.fields(HeadOptions):
        if field.name in kwargs:
            head_kw[field.name] = kwargs.pop(field.name)
    pre_kw = {}
    for key, field_name in _PRETRAIN_KWARGS.items():
        if key in kwargs:
            pre_kw[field_name] = kwargs.pop(key)
    extras = dict(extra or {})
    for key in list(kwargs):
        if key in extras:
            extras[key] = kwargs.pop(key)
    if kwargs:
        known = [f.name for f in dataclasses.fields(HeadOptions)] + list(extras) + list(_PRETRAIN_KWARGS)
        known += ['dropout_p', 'use_gpu']
        raise TypeError(f'{name}: unexpected keyword argument(s) {sorted(kwargs)}; known: {sorted(known)}')
    try:
        head = HeadOptions(**head_kw)
    except ValueError as exc:
        raise ValueError(f'{name}: {exc}') from None
    return head, PretrainOptions(**pre_kw), extras


class ReIDModel(nn.Module):
    """Backbone stages + the shared ReID head (see the module docstring).

    Args:
        num_classes: classifier outputs.
        loss: 'softmax' or 'triplet' (what the train-mode forward returns).
        stages: ``[(name, module), ...]`` run in order to produce the feature map; registered as children
            under these names (names of the head, ``fc/bnneck/classifier/global_pool/dropout``, are refused).
        feature_channels: channels of the last feature map.
        head: :class:`HeadOptions`.
    """

    def __init__(self, num_classes: int, loss: str, stages: Sequence[Tuple[str, nn.Module]],
                 feature_channels: int, head: Optional[HeadOptions] = None):
        super().__init__()
        if loss not in SUPPORTED_LOSSES:
            raise ValueError(f'{type(self).__name__}: unsupported loss {loss!r}; expected one of {SUPPORTED_LOSSES}')
        head = head or HeadOptions()
        self.loss = loss
        self.num_classes = num_classes
        self._stage_names = []
        reserved = set(NEW_LAYER_NAMES) | {'global_pool', 'dropout'}
        for stage_name, module in stages:
            if stage_name in reserved or hasattr(self, stage_name):
                raise ValueError(f'{type(self).__name__}: backbone stage name {stage_name!r} is reserved or repeated')
            self.add_module(stage_name, module)
            self._stage_names.append(stage_name)

        if head.pooling == 'avg':
            self.global_pool = nn.AdaptiveAvgPool2d(1)
        elif head.pooling == 'max':
            self.global_pool = nn.AdaptiveMaxPool2d(1)
        else:
            self.global_pool = GeneralizedMeanPooling(head.gem_p, learnable=head.gem_learnable)

        dim = feature_channels
        # Disabled parts are nn.Identity, not None: every model then has the children fc, bnneck, dropout
        # and classifier, so one new_layers / open_layers list works for any model.
        if head.fc_dims:
            layers = []
            for out_dim in head.fc_dims:
                layers += [nn.Linear(dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
                dim = out_dim
            self.fc = nn.Sequential(*layers)
            init_params(self.fc)
        else:
            self.fc = nn.Identity()
        self.feature_dim = dim

        if head.bnneck:
            self.bnneck = nn.BatchNorm1d(dim)
            init_params(self.bnneck)
            # BNNeck recipe: a frozen zero shift keeps the normalised feature centred for the classifier.
            self.bnneck.bias.requires_grad_(False)
        else:
            self.bnneck = nn.Identity()
        self.dropout = nn.Dropout(float(head.dropout)) if head.dropout else nn.Identity()
        # No bias after a BNNeck: the BN already centres the input and a bias would only shift the logits.
        self.classifier = nn.Linear(dim, num_classes, bias=not head.bnneck)
        init_classifier(self.classifier)
        self.head_options = head

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map ``[B, C, h, w]``."""
        for stage_name in self._stage_names:
            x = getattr(self, stage_name)(x)
        return x

    def forward(self, x: torch.Tensor, return_featuremaps: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        f = self.featuremaps(x)
        if return_featuremaps:
            return f
        v = self.fc(self.global_pool(f).flatten(1))
        feat = self.bnneck(v)
        if not self.training:
            return feat
        logits = self.classifier(self.dropout(feat))
        if self.loss == 'softmax':
            return logits
        return logits, v
