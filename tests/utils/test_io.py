"""Atomic writes (torchreid/utils/io.py): a failure never leaves a partial or missing target file."""
import json
import os

import pytest
import torch

from torchreid.utils.io import atomic_torch_save, atomic_write, atomic_write_json


def _leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith('.tmp')]


def test_json_written_and_replaced(tmp_path):
    path = tmp_path / 'sub' / 'a.json'
    atomic_write_json(str(path), {'x': 1})
    atomic_write_json(str(path), {'x': 2}, indent=2)
    assert json.loads(path.read_text()) == {'x': 2}
    assert _leftovers(path.parent) == []


def test_failure_mid_write_keeps_previous_file(tmp_path):
    path = tmp_path / 'ranking.json'
    atomic_write_json(str(path), {'old': True})
    with pytest.raises(RuntimeError, match='disk full'):
        with atomic_write(str(path), 'w') as f:
            f.write('{"new": ')
            raise RuntimeError('disk full')
    assert json.loads(path.read_text()) == {'old': True}
    assert _leftovers(tmp_path) == []


def test_unserialisable_json_never_touches_target(tmp_path):
    path = tmp_path / 'a.json'
    atomic_write_json(str(path), [1])
    with pytest.raises(TypeError):
        atomic_write_json(str(path), {'bad': object()})
    assert json.loads(path.read_text()) == [1]
    assert _leftovers(tmp_path) == []


def test_torch_save_round_trip_and_failure(tmp_path, monkeypatch):
    path = tmp_path / 'model.pth.tar'
    atomic_torch_save({'w': torch.arange(3)}, str(path))

    def half_then_crash(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial')
        raise OSError('killed')

    monkeypatch.setattr(torch, 'save', half_then_crash)
    with pytest.raises(OSError, match='killed'):
        atomic_torch_save({'w': torch.zeros(3)}, str(path))
    monkeypatch.undo()
    assert torch.equal(torch.load(str(path))['w'], torch.arange(3))
    assert _leftovers(tmp_path) == []


def test_bad_mode_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(str(tmp_path / 'x'), 'a'):
            pass


def test_written_file_gets_the_umask_mode_not_owner_only(tmp_path):
    path = tmp_path / 'a.json'
    atomic_write_json(str(path), {})
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


@pytest.mark.parametrize('mask', [0o022, 0o077, 0o002])
def test_mode_is_what_open_gives_under_the_umask_and_umask_is_never_called(tmp_path, monkeypatch, mask):
    previous = os.umask(mask)
    try:
        with open(tmp_path / 'reference', 'w') as f:
            f.write('x')
        expected = (tmp_path / 'reference').stat().st_mode & 0o777

        def no_umask(*args):
            raise AssertionError('atomic_write must not touch the process umask')

        monkeypatch.setattr(os, 'umask', no_umask)
        atomic_write_json(str(tmp_path / 'a.json'), {'x': 1})
        atomic_torch_save({'w': torch.arange(2)}, str(tmp_path / 'm.pth'))
        monkeypatch.undo()
    finally:
        os.umask(previous)
    assert expected == 0o666 & ~mask
    assert (tmp_path / 'a.json').stat().st_mode & 0o777 == expected
    assert (tmp_path / 'm.pth').stat().st_mode & 0o777 == expected


def test_temp_file_is_named_beside_the_target(tmp_path):
    import re
    path = tmp_path / 'model.pth.tar'
    with atomic_write(str(path), 'wb') as f:
        seen = os.listdir(tmp_path)
        f.write(b'abc')
    assert len(seen) == 1 and re.match(r'^\.(model\.pth\.tar)\..+\.tmp$', seen[0]), seen
    assert path.read_bytes() == b'abc' and _leftovers(tmp_path) == []
