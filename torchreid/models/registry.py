"""The model registry: one name -> one factory, the single way models are built.

A factory is any callable ``fn(num_classes, loss='softmax', pretrained=True, **kwargs) -> nn.Module``.
The built-in ones are registered by the modules of this package when ``torchreid.models`` is imported;
research code adds its own with :func:`register_model` and builds them with :func:`build_model` exactly like
the built-in ones.
"""
import copy
import dataclasses
import difflib
import fnmatch
import functools
import logging
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union, overload

import torch.nn as nn

from torchreid.utils.model_utils import unwrap_model

__all__ = ['register_model', 'build_model', 'list_models', 'show_avai_models', 'SUPPORTED_LOSSES',
           'UnknownModelError', 'ModelSpec', 'describe_model', 'WEIGHT_SOURCE_KWARGS', 'register_model_family',
           'is_model']

logger = logging.getLogger(__name__)

#: The training losses a model's ``forward`` knows how to serve (Torchreid's two).
SUPPORTED_LOSSES = ('softmax', 'triplet')

#: What :func:`register_model` stores: ``fn(num_classes, loss='softmax', pretrained=True, **kwargs) -> nn.Module``.
ModelFactory = Callable[..., nn.Module]
_Factory = TypeVar('_Factory', bound=ModelFactory)

_MODEL_FACTORY: Dict[str, ModelFactory] = {}


@dataclasses.dataclass(frozen=True)
class _ModelFamily:
    """Models named ``<prefix><member>`` built by one factory (``timm/<any timm model>``)."""

    #: ``factory(member, num_classes=..., loss=..., pretrained=..., **kwargs) -> nn.Module``
    factory: Callable[..., nn.Module]
    #: ``exists(member) -> bool``
    exists: Callable[[str], bool]
    #: ``names(fnmatch pattern of members) -> [member, ...]``
    names: Callable[[str], List[str]]
    #: who provides the members, named in messages (``'timm'``)
    source: str


_MODEL_FAMILIES: Dict[str, _ModelFamily] = {}

#: Factory keywords about where the *initial* weights come from, not about the architecture. They are not
#: recorded in :class:`ModelSpec`: a model is rebuilt with ``pretrained=False`` and then given its checkpoint.
WEIGHT_SOURCE_KWARGS = ('pretrained', 'pretrained_path', 'pretrained_strict', 'imagenet_weights',
                        'allow_unsafe_pickle', 'use_gpu')

_SPEC_FIELDS = ('name', 'num_classes', 'loss', 'kwargs')
_PLAIN_SCALARS = (bool, int, float, str, type(None))


def _not_plain_reason(value, where):
    """None if ``value`` is plain (bool/int/float/str/None, or list/tuple/dict of plain values with str keys),
    else a sentence saying which part is not."""
    # Exact types: a subclass (an IntEnum, a namedtuple, a yacs CfgNode) is refused by
    # torch.load(weights_only=True) or rebuilds as something else.
    if type(value) in _PLAIN_SCALARS:
        return None
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            reason = _not_plain_reason(item, f'{where}[{i}]')
            if reason:
                return reason
        return None
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f'{where} has a key {key!r} of type {type(key).__name__} (only str keys are plain)'
            reason = _not_plain_reason(item, f'{where}[{key!r}]')
            if reason:
                return reason
        return None
    return (f'{where} is a {type(value).__module__}.{type(value).__qualname__} (plain values are bool, int, '
            f'float, str, None and lists/tuples/dicts of them)')


