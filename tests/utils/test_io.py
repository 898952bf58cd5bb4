"""Atomic writes (torchreid/utils/io.py): a failure never leaves a partial or missing target file."""
import json
import os

import pytest
import torch

from torchreid.utils.io import (DiskFullError, RunLock, atomic_torch_save, atomic_write,
                                atomic_write_json, fault_point, is_temp_file_name, remove_stale_temp_files)


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


def test_a_full_disk_is_named_and_the_previous_file_kept(tmp_path, monkeypatch):
    """torch.save reports a full disk as 'unexpected pos ...': the error names the file and the disk instead."""
    import errno
    import io

    path = tmp_path / 'model.pth.tar-2'
    atomic_torch_save({'w': torch.arange(3)}, str(path))
    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()
            super().close()

    monkeypatch.setattr(os, 'fdopen', lambda fd, *a, **k: io.BufferedWriter(Full(real_fdopen(fd, *a, **k)), 64))
    with pytest.raises(DiskFullError) as info:
        atomic_torch_save({'w': torch.zeros(1000)}, str(path))
    monkeypatch.undo()

    def fsync_full(fd):   # a file system that allocates late fails at the flush / fsync
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', fsync_full)
    with pytest.raises(DiskFullError, match=r'could not write ".*a\.json": no space left'):
        atomic_write_json(str(tmp_path / 'a.json'), {'x': 'y'})
    monkeypatch.undo()
    assert not (tmp_path / 'a.json').exists()
    message = str(info.value)
    assert f'could not write "{path}": no space left on the device (disk full)' in message
    assert 'unexpected pos' not in message.split('(disk full)')[0] and info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path) and isinstance(info.value, OSError)
    assert torch.equal(torch.load(str(path))['w'], torch.arange(3))
    assert _leftovers(tmp_path) == []


def test_temp_file_names_and_cleanup_touch_only_ours(tmp_path):
    with atomic_write(str(tmp_path / 'r.json')) as f:
        name = [n for n in os.listdir(tmp_path) if n.endswith('.tmp')][0]
        f.write('{}')
    assert is_temp_file_name(name)
    assert not any(is_temp_file_name(n) for n in ('.r.json.tmp', 'r.json.0123456789ab.tmp', '.a.0123456789AB.tmp',
                                                  '.a.0123456789a.tmp'))
    (tmp_path / 'sub').mkdir()
    ours = [tmp_path / '.r.json.0123456789ab.tmp', tmp_path / 'sub' / '.m.pth.abcdefabcdef.tmp']
    theirs = tmp_path / '.r.json.tmp'
    for p in ours + [theirs]:
        p.write_text('x')
    assert remove_stale_temp_files(str(tmp_path), recursive=False) == [str(ours[0])]
    assert remove_stale_temp_files(str(tmp_path)) == [str(ours[1])]
    assert theirs.exists()


def test_fault_point_is_inert_unless_named(monkeypatch):
    monkeypatch.delenv('TORCHREID_FAULT_AT', raising=False)
    fault_point('write', 'x')
    monkeypatch.setenv('TORCHREID_FAULT_AT', 'rename@model-best')
    fault_point('write', 'model-best.pth.tar')      # another point
    fault_point('rename', 'model.pth.tar-1')        # another file
    fault_point('rename')                            # no file given: a point restricted to a file does not match


def test_run_lock_refuses_another_holder_and_takes_over_a_stale_file(tmp_path):
    import json
    import subprocess
    import sys

    lock_path = tmp_path / '.torchreid.lock'
    lock_path.write_text(json.dumps({'pid': 999999, 'host': 'elsewhere', 'started': 'yesterday'}))  # stale
    with RunLock(str(tmp_path)) as lock:
        info = lock.holder()
        assert info['pid'] == os.getpid() and info['host'] and info['started']
        code = ('import sys; from torchreid.utils.io import RunLock, SaveDirInUseError\n'
                'try:\n    RunLock(sys.argv[1]).acquire()\nexcept SaveDirInUseError as e:\n    print(e)\n')
        out = subprocess.run([sys.executable, '-c', code, str(tmp_path)], capture_output=True, text=True,
                             check=True).stdout
        assert f'is in use by another run (pid {os.getpid()} on host' in out
    assert lock_path.read_text() == ''                   # released: no holder recorded
