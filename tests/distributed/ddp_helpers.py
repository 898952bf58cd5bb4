"""Helpers of the data-parallel tests: a tiny in-memory ReID task (no BatchNorm, so per-rank and global batches
train alike), engines built the same way in a single process and on every rank, and a spawner of gloo ranks."""
import faulthandler
import os
import shutil
import signal
import socket
import tempfile
import time
import types

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

NUM_PIDS = 16
FEATURE_DIM = 12


class Toy(Dataset):
    """``n`` random 3x8x4 images of ``num_pids`` identities (``i % num_pids``), ``camid`` = ``i % 2``."""
    eval_metric = 'default'
    hidden_labels = False

    def __init__(self, n, seed, num_pids=NUM_PIDS, camid_offset=0):
        g = torch.Generator().manual_seed(seed)
        self.imgs = torch.randn(n, 3, 8, 4, generator=g)
        self.pids = torch.arange(n) % num_pids
        self.camids = torch.arange(n) % 2 + camid_offset
        self.data = [('x', int(p), int(c), 0) for p, c in zip(self.pids, self.camids)]

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return {'img': self.imgs[i], 'pid': self.pids[i], 'camid': self.camids[i]}


class Net(nn.Module):
    """Linear layers only: logits (softmax), (logits, features) (triplet) in training, features in eval."""

    def __init__(self, loss='softmax'):
        super().__init__()
        self.loss = loss
        self.feature_dim = FEATURE_DIM
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(96, FEATURE_DIM), nn.Tanh())
        self.classifier = nn.Linear(FEATURE_DIM, NUM_PIDS)

    def forward(self, x):
        f = self.backbone(x)
        if not self.training:
            return f
        logits = self.classifier(f)
        return (logits, f) if self.loss == 'triplet' else logits


def build_engine(batch_size, loss='softmax', num_replicas=None, rank=None, **engine_kwargs):
    """A seeded engine over :class:`Toy`: P x K sampler (K=2, seed 5), SGD with momentum, one 'default' target
    whose query (10 images, batches of 3) and gallery (21 images, batches of 4) split unevenly across ranks."""
    from torchreid.data.samplers import RandomIdentitySampler
    from torchreid.engine import ImageSoftmaxEngine, ImageTripletEngine
    from torchreid.utils import set_random_seed

    set_random_seed(0)
    train = Toy(64, 1)
    sampler = RandomIdentitySampler(train.data, batch_size, 2, seed=5, num_replicas=num_replicas, rank=rank)
    test = {'toy': {'query': DataLoader(Toy(10, 2), batch_size=3),
                    'gallery': DataLoader(Toy(21, 3, camid_offset=2), batch_size=4)}}
    dm = types.SimpleNamespace(train_loader=DataLoader(train, sampler=sampler, batch_size=batch_size, drop_last=True),
                               test_loader=test, num_train_pids=NUM_PIDS, targets=['toy'],
                               set_epoch=sampler.set_epoch)  # as ImageDataManager: a resumed run's epoch order
    model = Net(loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opts = dict(device='cpu', progress=False, tensorboard=False, label_smooth=False)
    opts.update(engine_kwargs)
    if loss == 'triplet':
        return ImageTripletEngine(dm, model, optimizer, weight_t=1.0, weight_x=1.0, **opts)
    return ImageSoftmaxEngine(dm, model, optimizer, **opts)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _entry(rank, world_size, port, log_dir, fn, args):
    import torch.distributed as dist

    from torchreid.utils.distributed import exit_process

    # each rank's output goes to its own file (fd level, so C++ messages too), and faulthandler writes the Python
    # stacks there if the rank dies of a signal: a failure report can then say why a rank died
    log = open(os.path.join(log_dir, f'rank{rank}.log'), 'w', buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(file=log, all_threads=True)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()
    exit_process(0)  # as main.py under torchrun: a gloo thread releasing tensors cannot abort the exit


def _tail(path, lines=80):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError as e:
        return f'(no log: {e})\n'


def spawn(fn, world_size, *args, timeout=300):
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks (fresh processes, one thread each).

    A rank that raises or dies of a signal, or ranks still running after ``timeout`` seconds (stopped with
    SIGABRT, so faulthandler shows where they waited), fail the test with one message holding the end of every
    rank's output."""
    import pytest
    import torch.multiprocessing as mp

    log_dir = tempfile.mkdtemp(prefix='torchreid-ddp-ranks-')
    failure = None
    try:
        context = mp.start_processes(_entry, args=(world_size, free_port(), log_dir, fn, args), nprocs=world_size,
                                     join=False, start_method='spawn')
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    _stop(context.processes)
                    failure = f'the ranks were still running after {timeout} s (stopped with SIGABRT)'
                    break
        except (mp.ProcessExitedException, mp.ProcessRaisedException) as e:
            failure = f'{type(e).__name__}: {e}'
        if failure:
            failure += '\n' + ''.join(f'--- rank {r} output (last lines) ---\n'
                                       f'{_tail(os.path.join(log_dir, f"rank{r}.log"))}' for r in range(world_size))
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    if failure:
        pytest.fail(failure, pytrace=False)


def _stop(processes):
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGABRT)
    for process in processes:
        process.join(10)
        if process.is_alive():
            process.kill()
