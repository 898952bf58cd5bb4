"""Small helpers: seeding and RNG state capture, folders/files, image reading, environment report."""
import logging
import os
import os.path as osp
import random
from typing import Any, Dict, Union

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    'set_random_seed', 'get_rng_state', 'set_rng_state', 'mkdir_if_missing', 'check_isfile', 'read_image',
    'collect_env_info',
]


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    ``deterministic=True`` also makes cuDNN pick deterministic algorithms (and turns its autotuner off),
    trading speed for run-to-run identical results on GPU.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f'set_random_seed: seed must be an int, got {type(seed).__name__} {seed!r}')
    seed = int(seed)
    random.seed(seed)
    # NumPy's legacy seeding only accepts 32-bit seeds.
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> Dict[str, Any]:
    """Capture the state of every random generator a training run uses.

    Returns a dict with ``'python'``, ``'numpy'``, ``'torch'`` and ``'cuda'`` (None without CUDA). It holds
    only tuples, ints, floats, strings and tensors, so it can be saved in a checkpoint and read back with
    ``torch.load(..., weights_only=True)``.
    """
    np_state = np.random.get_state(legacy=False)
    return {
        'python': random.getstate(),
        'numpy': {
            'bit_generator': np_state['bit_generator'],
            'key': torch.from_numpy(np_state['state']['key'].astype(np.int64)),
            'pos': int(np_state['state']['pos']),
            'has_gauss': int(np_state['has_gauss']),
            'gauss': float(np_state['gauss']),
        },
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _to_tuple(x: Any) -> Any:
    # A state that went through a serializer may come back with lists instead of tuples.
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generator states captured by :func:`get_rng_state`."""
    if not isinstance(state, dict):
        raise TypeError(f'set_rng_state: expected the dict returned by get_rng_state(), got {type(state).__name__}')
    missing = [k for k in ('python', 'numpy', 'torch') if k not in state]
    if missing:
        raise KeyError(f'set_rng_state: the state lacks {missing}; expected the dict returned by get_rng_state()')
    random.setstate(_to_tuple(state['python']))
    np_state = state['numpy']
    key = np_state['key']
    key = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
    np.random.set_state({
        'bit_generator': np_state['bit_generator'],
        'state': {'key': key.astype(np.uint32), 'pos': int(np_state['pos'])},
        'has_gauss': int(np_state['has_gauss']),
        'gauss': float(np_state['gauss']),
    })
    torch.set_rng_state(state['torch'].cpu())
    cuda_states = state.get('cuda')
    if cuda_states is None:
        return
    if not torch.cuda.is_available():
        logger.warning('set_rng_state: the state holds CUDA generator states but CUDA is not available; '
                       'they are not restored')
        return
    count = torch.cuda.device_count()
    if len(cuda_states) != count:
        logger.warning('set_rng_state: the state holds %d CUDA generator states, this machine has %d devices; '
                       'restoring the first %d', len(cuda_states), count, min(count, len(cuda_states)))
    for device_index, cuda_state in enumerate(cuda_states[:count]):
        torch.cuda.set_rng_state(cuda_state.cpu(), device_index)


def mkdir_if_missing(dirname: Union[str, 'os.PathLike[str]']) -> None:
    """Create ``dirname`` (and its parents) if it does not exist yet (an existing file there is an error)."""
    os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath: Union[str, 'os.PathLike[str]']) -> bool:
    """Return True if ``fpath`` is an existing file; otherwise log a warning and return False."""
    isfile = osp.isfile(fpath)
    if not isfile:
        logger.warning('No file found at "%s"', fpath)
    return isfile


def read_image(path: Union[str, 'os.PathLike[str]']) -> Image.Image:
    """Read an image file as an RGB ``PIL.Image``.

    Raises FileNotFoundError when ``path`` does not exist and OSError naming the path when the file
    cannot be decoded as an image.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'read_image: "{path}" does not exist')
    try:
        with Image.open(path) as img:
            # convert() loads the pixels, so the file handle can be closed right away.
            return img.convert('RGB')
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise OSError(f'read_image: cannot read "{path}" as an image: {e}') from e


def collect_env_info() -> str:
    """A printable report of the environment (PyTorch's environment summary plus Pillow's version)."""
    from torch.utils.collect_env import get_pretty_env_info

    import PIL

    return get_pretty_env_info() + f'\n        Pillow ({PIL.__version__})'
