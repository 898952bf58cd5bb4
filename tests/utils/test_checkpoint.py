"""Checkpoints: naming, atomicity, safe loading, resume, retention."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from torchreid.utils import (
    get_rng_state, load_checkpoint, resume_from_checkpoint, save_checkpoint, set_random_seed,
)
from torchreid.utils.checkpoint import list_checkpoints


def _tiny():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def _state(model, epoch, optimizer=None, scheduler=None, **extra):
    state = {
        'state_dict': model.state_dict(),
        'epoch': epoch,
        'optimizer': optimizer.state_dict() if optimizer else None,
        'scheduler': scheduler.state_dict() if scheduler else None,
        'rng_state': get_rng_state(),
    }
    state.update(extra)
    return state


def _no_temp_files(folder):
    return [n for n in os.listdir(folder) if n.endswith('.tmp')] == []


def test_save_names_and_best_copy_load_with_weights_only(tmp_path):
    model = _tiny()
    path = save_checkpoint(_state(model, 3, best_metric=np.float64(0.5), extra_array=np.arange(5, dtype=np.int32)),
                           str(tmp_path), is_best=True)
    assert os.path.basename(path) == 'model.pth.tar-3'
    best = tmp_path / 'model-best.pth.tar'
    assert best.read_bytes() == open(path, 'rb').read()
    # The file itself loads with PyTorch's safe unpickler (no NumPy objects inside).
    raw = torch.load(path, map_location='cpu', weights_only=True)
    assert raw['epoch'] == 3
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt['best_metric'], float) and ckpt['best_metric'] == 0.5
    assert isinstance(ckpt['extra_array'], np.ndarray) and ckpt['extra_array'].dtype == np.int32
    np.testing.assert_array_equal(ckpt['extra_array'], np.arange(5))
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt['state_dict'][k], v)
    assert _no_temp_files(tmp_path)


def test_remove_module_prefix(tmp_path):
    model = nn.DataParallel(_tiny())
    path = save_checkpoint(_state(model, 1), str(tmp_path))
    keys = list(load_checkpoint(path)['state_dict'])
    assert keys and not any(k.startswith('module.') for k in keys)


def test_missing_and_corrupt_files_raise_naming_the_file(tmp_path):
    missing = tmp_path / 'nope.pth.tar'
    with pytest.raises(FileNotFoundError, match='nope.pth.tar'):
        load_checkpoint(str(missing))
    path = save_checkpoint(_state(_tiny(), 1), str(tmp_path))
    data = open(path, 'rb').read()
    broken = tmp_path / 'broken.pth.tar'
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match='broken.pth.tar'):
        load_checkpoint(str(broken))


def test_untrusted_objects_are_refused_with_a_clear_message(tmp_path):
    path = tmp_path / 'pickled.pth.tar'
    torch.save({'state_dict': {}, 'obj': np.random.RandomState(0)}, str(path))
    with pytest.raises(RuntimeError, match='weights_only=False'):
        load_checkpoint(str(path))
    assert 'obj' in load_checkpoint(str(path), weights_only=False)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = _tiny()
    save_checkpoint(_state(model, 1), str(tmp_path), is_best=True)
    before = open(tmp_path / 'model.pth.tar-1', 'rb').read()

    real_save = torch.save

    def half_then_crash(obj, f, *args, **kwargs):
        import io
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt('killed mid-write')

    monkeypatch.setattr(torch, 'save', half_then_crash)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    # Same epoch number: the existing file must survive the failed overwrite; best too.
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(model, 1), str(tmp_path), is_best=True)
    monkeypatch.setattr(torch, 'save', real_save)
    assert open(tmp_path / 'model.pth.tar-1', 'rb').read() == before
    load_checkpoint(str(tmp_path / 'model.pth.tar-1'))
    load_checkpoint(str(tmp_path / 'model-best.pth.tar'))
    assert sorted(os.listdir(tmp_path)) == ['model-best.pth.tar', 'model.pth.tar-1']


def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path):
    """A real process killed while writing a big checkpoint over an existing one."""
    folder = str(tmp_path)
    save_checkpoint({'state_dict': {'w': torch.zeros(3)}, 'epoch': 1}, folder)
    ready = tmp_path / 'ready'
    script = textwrap.dedent(f"""
        import os, torch
        from torchreid.utils.checkpoint import save_checkpoint
        big = {{'w': torch.randn(64, 1024, 1024)}}  # 256 MB: the write takes a while
        open({str(ready)!r}, 'w').close()
        while True:
            save_checkpoint({{'state_dict': big, 'epoch': 1}}, {folder!r})
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    proc = subprocess.Popen([sys.executable, '-c', script], env=env)
    try:
        deadline = time.time() + 60
        # Kill once a temporary file is being written.
        while time.time() < deadline:
            if ready.exists() and any(n.endswith('.tmp') for n in os.listdir(folder)):
                break
            time.sleep(0.01)
        else:
            pytest.fail('the writer never started saving')
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ckpt = load_checkpoint(os.path.join(folder, 'model.pth.tar-1'))
    assert ckpt['state_dict']['w'].shape in (torch.Size([3]), torch.Size([64, 1024, 1024]))
    # A save never deletes temporary files (they may be another live writer's); the next run, holding the
    # folder's lock, removes the killed writer's leftover.
    save_checkpoint({'state_dict': {'w': torch.ones(3)}, 'epoch': 2}, folder)
    assert not _no_temp_files(folder)
    from torchreid.utils.io import remove_stale_temp_files
    assert len(remove_stale_temp_files(folder)) == 1
    assert _no_temp_files(folder)


