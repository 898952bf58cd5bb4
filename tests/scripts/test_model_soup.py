"""scripts/model_soup.py: uniform average of self-describing checkpoints, refusals naming the files."""
import importlib.util
import os

import pytest
import torch

from torchreid.models import build_model, describe_model

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'model_soup.py')


@pytest.fixture(scope='module')
def soup_script():
    spec = importlib.util.spec_from_file_location('model_soup_script', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(tmp_path, name, model_name, seed, ema_shift=None):
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=3, pretrained=False)
    ckpt = {'state_dict': model.state_dict(), 'model_spec': describe_model(model), 'input_size': [32, 16],
            'normalization': {'mean': [0.5] * 3, 'std': [0.25] * 3}, 'epoch': 1}
    if ema_shift is not None:
        ckpt['ema'] = {'module': {k: v + ema_shift if v.is_floating_point() else v
                                  for k, v in model.state_dict().items()}, 'num_updates': 5}
    path = str(tmp_path / name)
    torch.save(ckpt, path)
    return path, model.state_dict()


def test_soup_is_the_uniform_average_and_describes_itself(soup_script, tmp_path):
    a, sa = _checkpoint(tmp_path, 'a.pth', 'osnet_x0_25', 1)
    b, sb = _checkpoint(tmp_path, 'b.pth', 'osnet_x0_25', 2, ema_shift=1.0)  # its EMA weights are used
    out = str(tmp_path / 'soup.pth')
    assert soup_script.main([a, b, '-o', out]) == 0
    soup = torch.load(out, map_location='cpu', weights_only=True)
    key = 'conv1.conv.weight'
    assert torch.allclose(soup['state_dict'][key], (sa[key] + sb[key] + 1.0) / 2)
    counter = next(k for k in sa if k.endswith('num_batches_tracked'))
    assert torch.equal(soup['state_dict'][counter], sa[counter])  # integers from the first
    assert soup['input_size'] == [32, 16] and soup['normalization']['mean'] == [0.5] * 3
    assert soup['soup_of'] == [a, b]
    from torchreid.utils import FeatureExtractor

    extractor = FeatureExtractor.from_checkpoint(out, device='cpu', verbose=False)
    assert extractor(torch.rand(2, 3, 32, 16)).shape == (2, 512)
    assert soup_script.main([a, b, '-o', out]) == 2  # no silent overwrite


def test_soup_refuses_other_architectures_naming_the_files(soup_script, tmp_path, capsys):
    a, _ = _checkpoint(tmp_path, 'a.pth', 'osnet_x0_25', 1)
    c, _ = _checkpoint(tmp_path, 'c.pth', 'resnet18', 1)
    assert soup_script.main([a, c, '-o', str(tmp_path / 'soup.pth')]) == 1
    err = capsys.readouterr().err
    assert 'ONE architecture' in err and 'c.pth' in err and 'a.pth' in err
    assert not os.path.exists(tmp_path / 'soup.pth')
