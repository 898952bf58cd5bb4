import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

from utils_helpers import TinyNet

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'export_onnx.py')


def _load_script():
    spec = importlib.util.spec_from_file_location('export_onnx_script', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_matches_pytorch_with_dynamic_batch(tmp_path):
    script = _load_script()
    torch.manual_seed(0)
    model = TinyNet(channels=8)
    model.bn.running_mean.uniform_(-1, 1)  # non-trivial BN statistics, so eval mode matters
    out = tmp_path / 'sub' / 'tiny.onnx'
    result = script.export_onnx(model, str(out), height=32, width=16)
    assert result['path'] == str(out) and result['feature_dim'] == 8
    assert result['max_abs_diff'] <= 1e-4
    assert os.listdir(out.parent) == ['tiny.onnx']  # no temporary file left

    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(7, 3, 32, 16)  # a batch size never traced
    got = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    assert got.shape == (7, 8)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_parity_check_detects_a_mismatch(tmp_path):
    script = _load_script()
    model = TinyNet()
    path = tmp_path / 'a.onnx'
    script.export_onnx(model, str(path), height=32, width=16, check=False)
    with torch.no_grad():
        model.conv.weight.add_(1.0)  # the PyTorch model no longer matches the file
    with pytest.raises(AssertionError, match='differ by up to'):
        script.check_onnx_parity(model, str(path), torch.randn(2, 3, 32, 16))


def test_failed_check_writes_nothing_and_keeps_the_previous_file(tmp_path):
    script = _load_script()
    path = tmp_path / 'c.onnx'
    path.write_bytes(b'previous export')
    with pytest.raises(AssertionError, match='differ by up to'):
        script.export_onnx(TinyNet(), str(path), height=32, width=16, atol=-1.0)  # no difference passes
    assert path.read_bytes() == b'previous export'
    assert os.listdir(tmp_path) == ['c.onnx']  # no temporary file left


def test_clear_error_without_onnxruntime(tmp_path, monkeypatch):
    script = _load_script()
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import now fails
    with pytest.raises(ImportError, match='pip install onnx onnxruntime'):
        script.export_onnx(TinyNet(), str(tmp_path / 'b.onnx'), height=32, width=16)
    assert not (tmp_path / 'b.onnx').exists()


def test_command_line(tmp_path, monkeypatch):
    torchreid_models = pytest.importorskip('torchreid.models')
    script = _load_script()
    built = []

    def fake_build_model(name, num_classes, pretrained=True, **kwargs):
        assert (name, num_classes, pretrained) == ('tiny', 1, False)
        built.append(TinyNet())
        return built[-1]

    # A tiny stand-in keeps the test fast; the wiring (build, load weights, export, check) is the real one.
    monkeypatch.setattr(torchreid_models, 'build_model', fake_build_model)
    torch.manual_seed(0)
    trained = TinyNet()
    weights = tmp_path / 'w.pth.tar'
    torch.save({'state_dict': trained.state_dict()}, weights)
    out = tmp_path / 'tiny.onnx'
    assert script.main(['-m', 'tiny', '-w', str(weights), '--height', '32', '--width', '16', '-o', str(out)]) == 0
    assert torch.equal(built[0].conv.weight, trained.conv.weight)  # the weights were loaded
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {'input': x.numpy()})[0], trained.eval()(x).numpy(),
                                   atol=1e-4)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        script.main(['-m', 'tiny', '-w', str(tmp_path / 'missing.pth'), '-o', str(out)])


@pytest.mark.slow
def test_registered_osnet_exports_within_tolerance(tmp_path):
    models = pytest.importorskip('torchreid.models')
    script = _load_script()
    torch.manual_seed(0)
    model = models.build_model('osnet_x0_25', num_classes=3, pretrained=False)
    result = script.export_onnx(model, str(tmp_path / 'osnet.onnx'), height=64, width=32)
    assert result['feature_dim'] == model.feature_dim and result['max_abs_diff'] <= 1e-4
    assert not model.training  # the exporter must not leave the model in train mode
