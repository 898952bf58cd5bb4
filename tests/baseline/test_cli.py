"""The command line of main.py: errors are one clear message and a non-zero exit code, Ctrl-C says how to
resume, weights that would make a test-only run score a random network are refused."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from torchreid.models import build_model
from torchreid.models.weights import save_weights

from .helpers import BASELINE_DIR, load_main
from .test_baseline_main import tiny_argv


def run_cli(capsys, argv):
    """``(exit code, stderr)`` of main.py's command line run in this process."""
    code = load_main().cli(argv)
    return code, capsys.readouterr().err


def assert_one_clear_message(err, *needles):
    assert 'Traceback' not in err, err
    assert len(err.strip().splitlines()) <= 4, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_test_only_without_weights_is_refused(tiny_root, tmp_path, capsys):
    """fault: test.evaluate True, no weights, model.pretrained False -> expected: refused, names the key."""
    code, err = run_cli(capsys, tiny_argv(tiny_root, str(tmp_path), 'test.evaluate', 'True'))
    assert code == 1
    assert_one_clear_message(err, 'model.load_weights', 'randomly initialised')


def test_test_only_with_weights_of_another_model_is_refused(tiny_root, tmp_path, capsys):
    """fault: test-only weights file of another architecture (loads nothing) -> expected: refused, not scored."""
    other = save_weights(build_model('resnet18', 3, pretrained=False), tmp_path / 'resnet18.safetensors')
    code, err = run_cli(capsys, tiny_argv(tiny_root, str(tmp_path / 'run'), 'test.evaluate', 'True',
                                          'model.load_weights', other))
    assert code == 1
    assert_one_clear_message(err, 'resnet18.safetensors')
    assert 'loads nothing' in err or 'does not hold the weights' in err


def test_test_only_with_safetensors_weights_scores_like_the_checkpoint(tiny_root, tmp_path, capsys):
    """The same weights as a safetensors file and as the engine's checkpoint give the same numbers."""
    from torchreid.utils import load_checkpoint

    main = load_main()
    trained = main.main(tiny_argv(tiny_root, str(tmp_path / 'train'), 'test.visrank', 'False',
                                  'data.targets', "['soccernetv3']"))
    ckpt = load_checkpoint(trained['checkpoints'][-1][1])
    weights = save_weights(ckpt['state_dict'], tmp_path / 'w.safetensors')
    again = main.main(tiny_argv(tiny_root, str(tmp_path / 'test'), 'test.evaluate', 'True', 'test.visrank',
                                'False', 'data.targets', "['soccernetv3']", 'model.load_weights', weights))
    assert again['targets']['soccernetv3']['mAP'] == pytest.approx(trained['targets']['soccernetv3']['mAP'],
                                                                   abs=1e-9)


def test_missing_data_is_one_message_and_debug_shows_the_traceback(tmp_path, capsys):
    """fault: data root without the dataset, offline -> expected: one message naming the folder; --debug raises."""
    argv = tiny_argv(str(tmp_path / 'nothing-here'), str(tmp_path / 'log'))
    code, err = run_cli(capsys, argv)
    assert code == 1
    assert_one_clear_message(err, 'nothing-here', '--debug')
    with pytest.raises(Exception):
        load_main().cli(['--debug', *argv])


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_device_cuda_without_a_gpu_is_one_message(tiny_root, tmp_path, capsys):
    code, err = run_cli(capsys, tiny_argv(tiny_root, str(tmp_path), 'device', 'cuda'))
    assert code in (1, 2)
    assert_one_clear_message(err, 'cuda')


def test_interrupt_prints_the_exact_resume_command(tiny_root, tmp_path):
    """fault: Ctrl-C (SIGINT) after epoch 1 of 3 -> expected: exit 130, the exact resume command, which resumes."""
    save_dir = str(tmp_path / 'log')
    argv = tiny_argv(tiny_root, save_dir, 'train.max_epoch', '30', 'test.visrank', 'False',
                     'data.targets', "['soccernetv3']")
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, osp.join(BASELINE_DIR, 'main.py'), *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = osp.join(save_dir, 'model', 'model.pth.tar-1')
    deadline = time.time() + 120
    while not osp.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert osp.exists(first), 'the first checkpoint never appeared'
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert 'Traceback' not in err
    resume_line = [line.strip() for line in err.splitlines() if 'model.resume' in line]
    assert resume_line, err
    # The printed command, with max_epoch shortened so the test is quick, resumes from the checkpoint.
    import shlex
    command = shlex.split(resume_line[-1])
    i = command.index('train.max_epoch')
    command[i + 1] = str(int(command[command.index('model.resume') + 1].rsplit('-', 1)[1]) + 1)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'Resumed from' in done.stdout
