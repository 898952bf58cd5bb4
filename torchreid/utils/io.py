"""Atomic file writes, the run-folder lock and the fault-injection points of the checkpoint writers.

Every file the project writes for keeps (checkpoints, ranking JSON, ground truth) goes through here: the
content is written to a temporary file in the same folder, flushed and fsynced, then renamed over the
target with :func:`os.replace`, which is atomic on POSIX and Windows. If anything fails before the rename,
the temporary file is removed and the previous target is left untouched. A full disk is reported as a
:class:`DiskFullError` naming the file (torch's own message for it is ``unexpected pos ...``).

A process killed while writing (SIGKILL, power loss) cannot remove its temporary file; those files are
named ``.<target name>.<12 hex digits>.tmp`` (:func:`is_temp_file_name`) and
:func:`remove_stale_temp_files` deletes them, which is safe only while no other process writes in that
folder: the engine calls it when it holds the folder's :class:`RunLock`.

Fault injection (tests only): when the environment variable ``TORCHREID_FAULT_AT`` names a point, the
process SIGKILLs itself there (:func:`fault_point`). The value is ``<point>``, ``<point>@<text>`` (only
when the file written contains ``<text>``, e.g. ``write@model-best``) and optionally ``#<n>`` (at the n-th
such moment of the process, e.g. ``write@model-best#2``: the second write of the best file). Points: ``write``
(inside the write of a temporary file: for binary files after part of the data is in it, for text files before
the flush), ``rename`` (the temporary file is complete and fsynced, before it replaces the target), and the
checkpoint points of :mod:`torchreid.utils.checkpoint`: ``best`` (the epoch file is written, before
``model-best.pth.tar`` is) and ``retention`` (before an old epoch file is deleted). Unset, the checks cost one
environment lookup.

This module imports only the standard library (and torch lazily), so every package may use it.
"""
import contextlib
import datetime
import errno
import json
import logging
import os
import os.path as osp
import re
import secrets
import signal
import socket
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

__all__ = ['atomic_write', 'atomic_write_json', 'atomic_torch_save', 'DiskFullError', 'RunLock',
           'SaveDirInUseError', 'is_temp_file_name', 'remove_stale_temp_files', 'fault_point',
           'FAULT_ENV', 'LOCK_FILE_NAME']

logger = logging.getLogger(__name__)

# O_EXCL: never reuse (or follow a link planted at) an existing name. O_BINARY: no newline translation at
# the descriptor level on Windows (the text layer above does it). Python descriptors are non-inheritable.
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
_TMP_ATTEMPTS = 100
_TOKEN_BYTES = 6
# '.<target name>.<12 lowercase hex digits>.tmp': the names _create_temp_beside gives, nothing else.
_TMP_NAME_RE = re.compile(r'^\.(?P<target>.+)\.[0-9a-f]{%d}\.tmp$' % (2 * _TOKEN_BYTES))
# errno values meaning "the device has no room for this write".
_NO_SPACE_ERRNOS = tuple(e for e in (errno.ENOSPC, getattr(errno, 'EDQUOT', None)) if e is not None)

#: The environment variable of the fault-injection points (tests only).
FAULT_ENV = 'TORCHREID_FAULT_AT'
#: The lock file a run keeps in its save_dir (:class:`RunLock`).
LOCK_FILE_NAME = '.torchreid.lock'
# How many times each TORCHREID_FAULT_AT value has matched in this process (for '#<n>').
_FAULT_HITS: Dict[str, int] = {}


# --------------------------------------------------------------------------------------------- faults
def fault_point(name: str, path: Union[None, str, 'os.PathLike[str]'] = None) -> None:
    """SIGKILL this process when ``TORCHREID_FAULT_AT`` names point ``name`` (and ``path`` matches).

    A real kill, not an exception: nothing after this line runs, no ``finally`` block, no cleanup, exactly as
    when the machine loses power or the OOM killer strikes. Does nothing when the variable is unset.
    """
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    spec, _, nth = wanted.partition('#')
    point, _, text = spec.partition('@')
    if point != name or (text and (path is None or text not in os.fspath(path))):
        return
    _FAULT_HITS[wanted] = _FAULT_HITS.get(wanted, 0) + 1
    if nth and _FAULT_HITS[wanted] != int(nth):
        return
    logging.shutdown()  # flush the log files, so a test can see how far the run went
    kill = getattr(signal, 'SIGKILL', None)
    if kill is None:  # Windows: no SIGKILL; _exit skips every cleanup as well
        os._exit(137)
    os.kill(os.getpid(), kill)


