"""Real kills while checkpoints are written: a tiny training run in a subprocess SIGKILLs itself at a named point
(``TORCHREID_FAULT_AT``, torchreid/utils/io.py), then the run is resumed from its newest checkpoint. Every resume
ends with the weights of an uninterrupted run, no half-written or temporary file is left, and
``model-best.pth.tar`` always exists and holds the best epoch. Also: a second live run on the same save_dir is
refused, and a killed run does not leave the folder locked."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(not hasattr(os, 'fork') or not hasattr(signal, 'SIGKILL'),
                                reason='the kill tests fork and SIGKILL (POSIX)')

from torchreid.utils.checkpoint import BEST_CHECKPOINT_NAME, list_checkpoints, load_checkpoint
from torchreid.utils.io import FAULT_ENV, LOCK_FILE_NAME, RunLock, SaveDirInUseError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Builds the same tiny engine in the test process and in the killed subprocess: in-memory images, a 2-layer
# network, Adam + StepLR, and a scripted test whose mAP depends only on the epoch (best: epoch 2).
BUILD = textwrap.dedent('''
    import types
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, Dataset
    from torchreid.engine import ImageSoftmaxEngine
    from torchreid.utils import set_random_seed

    SCORES = {1: 0.5, 2: 0.7, 3: 0.6}

    class Images(Dataset):
        eval_metric = 'default'
        hidden_labels = False

        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.imgs = torch.randn(n, 3, 8, 4, generator=g)
            self.pids = torch.arange(n) % 4
            self.data = [('x', int(p), 0, 0) for p in self.pids]

        def __len__(self):
            return len(self.imgs)

        def __getitem__(self, i):
            return {'img': self.imgs[i], 'pid': self.pids[i], 'camid': 0}

    def build_engine():
        set_random_seed(0)
        train = DataLoader(Images(32, 1), batch_size=8, shuffle=True)
        test = {'toy': {'query': DataLoader(Images(4, 2)), 'gallery': DataLoader(Images(8, 3))}}
        dm = types.SimpleNamespace(train_loader=train, test_loader=test, num_train_pids=4, targets=['toy'])
        model = nn.Sequential(nn.Flatten(), nn.Linear(96, 6), nn.ReLU(), nn.Linear(6, 4))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        engine = ImageSoftmaxEngine(dm, model, optimizer, scheduler=scheduler, device='cpu', progress=False,
                                    tensorboard=False)

        def scripted_test(options=None, *, epoch=None, final=True, **kwargs):
            score = SCORES[epoch]
            engine.last_test_results = {'toy': {'mAP': score, 'rank1': score, 'mINP': score,
                                                'eval_metric': 'default', 'hidden_labels': False}}
            return score

        engine.test = scripted_test
        return engine

    def run(save_dir, resume=None):
        engine = build_engine()
        engine.run(save_dir=save_dir, max_epoch=3, eval_freq=1, keep_last=1, print_freq=0, resume=resume)
        return engine
''')

# One interpreter imports torch once, then forks a process per fault (the interpreter start-up would cost more
# than the runs): each child sets TORCHREID_FAULT_AT and runs; the parent reports how each child ended.
CHILD = BUILD + textwrap.dedent('''
    import json, os, sys
    torch.set_num_threads(1)
    build_engine()  # import what the first run imports, once, before forking
    ended = {}
    for save_dir, point in json.loads(sys.argv[1]):
        pid = os.fork()
        if pid == 0:
            os.environ['TORCHREID_FAULT_AT'] = point
            try:
                run(save_dir)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        ended[save_dir] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(json.dumps(ended))
''')

# name -> TORCHREID_FAULT_AT. Each epoch is saved before its test and written again after it (with the metric);
# keep_last=1 deletes the previous epoch at each rewrite.
FAULTS = {
    'inside the provisional write of epoch 2': 'write@model.pth.tar-2',
    'epoch 2 complete, before its rename': 'rename@model.pth.tar-2',
    'inside the model-best write of epoch 2': 'write@model-best.pth.tar#2',
    'model-best of epoch 2 complete, before its rename': 'rename@model-best.pth.tar#2',
    'epoch 2 rewritten as best, before model-best': 'best@model.pth.tar-2',
    'deleting epoch 1 (keep_last=1)': 'retention@model.pth.tar-1',
    'epoch 3 rewritten after the final test, before its rename': 'rename@model.pth.tar-3#2',
}


def _build():
    namespace = {}
    exec(compile(BUILD, 'build', 'exec'), namespace)  # noqa: S102 - our own source, shared with the child
    return namespace


def _files(save_dir):
    return sorted(os.listdir(os.path.join(save_dir, 'model')))


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    save_dir = str(tmp_path_factory.mktemp('uninterrupted'))
    engine = _build()['run'](save_dir)
    best = load_checkpoint(os.path.join(save_dir, 'model', BEST_CHECKPOINT_NAME))
    return {'weights': {k: v.clone() for k, v in engine.model.state_dict().items()}, 'best': best,
            'files': _files(save_dir)}


@pytest.fixture(scope='module')
def killed_runs(tmp_path_factory):
    """``{fault: (save_dir, how the run ended)}``, each run killed where its fault point says."""
    dirs = {name: str(tmp_path_factory.mktemp('killed')) for name in FAULTS}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path))
    env.pop(FAULT_ENV, None)
    done = subprocess.run([sys.executable, '-c', CHILD, json.dumps([(dirs[n], FAULTS[n]) for n in FAULTS])],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (dirs[name], ended[dirs[name]]) for name in FAULTS}


def test_uninterrupted_reference(reference):
    assert reference['files'] == ['model-best.pth.tar', 'model.pth.tar-3']
    assert reference['best']['epoch'] == 2 and reference['best']['best_metric'] == pytest.approx(0.7)


@pytest.mark.parametrize('fault', list(FAULTS))
def test_killed_then_resumed_equals_uninterrupted(fault, killed_runs, reference):
    """fault: SIGKILL inside a checkpoint write (temp write, before rename, model-best, retention) ->
    expected: the resume ends bit-identical to an uninterrupted run, model-best valid, no half-written file."""
    save_dir, returncode = killed_runs[fault]
    assert returncode == -signal.SIGKILL, f'the run was not killed at {FAULTS[fault]!r} (exit {returncode})'
    model_dir = os.path.join(save_dir, 'model')
    # What the kill left: only complete checkpoints under their names (temporary files aside).
    for _, path in list_checkpoints(model_dir):
        load_checkpoint(path)
    saved = list_checkpoints(model_dir)
    assert saved, 'the kill came after epoch 1 was saved, so a checkpoint must exist'

    engine = _build()['run'](save_dir, resume=saved[-1][1])

    for key, value in reference['weights'].items():
        assert torch.equal(engine.model.state_dict()[key], value), key
    assert _files(save_dir) == reference['files']                      # no temporary file left either
    best = load_checkpoint(os.path.join(model_dir, BEST_CHECKPOINT_NAME))
    assert best['epoch'] == 2
    for key, value in reference['best']['state_dict'].items():
        assert torch.equal(best['state_dict'][key], value), key
    last = load_checkpoint(os.path.join(model_dir, 'model.pth.tar-3'))
    assert (last['best_epoch'], last['test_pending']) == (2, False)
    assert last['best_metric'] == pytest.approx(0.7)


LOCK_HOLDER = textwrap.dedent('''
    import sys
    from torchreid.utils.io import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print('locked', flush=True)
    sys.stdin.read()
''')


def test_a_second_live_run_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    """fault: a second live run on the same save dir, then a killed holder -> expected: refused while live,
    no stale lock after the kill."""
    save_dir = str(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + sys.path))
    holder = subprocess.Popen([sys.executable, '-c', LOCK_HOLDER, save_dir], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b'locked'
        engine = _build()['build_engine']()
        with pytest.raises(SaveDirInUseError, match=rf'in use by another run \(pid {holder.pid} on host'):
            engine.run(save_dir=save_dir, max_epoch=1, print_freq=0)
        assert not os.path.exists(os.path.join(save_dir, 'model'))     # refused before writing anything
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # The kernel released the dead holder's lock; its file (naming the dead pid) is stale and taken over.
    assert str(holder.pid) in open(os.path.join(save_dir, LOCK_FILE_NAME)).read()
    engine.run(save_dir=save_dir, max_epoch=1, print_freq=0)
    assert _files(save_dir) == ['model-best.pth.tar', 'model.pth.tar-1']
    # Within one process the lock is re-entrant and released at the end of the run.
    with RunLock(save_dir), RunLock(save_dir):
        pass
    assert open(os.path.join(save_dir, LOCK_FILE_NAME)).read() == ''
