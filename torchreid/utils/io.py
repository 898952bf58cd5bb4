"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Every file the project writes for keeps (checkpoints, ranking JSON, ground truth) goes through here: the
content is written to a temporary file in the same folder, flushed and fsynced, then renamed over the
target with :func:`os.replace`, which is atomic on POSIX and Windows. If anything fails before the rename,
the temporary file is removed and the previous target is left untouched.

This module imports only the standard library (and torch lazily), so every package may use it.
"""
import contextlib
import json
import os
import os.path as osp
import secrets
from typing import IO, Any, Iterator, Optional, Tuple, Union

__all__ = ['atomic_write', 'atomic_write_json', 'atomic_torch_save']


# O_EXCL: never reuse (or follow a link planted at) an existing name. O_BINARY: no newline translation at
# the descriptor level on Windows (the text layer above does it). Python descriptors are non-inheritable.
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
_TMP_ATTEMPTS = 100


def _create_temp_beside(path: str) -> Tuple[int, str]:
    """Create ``.<basename>.<random>.tmp`` beside ``path``; return ``(fd, tmp_path)``.

    Mode 0o666 with the kernel applying the umask, exactly as ``open(path, 'w')`` would: unlike
    :func:`tempfile.mkstemp` (owner-only), this needs no umask query, which would change the process-wide
    umask and race other threads.
    """
    directory, base = osp.split(path)
    for _ in range(_TMP_ATTEMPTS):
        tmp_path = osp.join(directory, f'.{base}.{secrets.token_hex(6)}.tmp')
        try:
            return os.open(tmp_path, _TMP_FLAGS, 0o666), tmp_path
        except FileExistsError:
            continue
    raise FileExistsError(f'atomic_write: could not create a unique temporary file beside {path!r} '
                          f'after {_TMP_ATTEMPTS} attempts')


@contextlib.contextmanager
def atomic_write(path: Union[str, 'os.PathLike[str]'], mode: str = 'w',
                 encoding: Optional[str] = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``'w'`` (text) or ``'wb'`` (binary). The file gets the permissions ``open()`` would give
    it (0o666 less the umask); the temporary file is ``.<basename>.<random>.tmp``.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = osp.abspath(os.fspath(path))
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp_path = _create_temp_beside(path)
    try:
        try:
            f = os.fdopen(fd, mode, encoding=(encoding or 'utf-8') if mode == 'w' else None)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def atomic_write_json(path: Union[str, 'os.PathLike[str]'], obj: Any, indent: Optional[int] = None,
                      sort_keys: bool = False) -> Union[str, 'os.PathLike[str]']:
    """Serialise ``obj`` to JSON and write it to ``path`` atomically.

    The object is serialised before the file is opened, so a value that JSON cannot encode raises
    without touching ``path``.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys)
    with atomic_write(path, 'w') as f:
        f.write(text)
    return path


def atomic_torch_save(obj: Any, path: Union[str, 'os.PathLike[str]']) -> Union[str, 'os.PathLike[str]']:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
    return path