# --------------------------------------------------------------------------------------------- errors
class DiskFullError(OSError):
    """A file could not be written because the device is full (errno ``ENOSPC`` / ``EDQUOT``).

    The previous version of the file is intact and no partial file is left under its name.
    """

    def __init__(self, path: str, cause: Optional[BaseException] = None):
        detail = f' ({cause})' if cause is not None else ''
        super().__init__(errno.ENOSPC,
                         f'could not write "{path}": no space left on the device (disk full){detail}; the previous '
                         f'version of the file, if any, is intact and the partial temporary file was removed. '
                         f'Free some space and run again', path)

    def __str__(self) -> str:  # the message above already names the file
        return self.strerror


def _disk_full_cause(exc: BaseException) -> Optional[OSError]:
    """The ENOSPC / EDQUOT ``OSError`` behind ``exc`` (torch wraps it in ``RuntimeError('unexpected pos')``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


# --------------------------------------------------------------------------------------------- atomic writes
def is_temp_file_name(name: str) -> bool:
    """Whether ``name`` (a base name) is a temporary file of :func:`atomic_write`."""
    return _TMP_NAME_RE.match(name) is not None


def _create_temp_beside(path: str) -> Tuple[int, str]:
    """Create ``.<basename>.<random>.tmp`` beside ``path``; return ``(fd, tmp_path)``.

    Mode 0o666 with the kernel applying the umask, exactly as ``open(path, 'w')`` would: unlike
    :func:`tempfile.mkstemp` (owner-only), this needs no umask query, which would change the process-wide
    umask and race other threads.
    """
    directory, base = osp.split(path)
    for _ in range(_TMP_ATTEMPTS):
        tmp_path = osp.join(directory, f'.{base}.{secrets.token_hex(_TOKEN_BYTES)}.tmp')
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
    it (0o666 less the umask); the temporary file is ``.<basename>.<random>.tmp``. A full disk raises
    :class:`DiskFullError` naming ``path``.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = osp.abspath(os.fspath(path))
    os.makedirs(osp.dirname(path), exist_ok=True)
    try:
        fd, tmp_path = _create_temp_beside(path)
    except OSError as exc:
        if exc.errno in _NO_SPACE_ERRNOS:
            raise DiskFullError(path, exc) from exc
        raise
    try:
        try:
            f = os.fdopen(fd, mode, encoding=(encoding or 'utf-8') if mode == 'w' else None)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            if mode == 'w':  # binary writers (torch.save, file copies) hit the point inside their data
                fault_point('write', path)
            f.flush()
            os.fsync(f.fileno())
        fault_point('rename', path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        cause = _disk_full_cause(exc)
        if cause is not None and not isinstance(exc, DiskFullError):
            raise DiskFullError(path, cause) from exc
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


class _FaultableWriter:
    """The binary file torch.save streams into, with the ``write`` fault point after the first chunk
    (so a kill there leaves a temporary file holding part of the checkpoint)."""

    def __init__(self, f: IO[bytes], path: str):
        self._f = f
        self._path = path
        self._written = 0
        self._checked = False

    def write(self, data: bytes) -> int:
        if self._written and not self._checked:
            self._checked = True
            self._f.flush()  # the part written so far is in the temporary file when the kill comes
            fault_point('write', self._path)
        n = self._f.write(data)
        self._written += len(data)
        return n

    def flush(self) -> None:
        self._f.flush()


def atomic_torch_save(obj: Any, path: Union[str, 'os.PathLike[str]']) -> Union[str, 'os.PathLike[str]']:
    """``torch.save`` to ``path`` atomically (a full disk raises :class:`DiskFullError` naming ``path``)."""
    import torch

    with atomic_write(path, 'wb') as f:
        torch.save(obj, _FaultableWriter(f, os.fspath(path)) if os.environ.get(FAULT_ENV) else f)
    return path


def remove_stale_temp_files(directory: Union[str, 'os.PathLike[str]'], recursive: bool = True) -> List[str]:
    """Delete the temporary files killed :func:`atomic_write` calls left in ``directory``; return their paths.

    Only names :func:`is_temp_file_name` recognises are touched. Call it only while no other process may be
    writing there (the engine holds the folder's :class:`RunLock`): a live writer's temporary file matches too.
    """
    directory = os.fspath(directory)
    if not osp.isdir(directory):
        return []
    removed = []
    walker = os.walk(directory) if recursive else [(directory, [], os.listdir(directory))]
    for folder, _, names in walker:
        for name in names:
            if is_temp_file_name(name):
                tmp = osp.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
                    removed.append(tmp)
                    logger.info('Removed the leftover of an interrupted write: "%s"', tmp)
    return removed


# --------------------------------------------------------------------------------------------- run lock
class SaveDirInUseError(RuntimeError):
    """Another live run holds the lock of this save_dir."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (POSIX; assumed alive elsewhere)."""
    if os.name != 'posix':
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run folder: ``<save_dir>/.torchreid.lock`` holding pid, host and start time.

    Two runs writing checkpoints into one folder would delete each other's files and mix their epochs; the
    second run is refused at start with :class:`SaveDirInUseError` naming the holder. The lock is an OS lock
    (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on the open file, which the kernel releases when
    the holder dies, so a killed run never leaves the folder locked; the file itself stays (stale) and is
    taken over. Where the file system refuses OS locks (some network mounts), the recorded pid decides: a
    live pid on this host keeps the folder, a dead one is a stale lock and is taken over.

    Re-entrant within a process (a test-only run inside a training script): nested acquisitions of one
    folder share the lock. Use as a context manager or with :meth:`acquire` / :meth:`release`.
    """

    _held: Dict[str, List[Any]] = {}  # registry of this process's locks: real path -> [fd, depth]

    def __init__(self, save_dir: Union[str, 'os.PathLike[str]']):
        self.save_dir = os.fspath(save_dir)
        self.path = osp.join(self.save_dir, LOCK_FILE_NAME)
        self._key = None

    def __enter__(self) -> 'RunLock':
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._key is not None

    def holder(self) -> Dict[str, Any]:
        """What the lock file records (pid, host, started, argv), or {} when unreadable."""
        try:
            with open(self.path, encoding='utf-8') as f:
                info = json.load(f)
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, info: Dict[str, Any]) -> None:
        who = (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {info.get('started', '?')}"
               if info else 'a process that has not written its details yet')
        raise SaveDirInUseError(
            f'save_dir "{self.save_dir}" is in use by another run ({who}): two runs in one folder overwrite each '
            f'other\'s checkpoints. Wait for it to finish, stop it, or choose another save_dir. (The lock is '
            f'"{self.path}"; it is released when that process ends.)')

    def acquire(self) -> None:
        if self.held:
            return
        os.makedirs(self.save_dir, exist_ok=True)
        key = osp.realpath(self.path)
        if key in self._held:
            self._held[key][1] += 1
            self._key = key
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_BINARY', 0), 0o666)
        try:
            previous = self.holder()
            if not self._os_lock(fd, previous):
                self._refuse(self.holder())
            if previous.get('pid') and previous.get('pid') != os.getpid():
                logger.info('Took over the stale lock of "%s" (pid %s on %s, started %s, no longer running)',
                            self.save_dir, previous.get('pid'), previous.get('host'), previous.get('started'))
            info = {'pid': os.getpid(), 'host': socket.gethostname(),
                    'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}
            data = json.dumps(info).encode('utf-8')
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
        except BaseException:
            os.close(fd)
            raise
        self._held[key] = [fd, 1]
        self._key = key

    def _os_lock(self, fd: int, previous: Dict[str, Any]) -> bool:
        """Take the OS lock without waiting; False when another process holds it."""
        try:
            import fcntl
        except ImportError:
            fcntl = None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except (BlockingIOError, PermissionError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, getattr(errno, 'EWOULDBLOCK', errno.EAGAIN)):
                return False
            # No OS locks on this file system: fall back on the recorded pid.
            logger.warning('save_dir "%s": the file system refuses locks (%s); checking the recorded pid instead',
                           self.save_dir, exc)
            pid, host = previous.get('pid'), previous.get('host')
            if isinstance(pid, int) and pid != os.getpid():
                if host != socket.gethostname() or _pid_alive(pid):
                    return False
            return True

    def release(self) -> None:
        """Release the lock (the lock file stays; the next run takes it over)."""
        if not self.held:
            return
        entry = self._held.get(self._key)
        self._key, key = None, self._key
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del self._held[key]
        fd = entry[0]
        try:
            os.ftruncate(fd, 0)  # no holder recorded: a reader sees a free folder
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the OS lock
