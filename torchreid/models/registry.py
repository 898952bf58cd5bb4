"""The model registry: one name -> one factory, the single way models are built.

A factory is any callable ``fn(num_classes, loss='softmax', pretrained=True, **kwargs) -> nn.Module``.
The built-in ones are registered by the modules of this package when ``torchreid.models`` is imported;
research code adds its own with :func:`register_model` and builds them with :func:`build_model` exactly like
the built-in ones.
"""
import difflib
import logging
import warnings

import torch.nn as nn

__all__ = ['register_model', 'build_model', 'list_models', 'show_avai_models', 'SUPPORTED_LOSSES',
           'UnknownModelError']

logger = logging.getLogger(__name__)

#: The training losses a model's ``forward`` knows how to serve (Torchreid's two).
SUPPORTED_LOSSES = ('softmax', 'triplet')

_MODEL_FACTORY = {}


class UnknownModelError(KeyError, ValueError):
    """An unregistered model name. Both a KeyError (Torchreid raised one) and a ValueError."""

    def __str__(self):
        # KeyError's str() would wrap the message in quotes.
        return str(self.args[0]) if self.args else ''


def register_model(name, fn=None, *, override=False):
    """Register a model factory under ``name``.

    Usable as a decorator, ``@register_model('my_net')``, or as a plain call, ``register_model('my_net', fn)``.
    Registering a name twice raises ``KeyError`` unless ``override=True`` (a silent replacement would make
    ``build_model`` return a different network than the one the user thinks of).
    Returns ``fn`` (so the decorated function stays usable directly).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f'register_model: name must be a non-empty str, got {name!r}')

    def _register(factory):
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


def list_models():
    """Sorted names of every registered model."""
    return sorted(_MODEL_FACTORY)


def show_avai_models():
    """Log (INFO) and return the sorted list of available model names.

    Torchreid printed this list; here it goes through ``logging`` (configure it, e.g. with
    ``logging.basicConfig(level=logging.INFO)``, to see it) and is returned so callers can print it.
    """
    names = list_models()
    logger.info('Available models: %s', names)
    return names


def _unknown_name_message(name):
    names = list_models()
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f' Did you mean {close}?' if close else ''
    return f'Unknown model {name!r}.{hint} Registered models: {names}'


def build_model(name, num_classes, loss='softmax', pretrained=True, use_gpu=None, **kwargs):
    """Build the model registered as ``name``.

    Args:
        name: a name from :func:`list_models`. An unknown name raises :class:`UnknownModelError` (a KeyError
            and a ValueError) listing the known ones.
        num_classes: number of training identities (size of the classifier), an int >= 0.
        loss: ``'softmax'`` (train forward returns logits) or ``'triplet'`` (returns ``(logits, features)``).
        pretrained: load ImageNet weights for the backbone (from torchvision, a local file, or the torch hub
            cache; a warning and random initialisation when they cannot be had, unless
            ``pretrained_strict=True``).
        use_gpu: accepted for Torchreid compatibility and ignored (move the model with ``.to(device)``).
        **kwargs: forwarded to the factory (``bnneck``, ``fc_dims``, ``dropout``, ``pooling``, ``last_stride``,
            ``pretrained_path``, ``pretrained_strict``, ...).
    """
    if name not in _MODEL_FACTORY:
        raise UnknownModelError(_unknown_name_message(name))
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f'build_model({name!r}): num_classes must be an int >= 0, got {num_classes!r}')
    if loss not in SUPPORTED_LOSSES:
        raise ValueError(f'build_model({name!r}): unsupported loss {loss!r}; expected one of {SUPPORTED_LOSSES}')
    if use_gpu is not None:
        logger.debug('build_model: use_gpu=%r ignored (move the model with .to(device))', use_gpu)
    if num_classes == 0:
        logger.warning('build_model(%r): num_classes=0, the classifier has no outputs (feature extraction only)',
                       name)
    model = _MODEL_FACTORY[name](num_classes=num_classes, loss=loss, pretrained=pretrained, **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f'build_model({name!r}): the factory returned {type(model).__name__}, not a torch.nn.Module')
    missing = [attr for attr in ('feature_dim', 'classifier') if not hasattr(model, attr)]
    if missing:
        # A custom model may predate this contract; it still works for training, so warn, don't refuse.
        warnings.warn(f'build_model({name!r}): the model has no {missing} attribute(s); engines and tools that '
                      f'read them will fail', stacklevel=2)
    return model
