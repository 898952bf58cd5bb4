"""torchreid: person re-identification in PyTorch, built for SoccerNet-v3 player ReID.

Subpackages are imported on first access (``torchreid.data``, ``torchreid.models``, ...), so
``import torchreid`` stays cheap and keeps Torchreid's ``torchreid.<subpackage>.<name>`` call shapes.
"""
from ._lazy import lazy_exports
from .__version__ import __version__

_SUBPACKAGES = ('data', 'engine', 'losses', 'metrics', 'models', 'optim', 'utils', 'synthetic', 'soccernet_format')

__all__ = ['__version__', *_SUBPACKAGES]
__getattr__, __dir__ = lazy_exports(__name__, {}, submodules=_SUBPACKAGES)
