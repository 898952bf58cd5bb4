"""Pretrained weights: local files, the torch hub cache, the offline path (no network is ever used here)."""
import logging
import os.path as osp
import urllib.error
import urllib.parse

import pytest
import torch
import torchvision

from torchreid.models import (LoadReport, PretrainedWeightsError, PretrainedWeightsWarning, build_model,
                              load_pretrained_weights)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache under tmp_path and a download that fails like a machine without network."""
    calls = []

    def fail(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError('[Errno -2] Name or service not known (simulated offline)')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('TORCHREID_WEIGHTS_DIR', raising=False)
    monkeypatch.delenv('TORCHREID_OFFLINE', raising=False)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', fail)
    return calls


def _hub_checkpoint_path(tmp_path, weights):
    name = osp.basename(urllib.parse.urlparse(weights.url).path)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints' / name


def test_load_pretrained_weights_loads_matching_and_reports_skipped(tmp_path, caplog):
    source = build_model('osnet_x0_25', 7, pretrained=False)
    # A checkpoint as DataParallel + Torchreid's save_checkpoint write it.
    state = {'module.' + k: v for k, v in source.state_dict().items()}
    state['module.extra.weight'] = torch.zeros(3)
    path = tmp_path / 'ckpt.pth.tar'
    torch.save({'state_dict': state, 'epoch': 3}, path)

    target = build_model('osnet_x0_25', 5, pretrained=False)
    clf_before = target.classifier.weight.clone()
    with caplog.at_level(logging.WARNING, logger='torchreid.models.weights'):
        report = load_pretrained_weights(target, str(path))

    assert isinstance(report, LoadReport)
    mismatched = {k for k, _, _ in report.shape_mismatch}
    assert mismatched == {'classifier.weight', 'classifier.bias'}
    assert report.unexpected == ['extra.weight']
    assert set(report.skipped) == {'classifier.weight', 'classifier.bias', 'extra.weight'}
    assert 'conv1.conv.weight' in report.loaded
    assert set(report.missing) == {'classifier.weight', 'classifier.bias'}
    assert torch.equal(target.conv1.conv.weight, source.conv1.conv.weight)
    assert torch.equal(target.fc[0].weight, source.fc[0].weight)
    assert torch.equal(target.classifier.weight, clf_before)  # untouched
    assert 'classifier.weight' in caplog.text and 'extra.weight' in caplog.text


def test_load_pretrained_weights_bare_state_dict_and_strict(tmp_path):
    source = build_model('osnet_x0_25', 5, pretrained=False)
    path = tmp_path / 'bare.pth'
    torch.save(source.state_dict(), path)
    target = build_model('osnet_x0_25', 5, pretrained=False)
    report = load_pretrained_weights(target, path, strict=True)
    assert report.skipped == [] and report.missing == []
    expected = source.state_dict()
    for k, v in target.state_dict().items():
        assert torch.equal(v, expected[k]), k

    wrapped = torch.nn.DataParallel(build_model('osnet_x0_25', 5, pretrained=False))
    assert load_pretrained_weights(wrapped, path).skipped == []
    assert torch.equal(wrapped.module.conv1.conv.weight, source.conv1.conv.weight)

    other = build_model('osnet_x0_25', 9, pretrained=False)
    with pytest.raises(PretrainedWeightsError, match='classifier'):
        load_pretrained_weights(other, path, strict=True)


def test_load_pretrained_weights_nothing_matches_warns(tmp_path):
    path = tmp_path / 'unrelated.pth'
    torch.save({'foo.weight': torch.zeros(2)}, path)
    model = build_model('osnet_x0_25', 5, pretrained=False)
    with pytest.warns(PretrainedWeightsWarning, match='NOT loaded'):
        report = load_pretrained_weights(model, path)
    assert report.loaded == [] and report.unexpected == ['foo.weight']


def test_load_pretrained_weights_missing_file():
    model = build_model('osnet_x0_25', 5, pretrained=False)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_pretrained_weights(model, '/nonexistent/nope.pth')


def test_pretrained_offline_warns_and_initialises_randomly(offline):
    with pytest.warns(PretrainedWeightsWarning) as record:
        model = build_model('resnet18', 5, pretrained=True)
    message = str(record[0].message)
    assert 'resnet18' in message and 'ResNet18_Weights.IMAGENET1K_V1' in message
    assert 'TORCH_HOME' in message and 'resnet18-' in message  # where to put the file
    assert offline, 'the download was attempted'
    assert record[0].filename == __file__  # attributed to the caller's line
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 32)).shape == (2, 512)


def test_pretrained_offline_strict_raises(offline):
    with pytest.raises(PretrainedWeightsError, match='resnet18'):
        build_model('resnet18', 5, pretrained=True, pretrained_strict=True)


def test_offline_env_skips_the_download(offline, monkeypatch):
    monkeypatch.setenv('TORCHREID_OFFLINE', '1')
    with pytest.warns(PretrainedWeightsWarning, match='TORCHREID_OFFLINE'):
        build_model('shufflenet_v2_x0_5', 5, pretrained=True)
    assert offline == []  # no download attempted


def test_weights_in_the_hub_cache_are_used_without_network(offline, tmp_path):
    weights = torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1
    reference = torchvision.models.shufflenet_v2_x0_5(weights=None)
    path = _hub_checkpoint_path(tmp_path, weights)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error', PretrainedWeightsWarning)
        model = build_model('shufflenet_v2_x0_5', 5, pretrained=True)
    assert offline == []
    assert torch.equal(model.conv1[0].weight, reference.conv1[0].weight)
    assert torch.equal(model.stage4[0].branch1[0].weight, reference.stage4[0].branch1[0].weight)


def test_osnet_pretrained_without_local_file_warns(offline):
    with pytest.warns(PretrainedWeightsWarning, match=r"osnet_x0_25.*osnet_x0_25_imagenet\.pth"):
        build_model('osnet_x0_25', 5, pretrained=True)
    with pytest.raises(PretrainedWeightsError, match='TORCHREID_WEIGHTS_DIR'):
        build_model('osnet_x0_25', 5, pretrained=True, pretrained_strict=True)


def test_osnet_imagenet_file_from_weights_dir(offline, tmp_path, monkeypatch):
    imagenet = build_model('osnet_x0_25', 1000, pretrained=False)
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    torch.save(imagenet.state_dict(), weights_dir / 'osnet_x0_25_imagenet.pth')
    monkeypatch.setenv('TORCHREID_WEIGHTS_DIR', str(weights_dir))

    model = build_model('osnet_x0_25', 5, pretrained=True, pretrained_strict=True)
    assert torch.equal(model.conv1.conv.weight, imagenet.conv1.conv.weight)
    assert torch.equal(model.fc[0].weight, imagenet.fc[0].weight)
    assert model.classifier.out_features == 5


def test_pretrained_path_kwarg(tmp_path):
    source = build_model('resnet50_ibn_a', 1000, pretrained=False)
    path = tmp_path / 'ibn.pth'
    torch.save(source.state_dict(), path)
    model = build_model('resnet50_ibn_a', 5, pretrained=True, pretrained_path=str(path))
    assert torch.equal(model.layer1[0].bn1.IN.weight, source.layer1[0].bn1.IN.weight)
    assert torch.equal(model.layer3[5].conv2.weight, source.layer3[5].conv2.weight)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_model('osnet_x0_25', 5, pretrained=True, pretrained_path=str(tmp_path / 'missing.pth'))


def test_bad_imagenet_weights_name(offline):
    with pytest.raises(ValueError, match='IMAGENET1K_V9'):
        build_model('resnet18', 5, pretrained=True, imagenet_weights='IMAGENET1K_V9')


def test_checkpoint_with_non_tensor_objects_still_loads(tmp_path, caplog):
    # Older Torchreid checkpoints pickle arbitrary objects next to the weights (here an argparse.Namespace),
    # which torch.load(weights_only=True) refuses; the loader falls back and says so.
    import argparse
    source = build_model('osnet_x0_25', 5, pretrained=False)
    path = tmp_path / 'old.pth.tar'
    torch.save({'state_dict': source.state_dict(), 'args': argparse.Namespace(lr=0.1)}, path)
    target = build_model('osnet_x0_25', 5, pretrained=False)
    with caplog.at_level(logging.WARNING, logger='torchreid.models.weights'):
        report = load_pretrained_weights(target, path)
    assert report.skipped == []
    assert torch.equal(target.conv1.conv.weight, source.conv1.conv.weight)
    assert 'weights_only' in caplog.text
