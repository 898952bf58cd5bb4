import io
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from torchreid.utils.model_utils import count_num_param, open_all_layers, open_specified_layers, resolve_device
from torchreid.utils.tools import (
    check_isfile, collect_env_info, get_rng_state, mkdir_if_missing, read_image, set_random_seed, set_rng_state,
)


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


# ---------------------------------------------------------------- seeding and RNG state

def test_set_random_seed_reproducible():
    set_random_seed(123)
    first = _draw()
    set_random_seed(123)
    assert _draw() == first
    set_random_seed(124)
    assert _draw() != first
    set_random_seed(2**40, deterministic=True)  # large seeds are folded for numpy
    assert torch.backends.cudnn.deterministic is True
    torch.backends.cudnn.deterministic = False
    with pytest.raises(TypeError, match='seed'):
        set_random_seed('1')


def test_rng_state_round_trip_through_checkpoint():
    set_random_seed(7)
    _draw()
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = get_rng_state()
    expected = _draw() + (float(np.random.randn()),)
    buf = io.BytesIO()
    torch.save({'rng': state}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)['rng']  # the state must survive a safe checkpoint load
    _draw()  # advance everything
    set_rng_state(loaded)
    assert _draw() + (float(np.random.randn()),) == expected


def test_set_rng_state_rejects_bad_state():
    with pytest.raises(TypeError):
        set_rng_state([1, 2])
    with pytest.raises(KeyError, match='numpy'):
        set_rng_state({'python': random.getstate(), 'torch': torch.get_rng_state()})


# ---------------------------------------------------------------- files

def test_mkdir_and_check_isfile(tmp_path, caplog):
    d = tmp_path / 'a' / 'b'
    mkdir_if_missing(str(d))
    mkdir_if_missing(str(d))  # twice is fine
    assert d.is_dir()
    f = d / 'x.txt'
    f.write_text('x')
    assert check_isfile(str(f)) is True
    assert check_isfile(str(d / 'missing.txt')) is False
    assert 'missing.txt' in caplog.text


def test_read_image(tmp_path):
    path = tmp_path / 'img.png'
    Image.new('L', (4, 6), 200).save(path)
    img = read_image(str(path))
    assert img.mode == 'RGB' and img.size == (4, 6) and img.getpixel((0, 0)) == (200, 200, 200)
    with pytest.raises(FileNotFoundError, match='nothere.png'):
        read_image(str(tmp_path / 'nothere.png'))
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png at all')
    with pytest.raises(OSError, match='broken.png'):
        read_image(str(bad))


def test_collect_env_info(monkeypatch):
    import torch.utils.collect_env as ce

    monkeypatch.setattr(ce, 'get_pretty_env_info', lambda: 'PyTorch version: x')
    info = collect_env_info()
    assert info.startswith('PyTorch version: x') and 'Pillow' in info


# ---------------------------------------------------------------- model utils

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.classifier = nn.Linear(8, 3)


def test_open_specified_and_all_layers():
    model = Net()
    open_specified_layers(model, 'classifier')
    assert model.classifier.training and not model.backbone.training
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    open_all_layers(model)
    assert model.backbone.training and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"\['fc'\].*children are \['backbone', 'classifier'\]"):
        open_specified_layers(model, ['classifier', 'fc'])
    open_specified_layers(nn.DataParallel(model), ['backbone'])
    assert model.backbone.training and not model.classifier.weight.requires_grad


def test_count_num_param_ignores_classifier():
    model = Net()
    assert count_num_param(model) == 4 * 8 + 8 + 8 + 8  # linear + batchnorm, classifier excluded
    assert count_num_param(nn.Linear(2, 3)) == 9


def test_resolve_device(monkeypatch):
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device(torch.device('cpu')) == torch.device('cpu')
    with pytest.raises(ValueError, match="'gpu0' is not a valid device"):
        resolve_device('gpu0')
    with pytest.raises(TypeError, match='use_gpu'):
        resolve_device(True)
    with pytest.raises(TypeError):
        resolve_device(3.5)

    # No CUDA here (faked so the test means the same on a GPU machine).
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device(None) == torch.device('cpu')
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
        resolve_device('cuda')
    with pytest.raises(ValueError, match='CUDA is not available'):
        resolve_device(0)

    # Two fake CUDA devices: an index beyond them is refused.
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert resolve_device(None) == torch.device('cuda')
    assert resolve_device('cuda:1') == torch.device('cuda', 1)
    with pytest.raises(ValueError, match="'cuda:2' requested but only 2 CUDA"):
        resolve_device('cuda:2')

    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='MPS is not available'):
        resolve_device('mps')


@pytest.mark.parametrize('cuda', [False, True])
def test_resolve_device_auto_is_none(monkeypatch, cuda):
    # 'auto' (the yacs config's default) goes straight through: the same choice as None, MPS never picked.
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1 if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)
    expected = torch.device('cuda' if cuda else 'cpu')
    for request in ('auto', ' AUTO ', 'Auto', None):
        assert resolve_device(request) == expected == resolve_device(None)
    with pytest.raises(ValueError, match='"auto", "cpu"'):
        resolve_device('automatic')
