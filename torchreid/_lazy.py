"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists which submodule defines each public name; the submodule is imported on first access.
So ``import torchreid.data.datasets.image.soccernet_format`` (the synthetic generator's only need) does
not pull in torch through the packages above it, while ``from torchreid.data import ImageDataManager``
keeps working as before.
"""
import importlib
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``; ``exports`` maps public name -> relative submodule."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(submodule, package), name)
        namespace[name] = value  # cache: later lookups skip __getattr__
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
