"""Compatibility: the synthetic generator moved to :mod:`torchreid.synthetic` (its own subpackage)."""
from torchreid.synthetic import *  # noqa: F401,F403
from torchreid.synthetic import __all__  # noqa: F401
