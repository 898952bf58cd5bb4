"""A newcomer's first hour, scripted: the commands of the README in order, with the mistakes people make on
the way, each answered by one clear message (no traceback) that says what to do."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'benchmarks', 'baseline'))


def baseline_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location('_first_hour_main', osp.join(REPO, 'benchmarks', 'baseline',
                                                                               'main.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def walk(tmp_path_factory):
    """The newcomer's folder: synthetic data generated with the documented command, a place for logs."""
    home = tmp_path_factory.mktemp('newcomer')
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    done = subprocess.run([sys.executable, '-m', 'torchreid.synthetic', '--root', str(home / 'data'), '--preset',
                           'tiny', '--seed', '0'], cwd=str(home), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return home


def run(capsys, home, *opts, root=None):
    argv = ['--root', str(root or home / 'data'), 'data.save_dir', str(home / 'log'), 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'model.name', 'osnet_x0_25', 'model.pretrained', 'False',
            'train.max_epoch', '1', 'train.batch_size', '16', 'sampler.num_instances', '2',
            'data.targets', "['soccernetv3']", *opts]
    code = baseline_main().cli(argv)
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def one_message(err):
    assert 'Traceback' not in err, err
    assert 0 < len(err.strip().splitlines()) <= 4, err
    return err


def test_a_misspelt_key_names_the_closest_one(walk, capsys):
    """fault: `train.max_epochs 3` (a typo) -> expected: exit 2, the closest key named."""
    code, err, out = run(capsys, walk, 'train.max_epochs', '3')
    assert code == 2 and 'train.max_epoch' in one_message(err) and 'did you mean' in err


def test_a_value_outside_its_set_names_the_allowed_ones(walk, capsys):
    """fault: `loss.name arcface` -> expected: exit 2, the allowed values named."""
    code, err, out = run(capsys, walk, 'loss.name', 'arcface')
    assert code == 2 and "'softmax'" in one_message(err) and "'triplet'" in err


def test_the_data_in_the_wrong_place_says_where_it_looked(walk, capsys):
    """fault: --root pointing at an empty folder (offline) -> expected: exit 1, the folder named."""
    code, err, out = run(capsys, walk, root=walk / 'nowhere')
    assert code == 1 and 'nowhere' in one_message(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_asking_for_a_gpu_on_a_cpu_machine(walk, capsys):
    """fault: `device cuda` without a GPU -> expected: exit 1, says there is no CUDA device."""
    code, err, out = run(capsys, walk, 'device', 'cuda')
    assert code == 1 and 'cuda' in one_message(err).lower()


def test_resuming_from_a_checkpoint_that_is_not_there(walk, capsys):
    """fault: `model.resume` of a missing file -> expected: exit 1, the file named."""
    code, err, out = run(capsys, walk, 'model.resume', str(walk / 'log' / 'model' / 'model.pth.tar-9'))
    assert code == 1 and 'model.pth.tar-9' in one_message(err)


def test_testing_without_weights_is_refused(walk, capsys):
    """fault: `test.evaluate True` with no weights -> expected: exit 1, says which key gives them."""
    code, err, out = run(capsys, walk, 'test.evaluate', 'True')
    assert code == 1 and 'model.load_weights' in one_message(err)


def test_train_then_again_then_test_the_best_weights(walk, capsys):
    """The happy path: a run, the same command again (its own folder), then test-only from the first run's
    best checkpoint; the console says where everything went."""
    code, err, out = run(capsys, walk)
    assert code == 0, err
    assert 'Outputs' in out and 'checkpoints:' in out and 'log:' in out
    code, err, out = run(capsys, walk)
    assert code == 0, err
    assert osp.isdir(walk / 'log-2' / 'model')
    best = walk / 'log' / 'model' / 'model-best.pth.tar'
    assert best.is_file()
    code, err, out = run(capsys, walk, 'test.evaluate', 'True', 'model.load_weights', str(best))
    assert code == 0, err
