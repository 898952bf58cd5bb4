"""Command-line error reporting shared by the scripts: one clear message and a non-zero exit code, the
traceback only on request (``--debug``)."""
import sys
from typing import Callable, Optional, Sequence

__all__ = ['error_message', 'run_cli']


def error_message(exc: BaseException) -> str:
    """The message of ``exc`` as one clear line (or the few the library wrote), without the traceback a
    DataLoader worker wraps around an error raised in it."""
    text = str(exc).strip()
    if 'Original Traceback' in text:  # raised in a DataLoader worker: its own last line says what happened
        text = [line for line in text.splitlines() if line.strip()][-1].strip()
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)``; errors become one message on stderr and exit code 1 (130 on Ctrl-C), unless
    ``--debug`` is among the arguments, which shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = '--debug' in argv
    try:
        return int(main([a for a in argv if a != '--debug']) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print('\nInterrupted.', file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into messages
        if debug:
            raise
        print(f'Error: {error_message(exc)}\n(run again with --debug to see the traceback)', file=sys.stderr)
        return 1