def _spec_problem(name, num_classes, loss, kwargs):
    """``(field, message)`` for the first invalid field of a model spec, or None."""
    if not isinstance(name, str) or not name:
        return 'name', f'must be a non-empty str, got {name!r}'
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        return 'num_classes', f'must be an int >= 0, got {num_classes!r}'
    if loss not in SUPPORTED_LOSSES:
        return 'loss', f'must be one of {SUPPORTED_LOSSES}, got {loss!r}'
    if not isinstance(kwargs, Mapping):
        return 'kwargs', f'must be a dict of factory keywords, got {type(kwargs).__name__}'
    for key in kwargs:
        if not isinstance(key, str) or not key.isidentifier():
            return 'kwargs', f'keys must be keyword names (str identifiers), got {key!r}'
    reserved = sorted(set(kwargs) & (set(WEIGHT_SOURCE_KWARGS) | {'name', 'num_classes', 'loss'}))
    if reserved:
        return 'kwargs', (f'must not hold {reserved} (where initial weights come from, or a build_model '
                          f'argument of its own)')
    reason = _not_plain_reason(dict(kwargs), 'kwargs')
    if reason:
        return 'kwargs', reason
    return None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How :func:`build_model` built a model: enough to build it again (``pretrained=False``).

    ``kwargs`` holds the architecture keywords the caller passed to the factory (``bnneck``, ``fc_dims``,
    ``pooling``, ``last_stride``, ...), every one a plain value; keywords about where the initial weights come
    from (:data:`WEIGHT_SOURCE_KWARGS`) are never part of it. Invalid fields raise ``ValueError`` naming them.
    """

    name: str
    num_classes: int
    loss: str = 'softmax'
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        problem = _spec_problem(self.name, self.num_classes, self.loss, self.kwargs)
        if problem:
            raise ValueError(f'ModelSpec: field {problem[0]!r} {problem[1]}')
        # A private deep copy: later changes to the caller's lists/dicts must not change the record.
        object.__setattr__(self, 'kwargs', copy.deepcopy(dict(self.kwargs)))

    def to_dict(self) -> Dict[str, Any]:
        """``{'name', 'num_classes', 'loss', 'kwargs'}`` of plain values (safe for ``torch.save`` /
        ``torch.load(weights_only=True)`` and JSON)."""
        return {'name': self.name, 'num_classes': self.num_classes, 'loss': self.loss,
                'kwargs': copy.deepcopy(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'ModelSpec':
        """The inverse of :meth:`to_dict`. A non-dict, a missing or unknown field, or an invalid value raises
        ``ValueError`` naming the field."""
        if not isinstance(d, Mapping):
            raise ValueError(f'ModelSpec.from_dict: expected a dict with fields {list(_SPEC_FIELDS)}, '
                             f'got {type(d).__name__}')
        missing = [f for f in _SPEC_FIELDS if f not in d]
        if missing:
            raise ValueError(f'ModelSpec.from_dict: missing field(s) {missing}; a model spec has the fields '
                             f'{list(_SPEC_FIELDS)}')
        unknown = sorted(str(k) for k in d if k not in _SPEC_FIELDS)
        if unknown:
            raise ValueError(f'ModelSpec.from_dict: unknown field(s) {unknown}; a model spec has the fields '
                             f'{list(_SPEC_FIELDS)}')
        problem = _spec_problem(d['name'], d['num_classes'], d['loss'], d['kwargs'])
        if problem:
            raise ValueError(f'ModelSpec.from_dict: field {problem[0]!r} {problem[1]}')
        return cls(name=d['name'], num_classes=d['num_classes'], loss=d['loss'], kwargs=dict(d['kwargs']))


def describe_model(model: nn.Module) -> Optional[Dict[str, Any]]:
    """``model.model_spec.to_dict()`` (DataParallel / DDP unwrapped), or None when the model was not built
    by :func:`build_model` or could not be described (a keyword value that is not plain)."""
    spec = getattr(unwrap_model(model), 'model_spec', None)
    if isinstance(spec, ModelSpec):
        return spec.to_dict()
    if spec is not None:
        logger.debug('describe_model: %s.model_spec is a %s, not a ModelSpec; not described',
                     type(model).__name__, type(spec).__name__)
    return None


def _make_spec(name, num_classes, loss, kwargs):
    """The :class:`ModelSpec` of a ``build_model`` call, or None (logged at DEBUG) when it cannot be one."""
    arch_kwargs = {k: v for k, v in kwargs.items() if k not in WEIGHT_SOURCE_KWARGS}
    reason = _not_plain_reason(arch_kwargs, 'kwargs')
    if reason:
        logger.debug('build_model(%r): model_spec is None (the model cannot be rebuilt from a checkpoint): %s',
                     name, reason)
        return None
    return ModelSpec(name=name, num_classes=num_classes, loss=loss, kwargs=arch_kwargs)


class UnknownModelError(KeyError, ValueError):
    """An unregistered model name. Both a KeyError (Torchreid raised one) and a ValueError."""

    def __str__(self) -> str:
        # KeyError's str() would wrap the message in quotes.
        return str(self.args[0]) if self.args else ''


# Two overloads for type checkers: used as a decorator or called with ``fn``, the factory keeps its own type.
@overload
def register_model(name: str, fn: None = None, *, override: bool = False) -> Callable[[_Factory], _Factory]:
    ...


@overload
def register_model(name: str, fn: _Factory, *, override: bool = False) -> _Factory:
    ...


def register_model(name: str, fn: Optional[ModelFactory] = None, *, override: bool = False
                   ) -> Union[ModelFactory, Callable[[ModelFactory], ModelFactory]]:
    """Register a model factory under ``name``.

    Usable as a decorator, ``@register_model('my_net')``, or as a plain call, ``register_model('my_net', fn)``.
    Registering a name twice raises ``KeyError`` unless ``override=True`` (a silent replacement would make
    ``build_model`` return a different network than the one the user thinks of).
    Returns ``fn`` (so the decorated function stays usable directly).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f'register_model: name must be a non-empty str, got {name!r}')

    def _register(factory: ModelFactory) -> ModelFactory:
        if not callable(factory):
            raise TypeError(f'register_model({name!r}): the factory must be callable, got {type(factory).__name__}')
        if name in _MODEL_FACTORY and not override and _MODEL_FACTORY[name] is not factory:
            raise KeyError(
                f'register_model: a model named {name!r} is already registered; pass override=True to replace it'
            )
        _MODEL_FACTORY[name] = factory
        return factory

    if fn is None:
        return _register
    return _register(fn)


