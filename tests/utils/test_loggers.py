"""setup_logging / remove_logging (torchreid/utils/loggers.py) leave the library logger as they found it."""
import logging
import os

import pytest

from torchreid.utils.loggers import remove_logging, setup_logging


@pytest.fixture
def lib_logger():
    """The 'torchreid' logger, its level and handlers put back whatever a test does."""
    log = logging.getLogger('torchreid')
    level, handlers = log.level, list(log.handlers)
    yield log
    for h in list(log.handlers):
        if h not in handlers:
            log.removeHandler(h)
            h.close()
    log.setLevel(level)


@pytest.mark.parametrize('user_level', [logging.NOTSET, logging.ERROR, logging.WARNING])
def test_remove_logging_restores_the_level(lib_logger, tmp_path, user_level):
    lib_logger.setLevel(user_level)
    handler = setup_logging(str(tmp_path), 'run.log', level=logging.INFO)
    assert lib_logger.getEffectiveLevel() <= logging.INFO  # the file gets the INFO records meanwhile
    logging.getLogger('torchreid.engine').info('recorded')
    handler.flush()
    assert 'recorded' in (tmp_path / 'run.log').read_text()
    remove_logging(handler)
    assert lib_logger.level == user_level
    remove_logging(handler)  # twice: still nothing changed
    assert lib_logger.level == user_level


def test_setup_that_changed_nothing_restores_nothing(lib_logger, tmp_path):
    lib_logger.setLevel(logging.DEBUG)
    handler = setup_logging(str(tmp_path), 'run.log', level=logging.INFO)
    assert lib_logger.level == logging.DEBUG
    remove_logging(handler)
    assert lib_logger.level == logging.DEBUG


def test_nested_setups_restore_in_reverse_order(lib_logger, tmp_path):
    lib_logger.setLevel(logging.NOTSET)
    outer = setup_logging(str(tmp_path / 'outer'), 'run.log', level=logging.INFO)
    assert lib_logger.level == logging.INFO
    inner = setup_logging(str(tmp_path / 'inner'), 'run.log', level=logging.DEBUG)
    assert lib_logger.level == logging.DEBUG
    same_level = setup_logging(str(tmp_path / 'third'), 'run.log', level=logging.DEBUG)  # changes nothing
    remove_logging(same_level)
    assert lib_logger.level == logging.DEBUG
    remove_logging(inner)
    assert lib_logger.level == logging.INFO
    remove_logging(outer)
    assert lib_logger.level == logging.NOTSET
    assert outer not in lib_logger.handlers and inner not in lib_logger.handlers


def test_a_level_the_user_set_meanwhile_is_kept(lib_logger, tmp_path):
    lib_logger.setLevel(logging.NOTSET)
    handler = setup_logging(str(tmp_path), 'run.log', level=logging.INFO)
    lib_logger.setLevel(logging.ERROR)
    remove_logging(handler)
    assert lib_logger.level == logging.ERROR


def test_console_only_when_the_user_has_no_handler(lib_logger, monkeypatch):
    import io

    from torchreid.utils.loggers import has_user_handler, setup_console_logging

    monkeypatch.setattr(lib_logger, 'propagate', False)      # pytest's capture handler sits on the root
    lib_logger.setLevel(logging.NOTSET)
    assert not has_user_handler()
    stream = io.StringIO()
    handler = setup_console_logging(stream=stream)
    logging.getLogger('torchreid.engine').info('shown')
    remove_logging(handler)
    logging.getLogger('torchreid.engine').info('not shown')
    assert stream.getvalue() == 'shown\n' and lib_logger.level == logging.NOTSET
    # A file handler is not a console: still added. The user's own handler (or NullHandler): nothing added.
    file_handler = logging.FileHandler(os.devnull)
    lib_logger.addHandler(file_handler)
    assert not has_user_handler()
    lib_logger.addHandler(logging.NullHandler())
    assert has_user_handler() and setup_console_logging() is None
    monkeypatch.setattr(lib_logger, 'propagate', True)


def test_console_records_go_above_the_progress_bars(lib_logger, monkeypatch):
    import sys

    from torchreid.utils.loggers import redirect_console_to_tqdm

    monkeypatch.setattr(lib_logger, 'propagate', False)
    console = logging.StreamHandler(sys.stderr)
    lib_logger.addHandler(console)
    with redirect_console_to_tqdm(True):
        names = [type(h).__name__ for h in lib_logger.handlers]
        assert '_TqdmLoggingHandler' in names and console not in lib_logger.handlers
    assert console in lib_logger.handlers
    with redirect_console_to_tqdm(False):
        assert console in lib_logger.handlers
