"""``torchrun --nproc_per_node 2 benchmarks/baseline/main.py`` on the tiny synthetic set: the command the README's
scale-out section gives, run as a user runs it (a subprocess, gloo on the CPU)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed is unavailable')

MAIN = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'benchmarks', 'baseline', 'main.py')
TARGETS = ['soccernetv3', 'soccernetv3_challenge']


def test_torchrun_main_trains_evaluates_and_exports_once(tiny_root, tmp_path):
    save_dir = tmp_path / 'log'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('TORCHREID_FAULT_AT', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', MAIN,
           '--root', tiny_root, 'data.save_dir', str(save_dir), 'data.targets', str(TARGETS),
           'data.height', '64', 'data.width', '32', 'data.workers', '0',
           'model.name', 'osnet_x0_25', 'model.pretrained', 'False',
           'sampler.train_sampler', 'RandomActionSampler', 'sampler.num_instances', '2',
           'loss.name', 'triplet', 'loss.triplet.action_aware', 'True',
           'train.batch_size', '8', 'train.max_epoch', '1', 'test.visrank', 'False',
           'test.export_ranking_results', 'True', 'device', 'cpu']
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # exit status 0 for both ranks: the run ends through exit_process, so no gloo thread aborts the exit
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'Data-parallel training on 2 ranks (backend gloo): batch size 8 per rank, 16 global' in done.stdout
    assert done.stdout.count('\nResults\n') == 1  # rank 0 alone reports
    assert sorted(os.listdir(save_dir / 'model')) == ['model-best.pth.tar', 'model.pth.tar-1']
    assert len([name for name in os.listdir(save_dir) if name.startswith('train.log')]) == 1
    for name in TARGETS:
        files = glob.glob(str(save_dir / f'ranking_results_{name}_2*.json'))  # _2...: the date
        assert len(files) == 1, (name, files)
        with open(files[0]) as f:
            ranking = json.load(f)
        assert ranking and all(isinstance(ids, list) and ids for ids in ranking.values())
