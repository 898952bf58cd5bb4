"""Logging helpers: a log file in the run folder, Torchreid's stdout tee and meters.

The library logs through ``logging.getLogger('torchreid....')``. :func:`setup_logging` attaches one
``FileHandler`` to the ``'torchreid'`` logger so a run's messages land in ``<save_dir>/<filename>``;
the only other change, lowering that logger's level so the file receives the records, is undone by
:func:`remove_logging`, which detaches the handler again: a run leaves the library's logging as it found it.

:func:`setup_console_logging` shows the same records on the console, but only when the user has set up no
handler of their own (``logging.basicConfig``, a script's console handler): a library call is then not
silent, and a configured application does not see every line twice. :func:`redirect_console_to_tqdm`
prints console records above the progress bars instead of into their line.
"""
import contextlib
import logging
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

if TYPE_CHECKING:  # annotations only: this module does not need torch
    import torch

__all__ = ['setup_logging', 'remove_logging', 'find_file_handler', 'setup_console_logging', 'has_user_handler',
           'redirect_console_to_tqdm', 'Logger', 'RankLogger', 'AverageMeter', 'MetricMeter']

_LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
# Attribute set on a handler whose setup_logging call changed the logger's level: (previous, set) levels.
_RESTORE_ATTR = '_torchreid_level_change'


def find_file_handler(path: Optional[str] = None, save_dir: Optional[str] = None,
                      logger_name: str = 'torchreid') -> Optional[logging.FileHandler]:
    """The FileHandler attached to ``logger_name`` that writes ``path`` (or any file inside ``save_dir``)."""
    target = osp.abspath(path) if path else None
    folder = osp.abspath(save_dir) if save_dir else None
    for h in logging.getLogger(logger_name).handlers:
        if not isinstance(h, logging.FileHandler):
            continue
        fname = osp.abspath(h.baseFilename)
        if target is not None and fname == target:
            return h
        if folder is not None and osp.dirname(fname) == folder:
            return h
    return None


def setup_logging(save_dir: str, filename: str = 'train.log', level: int = logging.INFO, mode: str = 'a',
                  logger_name: str = 'torchreid') -> logging.FileHandler:
    """Write the ``torchreid`` log records to ``<save_dir>/<filename>``.

    Idempotent: a handler already writing that file is returned instead of adding a second one. The
    ``torchreid`` logger's level is lowered to ``level`` when it would otherwise drop those records
    (its default effective level is the root's WARNING); :func:`remove_logging` restores it.

    Returns:
        logging.FileHandler: pass it to :func:`remove_logging` to detach it.
    """
    os.makedirs(save_dir, exist_ok=True)
    path = osp.join(save_dir, filename)
    existing = find_file_handler(path=path, logger_name=logger_name)
    if existing is not None:
        return existing
    handler = logging.FileHandler(path, mode=mode, encoding='utf-8')
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    lib_logger = logging.getLogger(logger_name)
    lib_logger.addHandler(handler)
    _lower_level_for(handler, lib_logger, level)
    return handler


def _chain(logger_name: str) -> List[logging.Logger]:
    """The logger and the ancestors its records propagate to (root included)."""
    chain, current = [], logging.getLogger(logger_name)
    while current is not None:
        chain.append(current)
        if not current.propagate:
            break
        current = current.parent
    return chain


def has_user_handler(logger_name: str = 'torchreid') -> bool:
    """Whether records of ``logger_name`` already reach a handler other than a log file (a console handler of
    the user's, ``logging.basicConfig``'s, a test's capture, a ``NullHandler`` meaning "keep quiet")."""
    for lg in _chain(logger_name):
        if any(not isinstance(h, logging.FileHandler) for h in lg.handlers):
            return True
    return False


def _lower_level_for(handler: logging.Handler, lib_logger: logging.Logger, level: int) -> None:
    if lib_logger.getEffectiveLevel() > level:
        # Remembered on the handler, not in a module registry, so each setup undoes exactly its own change.
        previous = lib_logger.level
        lib_logger.setLevel(level)
        setattr(handler, _RESTORE_ATTR, (previous, lib_logger.level))


def setup_console_logging(level: int = logging.INFO, logger_name: str = 'torchreid',
                          stream: Any = None) -> Optional[logging.StreamHandler]:
    """Show ``torchreid`` records on the console (stdout, message only), unless the user has a handler.

    Returns the handler (give it to :func:`remove_logging` at the end), or None when nothing was added because
    :func:`has_user_handler` says the user's own logging set-up takes care of the records.
    """
    if has_user_handler(logger_name):
        return None
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter('%(message)s'))
    lib_logger = logging.getLogger(logger_name)
    lib_logger.addHandler(handler)
    _lower_level_for(handler, lib_logger, level)
    return handler


