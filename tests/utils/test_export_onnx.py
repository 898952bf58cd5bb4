import importlib.util
import os
import sys

import numpy as np
import onnx  # noqa: F401  (the test extra installs both: these tests run in CI, never skipped)
import onnxruntime as ort
import pytest
import torch

from utils_helpers import TinyNet

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
    import torchreid.models as torchreid_models
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
    import torchreid.models as models
    script = _load_script()
    torch.manual_seed(0)
    model = models.build_model('osnet_x0_25', num_classes=3, pretrained=False)
    result = script.export_onnx(model, str(tmp_path / 'osnet.onnx'), height=64, width=32)
    assert result['feature_dim'] == model.feature_dim and result['max_abs_diff'] <= 1e-4
    assert not model.training  # the exporter must not leave the model in train mode


# -- a self-describing checkpoint: --weights alone ----------------------------------------------------------

def _self_describing_checkpoint(tmp_path, **overrides):
    """``(model in eval mode, path)``: a tiny shufflenet with a BNNeck, saved as the engine saves it."""
    import torchreid
    from torchreid.models import build_model, describe_model
    from torchreid.utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model('shufflenet_v2_x0_5', num_classes=4, pretrained=False, bnneck=True)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 64, 32))  # BN statistics away from their initial values
    state = {'state_dict': model.state_dict(), 'epoch': 1, 'model_spec': describe_model(model),
             'input_size': [64, 32], 'normalization': {'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25]},
             'config': None, 'torchreid_version': torchreid.__version__}
    state.update(overrides)
    return model.eval(), save_checkpoint(state, str(tmp_path / 'log'))


def test_command_line_from_a_checkpoint_alone(tmp_path):
    script = _load_script()
    model, ckpt = _self_describing_checkpoint(tmp_path)
    out = tmp_path / 'from_ckpt.onnx'
    assert script.main(['--weights', ckpt, '-o', str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    shape = session.get_inputs()[0].shape
    assert shape[1:] == [3, 64, 32]  # the checkpoint's input size
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {'input': x.numpy()})[0]
    assert got.shape == (3, model.feature_dim)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_command_line_checkpoint_with_model_name_and_size(tmp_path):
    script = _load_script()
    model, ckpt = _self_describing_checkpoint(tmp_path)
    out = tmp_path / 'named.onnx'
    # the same name as the checkpoint's: fine; an explicit size wins over the recorded one
    assert script.main(['-m', 'shufflenet_v2_x0_5', '-w', ckpt, '--height', '32', '--width', '32',
                        '-o', str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {'input': x.numpy()})[0], model(x).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match=r"--model-name 'osnet_x0_25' disagrees.*'shufflenet_v2_x0_5'"):
        script.main(['-m', 'osnet_x0_25', '-w', ckpt, '-o', str(tmp_path / 'other.onnx')])
    assert not (tmp_path / 'other.onnx').exists()


def test_command_line_checkpoint_that_does_not_describe_its_model(tmp_path, capsys):
    import torchreid.models as models
    script = _load_script()
    model, _ = _self_describing_checkpoint(tmp_path)
    old = tmp_path / 'old.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'epoch': 1}, old)
    with pytest.raises(models.CheckpointError, match='does not describe its model.*--model-name'):
        script.main(['-w', str(old), '-o', str(tmp_path / 'x.onnx')])
    bare = tmp_path / 'bare.pth'
    torch.save(model.state_dict(), bare)
    with pytest.raises(models.CheckpointError, match='bare state dict'):
        script.main(['-w', str(bare), '-o', str(tmp_path / 'x.onnx')])
    with pytest.raises(SystemExit):
        script.main(['-o', str(tmp_path / 'x.onnx')])
    assert '--weights' in capsys.readouterr().err and not (tmp_path / 'x.onnx').exists()
    # a broken self-describing checkpoint is refused, not half-loaded
    state_dict = model.state_dict()
    state_dict['unexpected.weight'] = torch.zeros(1)
    _, broken = _self_describing_checkpoint(tmp_path / 'broken', state_dict=state_dict)
    with pytest.raises(models.CheckpointError, match="unexpected key.*'unexpected.weight'"):
        script.main(['-w', broken, '-o', str(tmp_path / 'x.onnx')])


def test_command_line_defaults_to_256x128_without_a_recorded_size(tmp_path, monkeypatch):
    import torchreid.models as torchreid_models
    script = _load_script()
    monkeypatch.setattr(torchreid_models, 'build_model', lambda name, num_classes, pretrained=True: TinyNet())
    weights = tmp_path / 'w.pth.tar'
    torch.save({'state_dict': TinyNet().state_dict()}, weights)
    out = tmp_path / 'tiny.onnx'
    assert script.main(['-m', 'tiny', '-w', str(weights), '-o', str(out), '--no-check']) == 0
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape[1:] == [3, 256, 128]
