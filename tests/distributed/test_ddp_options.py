"""Gradient accumulation (``grad_accum_steps``) and the data-parallel config keys, in one process; the
environment a restarted gloo group is created in; how a torchrun process exits."""
import os
import subprocess
import sys
import types

import pytest
import torch
from torch.utils.data import DataLoader

from ddp_helpers import NUM_PIDS, Net, Toy


def _engine(batch_size, **kwargs):
    from torchreid.engine import ImageSoftmaxEngine
    from torchreid.utils import set_random_seed

    set_random_seed(0)
    dm = types.SimpleNamespace(train_loader=DataLoader(Toy(48, 1), batch_size=batch_size, shuffle=False),
                               test_loader=None, num_train_pids=NUM_PIDS, targets=[])
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return ImageSoftmaxEngine(dm, model, optimizer, device='cpu', progress=False, tensorboard=False,
                              label_smooth=False, **kwargs)


def test_accumulated_batches_step_like_one_large_batch():
    large = _engine(16)
    accumulated = _engine(8, grad_accum_steps=2)
    plain = _engine(8)
    for engine in (large, accumulated, plain):
        for engine.epoch in range(2):
            engine.train(print_freq=0)
    for key, value in large.model.state_dict().items():
        assert torch.allclose(accumulated.model.state_dict()[key], value, atol=1e-6), key
    assert not torch.allclose(plain.model.state_dict()['classifier.weight'],
                              large.model.state_dict()['classifier.weight'])


def test_a_short_last_window_is_averaged_over_its_own_batches():
    engine = _engine(16, grad_accum_steps=2)  # 3 batches an epoch: windows of 2 and 1
    engine.num_batches = 3
    windows = []
    for engine.batch_idx in range(3):
        windows.append(engine._accumulation_window())
    assert windows == [(True, False, 2), (False, True, 2), (True, True, 1)]
    with pytest.raises(ValueError, match='grad_accum_steps'):
        _engine(8, grad_accum_steps=0)


def test_config_keys_reach_the_engine():
    from tests.baseline.helpers import load_default_config

    config = load_default_config()
    cfg = config.get_default_config()
    assert (cfg.train.sync_bn, cfg.train.grad_accum_steps, cfg.train.auto_resume, cfg.loss.gather_embeddings) == \
        (False, 1, False, False)
    cfg.train.grad_accum_steps = 4
    cfg.loss.gather_embeddings = True
    kwargs = config.engine_kwargs(cfg)
    assert (kwargs['grad_accum_steps'], kwargs['gather_embeddings'], kwargs['sync_bn']) == (4, True, False)
    cfg.train.grad_accum_steps = 0
    with pytest.raises(config.ConfigError, match='train.grad_accum_steps'):
        config.check_cfg(cfg)


def test_auto_resume_picks_the_newest_checkpoint_of_the_run_folders(tmp_path):
    import os

    from tests.baseline.helpers import load_default_config, load_main

    main = load_main()
    cfg = load_default_config().get_default_config()
    cfg.data.save_dir = str(tmp_path / 'log')
    assert main.auto_resume_checkpoint(cfg, restarted=True) is None  # nothing written yet: a fresh run
    for folder, epoch, mtime in (('log', 4, 100), ('log-2', 2, 200)):
        path = tmp_path / folder / 'model' / f'model.pth.tar-{epoch}'
        path.parent.mkdir(parents=True)
        path.write_bytes(b'x')
        os.utime(path, (mtime, mtime))
    assert main.auto_resume_checkpoint(cfg) is None  # neither train.auto_resume nor a restart
    newest = (str(tmp_path / 'log-2'), str(tmp_path / 'log-2' / 'model' / 'model.pth.tar-2'))
    assert main.auto_resume_checkpoint(cfg, restarted=True) == newest
    cfg.train.auto_resume = True
    assert main.auto_resume_checkpoint(cfg) == newest
    cfg.test.evaluate = True
    assert main.auto_resume_checkpoint(cfg) is None


@pytest.mark.parametrize('restarts,user_value,expected', [('0', None, None), ('1', None, '1'), ('2', '0', '0')])
def test_a_restarted_gloo_group_connects_lazily_unless_the_user_chose(monkeypatch, restarts, user_value, expected):
    """init_distributed sets TORCH_GLOO_LAZY_INIT=1 on torchrun restarts only, and never over the user's value
    (the process group itself is replaced by a recorder: this checks the environment it is created in)."""
    from torchreid.utils import distributed as tdist

    seen = []
    monkeypatch.setattr(tdist.dist, 'init_process_group',
                        lambda backend, **kwargs: seen.append((backend, tdist.os.environ.get('TORCH_GLOO_LAZY_INIT'))))
    monkeypatch.setenv('TORCH_GLOO_LAZY_INIT', 'placeholder')  # recorded, so the test's end restores the absence
    monkeypatch.delenv('TORCH_GLOO_LAZY_INIT')
    if user_value is not None:
        monkeypatch.setenv('TORCH_GLOO_LAZY_INIT', user_value)
    for name, value in dict(WORLD_SIZE='2', RANK='0', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='1',
                            TORCHELASTIC_RESTART_COUNT=restarts).items():
        monkeypatch.setenv(name, value)
    created, device = tdist.init_distributed('cpu')
    assert created and device == torch.device('cpu')
    assert seen == [('gloo', expected)]


@pytest.mark.parametrize('world_size,finalized', [('2', False), (None, True)])
def test_exit_process_skips_only_the_interpreter_finalization_under_torchrun(world_size, finalized):
    """Under torchrun (WORLD_SIZE > 1) exit_process keeps the status, runs the atexit handlers (log records
    and buffered output still come out) and leaves before the interpreter finalizes (a module-level object is
    never finalized); elsewhere it is sys.exit, which finalizes."""
    code = ('import atexit, logging, sys\n'
            'from torchreid.utils.distributed import exit_process\n'
            'class Tail:\n'
            '    def __del__(self):\n'
            '        print(" finalized", flush=True)\n'
            'kept_until_finalization = Tail()\n'
            'atexit.register(lambda: print(" atexit ran", end=""))\n'
            'logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n'
            'logging.getLogger("torchreid.test").info("a log record")\n'
            'print("buffered output", end="")\n'
            'exit_process(3)\n')
    env = {k: v for k, v in os.environ.items() if k != 'WORLD_SIZE'}
    if world_size is not None:
        env['WORLD_SIZE'] = world_size
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith('buffered output atexit ran')
    assert ('finalized' in done.stdout) is finalized
    assert 'a log record' in done.stderr
