"""The one lazy-import mechanism of the package (PEP 562), used by ``torchreid`` and ``torchreid.utils``.

``import torchreid`` stays cheap (subpackages load on first access, as ``torchreid.data``), and
``torchreid.utils`` can be imported by the torch-free modules (:mod:`torchreid.soccernet_format`, the
synthetic generator) for its atomic writes without pulling in torch through its checkpoint helpers.
"""
import importlib
from typing import Callable, Dict, Iterable, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str], submodules: Iterable[str] = ()
                 ) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``.

    ``exports`` maps a public name to the (relative or absolute) module that defines it; ``submodules`` are
    names of ``package``'s own subpackages/modules, returned as modules. Both are imported on first access
    and cached in the package namespace.
    """
    namespace = importlib.import_module(package).__dict__
    submodules = tuple(submodules)

    def __getattr__(name):
        if name in submodules:
            value = importlib.import_module(f'{package}.{name}')
        elif name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        else:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        namespace[name] = value  # cache: later lookups skip __getattr__
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports) | set(submodules))

    return __getattr__, __dir__
