"""torchreid: person re-identification in PyTorch, built for SoccerNet-v3 player ReID.

Subpackages are imported on first access (``torchreid.data``, ``torchreid.models``, ...), so
``import torchreid`` stays cheap and keeps Torchreid's ``torchreid.<subpackage>.<name>`` call shapes.
"""
from .__version__ import __version__

_SUBPACKAGES = ('data', 'engine', 'losses', 'metrics', 'models', 'optim', 'utils')

__all__ = ['__version__', *_SUBPACKAGES]


def __getattr__(name):
    if name in _SUBPACKAGES:
        import importlib

        module = importlib.import_module(f'{__name__}.{name}')
        globals()[name] = module
        return module
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(__all__)