def register_model_family(prefix: str, factory: Callable[..., nn.Module], *, exists: Callable[[str], bool],
                          names: Callable[[str], List[str]], source: str) -> None:
    """Make every name ``<prefix><member>`` buildable: ``build_model('timm/vit_base_patch16_224', ...)`` calls
    ``factory('vit_base_patch16_224', num_classes=..., loss=..., pretrained=..., **kwargs)``.

    ``exists(member)`` says whether a member can be built (else :class:`UnknownModelError`), ``names(pattern)``
    lists members for :func:`list_models`; ``source`` names the provider in messages. A prefix is registered
    once (``KeyError`` on a second, different registration); it must end with ``'/'``.
    """
    if not isinstance(prefix, str) or not prefix.endswith('/') or len(prefix) < 2:
        raise ValueError(f"register_model_family: prefix must be a non-empty str ending with '/', got {prefix!r}")
    family = _ModelFamily(factory=factory, exists=exists, names=names, source=source)
    if prefix in _MODEL_FAMILIES and _MODEL_FAMILIES[prefix] != family:
        raise KeyError(f'register_model_family: the prefix {prefix!r} is already registered')
    _MODEL_FAMILIES[prefix] = family


def _family_of(name: str):
    """``(prefix, family)`` for a name of a registered family, else None."""
    for prefix, family in _MODEL_FAMILIES.items():
        if isinstance(name, str) and name.startswith(prefix):
            return prefix, family
    return None


def is_model(name: str) -> bool:
    """True if :func:`build_model` knows ``name``: a registered model or a member of a model family
    (``'timm/<timm model name>'``, checked with timm)."""
    if name in _MODEL_FACTORY:
        return True
    found = _family_of(name)
    return bool(found) and found[1].exists(name[len(found[0]):])


