"""Two gloo ranks spawned from the test train and evaluate through the engine: the weights equal those of one
process with the same global batch, the distributed evaluation equals the single-process one exactly, only rank 0
writes, and the collectives (ordered gather of uneven shards, gather with gradients) do what they promise."""
import os
import os.path as osp
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from ddp_helpers import build_engine, spawn

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed is unavailable')

RESTART_SCRIPT = osp.join(osp.dirname(osp.abspath(__file__)), 'ddp_restart_script.py')
BATCH = 8  # per rank; the single-process reference uses 2 x BATCH
EPOCHS = 2


def _collectives(rank, world):
    from torchreid.utils import distributed as tdist

    # ranks hold 3 and 1 rows: gathered in rank order
    local = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2) if rank == 0 else torch.full((1, 2), -1.0)
    gathered = tdist.gather_in_order(local)
    assert torch.equal(gathered, torch.cat([torch.arange(6, dtype=torch.float32).reshape(3, 2),
                                            torch.full((1, 2), -1.0)]))
    assert tdist.gather_objects_in_order([rank, rank]) == [0, 0, 1, 1]
    # with gradients: every rank computes the same loss on the gathered tensor; each rank's part receives the
    # sum over ranks of the gradient for it (DDP's averaging then gives the single-process gradient)
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    weights = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    (tdist.all_gather_with_grad(x) * weights).sum().backward()
    assert torch.equal(x.grad, world * weights[2 * rank:2 * rank + 2])
    assert list(tdist.shard_range(5, 0, 2)) == [0, 1] and list(tdist.shard_range(5, 1, 2)) == [2, 3, 4]


def _train_and_evaluate(rank, world, out_dir):
    from torchreid.utils import distributed as tdist

    _collectives(rank, world)
    results = {}
    for name, loss, extra in (('softmax', 'softmax', {}), ('gathered', 'triplet', {'gather_embeddings': True})):
        engine = build_engine(BATCH, loss=loss, **extra)
        save_dir = osp.join(out_dir, name)
        run = engine.run(save_dir=save_dir, max_epoch=EPOCHS, print_freq=0, keep_last=None)
        qf, _, _ = engine._extract_sharded(engine.test_loader['toy']['query'], 'q')
        gf, g_pids, _ = engine._extract_sharded(engine.test_loader['toy']['gallery'], 'g')
        params = torch.cat([p.detach().reshape(-1) for p in engine.model.parameters()])
        all_params = tdist.gather_in_order(params[None])
        assert torch.equal(all_params[0], all_params[1]), 'the ranks hold different weights'
        assert len(engine.train_loader) == 4 and not engine._ddp_active and engine.model is engine._models['model']
        results[name] = {'state_dict': engine.model.state_dict(), 'results': run, 'qf': qf, 'gf': gf,
                         'g_pids': g_pids, 'history': engine.history}
    # gradient accumulation, channels-last and bf16 autocast under DDP: trains, ranks stay identical
    engine = build_engine(4, grad_accum_steps=2, channels_last=True, mixed_precision='bf16')
    engine.run(save_dir=osp.join(out_dir, 'accum'), max_epoch=1, print_freq=0)
    params = torch.cat([p.detach().reshape(-1) for p in engine.model.parameters()])
    all_params = tdist.gather_in_order(params[None])
    assert torch.equal(all_params[0], all_params[1])
    results['accum_changed'] = not torch.equal(params, torch.cat([p.detach().reshape(-1) for p in
                                                                  build_engine(4).model.parameters()]))
    torch.save(results, osp.join(out_dir, f'rank{rank}.pt'))


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('ddp'))
    spawn(_train_and_evaluate, 2, out)
    return out, [torch.load(osp.join(out, f'rank{r}.pt'), weights_only=False) for r in range(2)]


@pytest.mark.parametrize('name,loss,extra', [('softmax', 'softmax', {}),
                                             ('gathered', 'triplet', {'gather_embeddings': True})])
def test_two_ranks_train_like_one_process_with_the_global_batch(ddp_run, tmp_path, name, loss, extra):
    _, ranks = ddp_run
    single = build_engine(2 * BATCH, loss=loss, **extra)
    single.run(save_dir=str(tmp_path), max_epoch=EPOCHS, print_freq=0, test_only=False)
    for key, value in single.model.state_dict().items():
        assert torch.allclose(ranks[0][name]['state_dict'][key], value, atol=1e-5, rtol=1e-4), key
    # the weights moved: the comparison is not between two untouched models
    untouched = build_engine(2 * BATCH, loss=loss).model.state_dict()['classifier.weight']
    assert not torch.allclose(untouched, single.model.state_dict()['classifier.weight'], atol=1e-3)
    # rank 1 logs the same epoch averages of its own batches, not rank 0's
    assert len(ranks[1][name]['history']) == EPOCHS


def test_distributed_evaluation_equals_single_process_exactly(ddp_run, tmp_path):
    _, ranks = ddp_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks ran with one thread each: the same kernels
    try:
        single = build_engine(2 * BATCH)
        single.model.load_state_dict(ranks[0]['softmax']['state_dict'])
        qf, _, _ = single.extract_features_from_loader(single.test_loader['toy']['query'])
        gf, g_pids, _ = single.extract_features_from_loader(single.test_loader['toy']['gallery'])
        results = single.run(save_dir=str(tmp_path), test_only=True)
    finally:
        torch.set_num_threads(threads)
    for rank in ranks:
        assert torch.equal(rank['softmax']['qf'], qf) and torch.equal(rank['softmax']['gf'], gf)
        assert np.array_equal(rank['softmax']['g_pids'], g_pids)
        got = rank['softmax']['results']['toy']
        for key in ('mAP', 'rank1', 'mINP', 'num_queries', 'num_gallery'):
            assert got[key] == results['toy'][key], key
        assert np.array_equal(got['cmc'], results['toy']['cmc'])
    assert qf.shape == (10, 12) and gf.shape == (21, 12)


def test_only_rank_zero_writes_and_accumulation_trains(ddp_run):
    out, ranks = ddp_run
    files = sorted(os.listdir(osp.join(out, 'softmax', 'model')))
    assert files == ['model-best.pth.tar', 'model.pth.tar-1', 'model.pth.tar-2']
    logs = [n for n in os.listdir(osp.join(out, 'softmax')) if n.startswith('train.log')]
    assert len(logs) == 1
    assert ranks[0]['accum_changed'] and ranks[1]['accum_changed']


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='POSIX kill needed')
def test_killed_rank_restarted_by_torchrun_ends_like_the_uninterrupted_run(ddp_run, tmp_path):
    """torchrun as a subprocess: rank 1 is SIGKILLed in epoch 2, torchrun (--max-restarts 1) restarts both ranks,
    run(resume='auto') continues from the epoch-1 checkpoint, and the weights equal the uninterrupted run's."""
    out = tmp_path / 'killed.pt'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('TORCHREID_FAULT_AT', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '--max-restarts', '1', '--monitor-interval', '0.2', RESTART_SCRIPT, str(tmp_path / 'run'), str(out),
           '--epochs', str(EPOCHS), '--kill']
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    killed = torch.load(out, weights_only=False)
    assert (killed['restarts'], killed['world'], killed['epochs']) == (1, 2, [2])  # epoch 1 from the checkpoint
    clean = ddp_run[1][0]['softmax']['state_dict']
    for key, value in clean.items():
        assert torch.equal(killed['state_dict'][key], value), key