@contextlib.contextmanager
def redirect_console_to_tqdm(enabled: bool = True, logger_name: str = 'torchreid') -> Iterator[None]:
    """While progress bars are shown, print the console records of ``logger_name`` (and of the ancestors it
    propagates to) through ``tqdm.write``, above the bars rather than into their line
    (:func:`tqdm.contrib.logging.logging_redirect_tqdm`, applied to the loggers that have a console handler)."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    consoles = [lg for lg in _chain(logger_name)
                if any(type(h) is logging.StreamHandler or type(h).__name__ == '_TqdmLoggingHandler'
                       for h in lg.handlers if getattr(h, 'stream', None) in (sys.stdout, sys.stderr))]
    if not consoles:
        yield
        return
    with logging_redirect_tqdm(loggers=consoles, tqdm_class=tqdm):
        yield


def remove_logging(handler: Optional[logging.Handler], logger_name: str = 'torchreid') -> None:
    """Detach and close a handler returned by :func:`setup_logging`; undo the level change it made.

    The logger's level goes back to what it was before that :func:`setup_logging` call, so nested setups
    removed in reverse order (last set up, first removed) restore the original level. A level set by the
    user after the setup is left alone.
    """
    if handler is None:
        return
    lib_logger = logging.getLogger(logger_name)
    lib_logger.removeHandler(handler)
    handler.close()
    change = getattr(handler, _RESTORE_ATTR, None)
    if change is not None:
        delattr(handler, _RESTORE_ATTR)  # a second remove_logging of the same handler changes nothing
        previous, applied = change
        if lib_logger.level == applied:
            lib_logger.setLevel(previous)


class Logger:
    """Torchreid's stdout tee: ``sys.stdout = Logger('log.txt')`` writes to the console and a file.

    Kept for scripts written for Torchreid; the library itself uses :func:`setup_logging`.
    """

    def __init__(self, fpath: Optional[str] = None):
        self.console = sys.stdout
        self.file = None
        if fpath is not None:
            os.makedirs(osp.dirname(osp.abspath(fpath)), exist_ok=True)
            self.file = open(fpath, 'w', encoding='utf-8')

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> 'Logger':
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def write(self, msg: str) -> None:
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        # The console is not ours to close; only the file is.
        if getattr(self, 'file', None) is not None:
            self.file.close()
            self.file = None


class RankLogger:
    """Record rank-1 per target over epochs and log a summary (Torchreid's helper)."""

    def __init__(self, sources: Union[str, Sequence[str]], targets: Union[str, Sequence[str]]):
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        self.logger = {name: {'epoch': [], 'rank1': []} for name in self.targets}

    def write(self, name: str, epoch: int, rank1: float) -> None:
        if name not in self.logger:
            raise KeyError(f'RankLogger: unknown target {name!r}; known: {self.targets}')
        self.logger[name]['epoch'].append(epoch)
        self.logger[name]['rank1'].append(rank1)

    def show_summary(self) -> None:
        log = logging.getLogger('torchreid.utils')
        log.info('=> Show performance summary')
        for name in self.targets:
            from_where = 'source' if name in self.sources else 'target'
            log.info('%s (%s)', name, from_where)
            for epoch, rank1 in zip(self.logger[name]['epoch'], self.logger[name]['rank1']):
                log.info('- epoch %s\t rank1 %.1f%%', epoch, rank1 * 100)


class AverageMeter:
    """Current value and running average of a scalar."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count


class MetricMeter:
    """A group of :class:`AverageMeter` keyed by name (losses, accuracy, ...)."""

    def __init__(self, delimiter: str = '  '):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: Optional[Dict[str, Union[float, 'torch.Tensor']]]) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError(f'MetricMeter.update: expected a dict of scalars, got {type(input_dict).__name__}')
        for k, v in input_dict.items():
            if hasattr(v, 'item'):
                v = v.item()
            self.meters[k].update(v)

    def averages(self) -> Dict[str, float]:
        return {k: m.avg for k, m in self.meters.items()}

    def __str__(self) -> str:
        return self.delimiter.join(f'{k} {m.val:.4f} ({m.avg:.4f})' for k, m in self.meters.items())
