"""Small helpers: seeding and RNG state capture, folders/files, JSON, downloads, image reading, environment report."""
import json
import logging
import os
import os.path as osp
import random
import time
import urllib.request
from typing import Any, Dict, List, Union

import numpy as np
import torch
from PIL import Image

from .io import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    'set_random_seed', 'get_rng_state', 'set_rng_state', 'mkdir_if_missing', 'check_isfile', 'read_image',
    'collect_env_info', 'read_json', 'write_json', 'download_url', 'listdir_nohidden',
]

PathLike = Union[str, 'os.PathLike[str]']


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


# PIL modes of 16-bit grey pictures (PNG bit depth 16): 0..65535, which convert('RGB') clips to white.
_WIDE_GREY_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def to_rgb(img: Image.Image) -> Image.Image:
    """An RGB picture of ``img`` with its full tonal range: 16-bit grey is scaled to 8 bits (``convert`` would
    clip every value above 255 to white), everything else goes through PIL's ``convert``."""
    if img.mode in _WIDE_GREY_MODES:
        grey = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)   # 65535 / 255 = 257
        return Image.fromarray(grey).convert('RGB')
    return img.convert('RGB')


def read_image(path: Union[str, 'os.PathLike[str]']) -> Image.Image:
    """Read an image file as an 8-bit RGB ``PIL.Image`` (16-bit pictures keep their tones, scaled to 8 bits).

    Raises FileNotFoundError when ``path`` does not exist and OSError naming the path when the file
    cannot be decoded as an image.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'read_image: "{path}" does not exist')
    try:
        with Image.open(path) as img:
            return to_rgb(img)  # loads the pixels, so the file handle can be closed right away
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise OSError(f'read_image: cannot read "{path}" as an image: {e}') from e


def collect_env_info() -> str:
    """A printable report of the environment (PyTorch's environment summary plus Pillow's version)."""
    from torch.utils.collect_env import get_pretty_env_info

    import PIL

    return get_pretty_env_info() + f'\n        Pillow ({PIL.__version__})'


def read_json(fpath: PathLike) -> Any:
    """Read a JSON file; a file that is not valid JSON raises ValueError naming it and the position."""
    with open(fpath, 'r', encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'read_json: "{fpath}" is not valid JSON: {e}') from e


def write_json(obj: Any, fpath: PathLike) -> None:
    """Write ``obj`` to ``fpath`` as indented JSON (Torchreid's layout: indent 4), atomically.

    The parent folder is created; a value JSON cannot encode raises before ``fpath`` is touched.
    """
    text = json.dumps(obj, indent=4, separators=(',', ': '))
    with atomic_write(fpath, 'w') as f:
        f.write(text)


_DOWNLOAD_CHUNK = 1 << 20


def download_url(url: str, dst: PathLike, timeout: float = 60.0) -> None:
    """Download ``url`` to the file ``dst`` (Torchreid's signature), logging progress.

    The file is written atomically: an interrupted or failed download leaves nothing at ``dst`` (and an
    existing ``dst`` untouched). ``timeout`` (seconds) bounds each network wait, so a dead server raises
    instead of hanging.
    """
    logger.info('Downloading "%s" to "%s"', url, dst)
    start = time.monotonic()
    received, last_report = 0, start
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dst, 'wb') as f:
        total = int(response.headers.get('Content-Length') or 0)
        while True:
            chunk = response.read(_DOWNLOAD_CHUNK)
            if not chunk:
                break
            f.write(chunk)
            received += len(chunk)
            now = time.monotonic()
            if now - last_report >= 5.0:
                last_report = now
                percent = f'{100.0 * received / total:.0f}%, ' if total else ''
                logger.info('... %s%d MB, %d KB/s', percent, received >> 20,
                            received / 1024 / max(now - start, 1e-9))
    logger.info('Downloaded %d bytes in %.1f s', received, time.monotonic() - start)


def listdir_nohidden(path: PathLike, sort: bool = False) -> List[str]:
    """Names in the folder ``path`` that do not start with a dot (sorted when ``sort``)."""
    items = [name for name in os.listdir(path) if not name.startswith('.')]
    if sort:
        items.sort()
    return items