def test_keep_last_never_deletes_best(tmp_path):
    model = _tiny()
    for epoch in range(1, 6):
        save_checkpoint(_state(model, epoch), str(tmp_path), is_best=(epoch == 1), keep_last=2)
    assert [e for e, _ in list_checkpoints(str(tmp_path))] == [4, 5]
    assert (tmp_path / 'model-best.pth.tar').exists()
    assert load_checkpoint(str(tmp_path / 'model-best.pth.tar'))['epoch'] == 1


def test_resume_restores_model_optimizer_scheduler_and_rng(tmp_path):
    set_random_seed(0)
    model = _tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_checkpoint(_state(model, 7, optimizer, scheduler), str(tmp_path))
    expected_draws = (random.random(), np.random.rand(), torch.rand(1).item())

    model2 = _tiny()
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=1, gamma=0.5)
    set_random_seed(123)
    start = resume_from_checkpoint(path, model2, optimizer2, scheduler2)
    assert start == 7
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected_draws
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    assert optimizer2.param_groups[0]['lr'] == pytest.approx(0.05)
    assert scheduler2.last_epoch == 1
    state = optimizer2.state_dict()['state']
    assert state and all('exp_avg' in s for s in state.values())


def test_save_checkpoint_validates_input(tmp_path):
    with pytest.raises(KeyError, match='epoch'):
        save_checkpoint({'state_dict': {}}, str(tmp_path))
    with pytest.raises(ValueError, match='keep_last'):
        save_checkpoint({'state_dict': {}, 'epoch': 1}, str(tmp_path), keep_last=0)


def test_retention_keeps_the_best_epoch_until_model_best_holds_it(tmp_path):
    """After a kill during the copy of epoch 2 to model-best (the previous best, epoch 1, is left), keep_last=1
    must not delete model.pth.tar-2: it is the only file holding the best weights."""
    from torchreid.utils.checkpoint import write_best_checkpoint

    model, folder = _tiny(), str(tmp_path)
    save_checkpoint(_state(model, 1), folder, is_best=True)
    save_checkpoint(_state(model, 2, best_epoch=2), folder)
    save_checkpoint(_state(model, 3, best_epoch=2), folder, keep_last=1)
    assert sorted(os.listdir(folder)) == ['model-best.pth.tar', 'model.pth.tar-2', 'model.pth.tar-3']
    write_best_checkpoint(folder, 2)
    save_checkpoint(_state(model, 4, best_epoch=2), folder, keep_last=1)
    assert sorted(os.listdir(folder)) == ['model-best.pth.tar', 'model.pth.tar-4']
    assert load_checkpoint(str(tmp_path / 'model-best.pth.tar'))['epoch'] == 2


def test_resume_with_a_new_lr_applies_it_and_keeps_the_schedule(tmp_path, caplog):
    from torchreid.optim import build_lr_scheduler

    model = _tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = build_lr_scheduler(optimizer, 'multi_step', stepsize=[2], gamma=0.1, warmup_epochs=1,
                                   warmup_factor=0.5, max_epoch=5)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    path = save_checkpoint(_state(model, 3, optimizer, scheduler), str(tmp_path))
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.01)           # 0.1 * 0.1 after the milestone

    optimizer2 = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler2 = build_lr_scheduler(optimizer2, 'multi_step', stepsize=[2], gamma=0.1, warmup_epochs=1,
                                    warmup_factor=0.5, max_epoch=5)
    with caplog.at_level('WARNING', logger='torchreid'):
        resume_from_checkpoint(path, model, optimizer2, scheduler2, restore_rng=False)
    assert 'base lr 0.1, this run\'s optimizer has 0.5: the new lr applies' in caplog.text
    assert optimizer2.param_groups[0]['lr'] == pytest.approx(0.05)
    optimizer2.step()
    scheduler2.step()
    assert optimizer2.param_groups[0]['lr'] == pytest.approx(0.05)          # the schedule continues from 0.5
    assert scheduler2.get_last_lr() == [pytest.approx(0.05)]
