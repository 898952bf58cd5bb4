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
import tempfile

__all__ = ['atomic_write', 'atomic_write_json', 'atomic_torch_save']


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode='w', encoding=None):
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``'w'`` (text) or ``'wb'`` (binary).
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        # mkstemp makes the file owner-only and the rename keeps that: give it the mode open() would.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, mode, encoding=(encoding or 'utf-8') if mode == 'w' else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def atomic_write_json(path, obj, indent=None, sort_keys=False):
    """Serialise ``obj`` to JSON and write it to ``path`` atomically.

    The object is serialised before the file is opened, so a value that JSON cannot encode raises
    without touching ``path``.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys)
    with atomic_write(path, 'w') as f:
        f.write(text)
    return path


def atomic_torch_save(obj, path):
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
    return path
