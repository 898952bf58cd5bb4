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
