"""Load benchmarks/baseline/{main,default_config}.py (scripts beside each other, not a package)."""
import importlib
import importlib.util
import os.path as osp
import sys

BASELINE_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'benchmarks', 'baseline')
CONFIG_DIR = osp.join(BASELINE_DIR, 'configs')


def _add_path():
    if BASELINE_DIR not in sys.path:
        sys.path.insert(0, BASELINE_DIR)


def load_default_config():
    """``default_config`` exactly as main.py imports it (one module, so its ConfigError is the same class)."""
    _add_path()
    return importlib.import_module('default_config')


def load_main():
    _add_path()
    key = '_baseline_main'
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, osp.join(BASELINE_DIR, 'main.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