def list_models(pattern: Optional[str] = None, include_timm: bool = False) -> List[str]:
    """Sorted names of the registered models, filtered by the fnmatch ``pattern`` when given.

    timm's ~1300 architectures are not listed by default (they would drown the ReID models); they are, as
    ``'timm/<name>'``, with ``include_timm=True`` or a pattern starting with ``'timm/'``
    (``list_models('timm/*clip*')``; a ``'.'`` in it lists pretrained tags too: ``'timm/*clip*.openai'``).
    """
    names = sorted(_MODEL_FACTORY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    for prefix, family in _MODEL_FAMILIES.items():
        if include_timm or (pattern is not None and pattern.startswith(prefix)):
            member_pattern = pattern[len(prefix):] if pattern is not None and pattern.startswith(prefix) else (
                pattern if pattern is not None else '*')
            names += [prefix + m for m in family.names(member_pattern)]
    return sorted(set(names))


def show_avai_models() -> List[str]:
    """Log (INFO) and return the sorted list of available model names.

    Torchreid printed this list; here it goes through ``logging`` (configure it, e.g. with
    ``logging.basicConfig(level=logging.INFO)``, to see it) and is returned so callers can print it.
    """
    names = list_models()
    logger.info('Available models: %s', names)
    return names


def _unknown_name_message(name):
    found = _family_of(name)
    if found:
        prefix, family = found
        member = name[len(prefix):]
        members = family.names('*')
        close = [prefix + m for m in difflib.get_close_matches(member.split('.')[0], members, n=3)]
        hint = f' Did you mean {close}?' if close else ''
        return (f'Unknown model {name!r}: {family.source} has no model {member!r}.{hint} List them with '
                f"list_models('{prefix}*pattern*').")
    names = list_models()
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f' Did you mean {close}?' if close else ''
    families = ''.join(f" Any {f.source} model is '{p}<{f.source} name>'." for p, f in _MODEL_FAMILIES.items())
    return f'Unknown model {name!r}.{hint} Registered models: {names}.{families}'


def _factory(name):
    """The factory building ``name``, or :class:`UnknownModelError`."""
    if name in _MODEL_FACTORY:
        return _MODEL_FACTORY[name]
    found = _family_of(name)
    if found and found[1].exists(name[len(found[0]):]):
        return functools.partial(found[1].factory, name[len(found[0]):])
    raise UnknownModelError(_unknown_name_message(name))


def build_model(name: str, num_classes: int, loss: str = 'softmax', pretrained: bool = True,
                use_gpu: Optional[bool] = None, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``.

    Args:
        name: a name from :func:`list_models`, or ``'timm/<timm model name>'`` for any timm model (see
            :mod:`torchreid.models.timm_backbone`). An unknown name raises :class:`UnknownModelError` (a
            KeyError and a ValueError) listing the known ones.
        num_classes: number of training identities (size of the classifier), an int >= 0.
        loss: ``'softmax'`` (train forward returns logits) or ``'triplet'`` (returns ``(logits, features)``).
        pretrained: load ImageNet weights for the backbone (from torchvision, a local file, or the torch hub
            cache; a warning and random initialisation when they cannot be had, unless
            ``pretrained_strict=True``).
        use_gpu: accepted for Torchreid compatibility and ignored (move the model with ``.to(device)``).
        **kwargs: forwarded to the factory (``bnneck``, ``fc_dims``, ``dropout``, ``pooling``, ``last_stride``,
            ``pretrained_path``, ``pretrained_strict``, ...).

    The returned model carries ``model.model_spec``: a :class:`ModelSpec` recording ``name``, ``num_classes``,
    ``loss`` and the architecture keywords (all but :data:`WEIGHT_SOURCE_KWARGS`), which checkpoints store
    (:func:`describe_model`) so that ``build_model_from_checkpoint`` can rebuild the model. It is None when a
    keyword value is not plain (bool/int/float/str/None or lists/tuples/dicts of them).
    """
    factory = _factory(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f'build_model({name!r}): num_classes must be an int >= 0, got {num_classes!r}')
    if loss not in SUPPORTED_LOSSES:
        raise ValueError(f'build_model({name!r}): unsupported loss {loss!r}; expected one of {SUPPORTED_LOSSES}')
    if use_gpu is not None:
        logger.debug('build_model: use_gpu=%r ignored (move the model with .to(device))', use_gpu)
    if num_classes == 0:
        logger.warning('build_model(%r): num_classes=0, the classifier has no outputs (feature extraction only)',
                       name)
    # Recorded before the call: a factory that changes a list it was given must not change the record.
    spec = _make_spec(name, num_classes, loss, kwargs)
    model = factory(num_classes=num_classes, loss=loss, pretrained=pretrained, **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f'build_model({name!r}): the factory returned {type(model).__name__}, not a torch.nn.Module')
    model.model_spec = spec  # a plain attribute (nn.Module keeps non-tensor, non-module values as such)
    missing = [attr for attr in ('feature_dim', 'classifier') if not hasattr(model, attr)]
    if missing:
        # A custom model may predate this contract; it still works for training, so warn, don't refuse.
        warnings.warn(f'build_model({name!r}): the model has no {missing} attribute(s); engines and tools that '
                      f'read them will fail', stacklevel=2)
    return model
