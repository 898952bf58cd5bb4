"""Pretrained weights: local files, the torch hub cache, the offline path (no network is ever used here)."""
import hashlib
import io
import logging
import os
import os.path as osp
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings

import pytest
import torch
import torchvision

from torchreid.models import (LoadReport, PretrainedWeightsError, PretrainedWeightsWarning, build_model,
                              load_pretrained_weights)
from torchreid.models.weights import UnsafeWeightsFileError, save_weights


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
    # Our downloader (urllib) and torch.hub's, should anything still reach it.
    monkeypatch.setattr(urllib.request, 'urlopen', fail)
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
    with caplog.at_level(logging.WARNING, logger='torchreid.models.weights'), \
            pytest.warns(PretrainedWeightsWarning, match='skipped: extra.weight'):
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


class _Payload:
    """Unpickling this object runs code: it creates the file named by ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _payload_file(tmp_path, marker, model=None):
    model = model or build_model('osnet_x0_25', 5, pretrained=False)
    path = tmp_path / 'evil.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'payload': _Payload(marker)}, path)
    return path


def test_a_weights_file_that_needs_unpickling_is_refused_and_runs_nothing(tmp_path):
    """fault: a weights file carrying a pickle payload (load_pretrained_weights, pretrained_path) -> expected:
    refused naming the opt-in, the payload never runs."""
    marker = tmp_path / 'code-ran'
    path = _payload_file(tmp_path, marker)
    target = build_model('osnet_x0_25', 5, pretrained=False)
    with pytest.raises(UnsafeWeightsFileError) as info:
        load_pretrained_weights(target, path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and 'allow_unsafe_pickle=True' in message and '--allow-unsafe-pickle' in message
    # The same refusal through a model factory's local ImageNet file and through pretrained_path.
    with pytest.raises(UnsafeWeightsFileError):
        build_model('osnet_x0_25', 5, pretrained=True, pretrained_path=str(path))
    assert not marker.exists()


def test_legacy_checkpoint_loads_with_the_explicit_opt_in(tmp_path, caplog):
    """fault: a legacy Torchreid checkpoint holding Python objects -> expected: refused by default, loaded
    with allow_unsafe_pickle=True and a warning."""
    # Older Torchreid checkpoints pickle arbitrary objects next to the weights (here an argparse.Namespace).
    import argparse
    source = build_model('osnet_x0_25', 5, pretrained=False)
    path = tmp_path / 'old.pth.tar'
    torch.save({'state_dict': source.state_dict(), 'args': argparse.Namespace(lr=0.1)}, path)
    target = build_model('osnet_x0_25', 5, pretrained=False)
    with pytest.raises(UnsafeWeightsFileError):
        load_pretrained_weights(target, path)
    with caplog.at_level(logging.WARNING, logger='torchreid.models.weights'):
        report = load_pretrained_weights(target, path, allow_unsafe_pickle=True)
    assert report.skipped == [] and report.complete
    assert torch.equal(target.conv1.conv.weight, source.conv1.conv.weight)
    assert 'full unpickling' in caplog.text


def test_corrupt_weights_file_is_one_clear_error(tmp_path):
    """fault: a weights file cut in half -> expected: one error naming the file."""
    path = tmp_path / 'cut.pth'
    buf = io.BytesIO()
    torch.save(build_model('osnet_x0_25', 5, pretrained=False).state_dict(), buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(PretrainedWeightsError, match=r'cut\.pth: not a readable weights file'):
        load_pretrained_weights(build_model('osnet_x0_25', 5, pretrained=False), path)


@pytest.mark.parametrize('suffix', ['.safetensors', '.bin'])
def test_safetensors_round_trip(tmp_path, suffix):
    source = build_model('osnet_x0_25', 5, pretrained=False)
    path = tmp_path / f'weights{suffix}'
    if suffix == '.safetensors':
        save_weights(source, path, metadata={'model': 'osnet_x0_25'})
    else:  # a safetensors file under another name is recognised by its header
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    target = build_model('osnet_x0_25', 5, pretrained=False)
    report = load_pretrained_weights(target, path, strict=True)
    assert report.complete and not report.skipped
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_save_weights_torch_format_loads_with_the_safe_loader(tmp_path):
    source = build_model('osnet_x0_25', 5, pretrained=False)
    path = save_weights(torch.nn.DataParallel(source), tmp_path / 'w.pth')
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(source.state_dict())  # unwrapped: no 'module.' prefix


def test_partial_load_warns_naming_what_was_skipped_and_strict_raises(tmp_path):
    """fault: a weights file missing a stage of the model -> expected: a warning naming the tensors,
    an error with strict=True."""
    source = build_model('osnet_x0_25', 5, pretrained=False)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith('conv5')}
    path = tmp_path / 'partial.pth'
    torch.save(state, path)
    target = build_model('osnet_x0_25', 5, pretrained=False)
    with pytest.warns(PretrainedWeightsWarning, match=r'loaded only partly.*conv5\.'):
        report = load_pretrained_weights(target, path)
    assert not report.complete and all(k.startswith('conv5') for k in report.backbone_missing)
    with pytest.raises(PretrainedWeightsError, match='conv5'):
        load_pretrained_weights(build_model('osnet_x0_25', 5, pretrained=False), path, strict=True)
    # A ReID checkpoint of another dataset (other classifier size) loads completely, without a warning.
    other = build_model('osnet_x0_25', 9, pretrained=False)
    torch.save(other.state_dict(), tmp_path / 'other.pth')
    with warnings.catch_warnings():
        warnings.simplefilter('error', PretrainedWeightsWarning)
        report = load_pretrained_weights(build_model('osnet_x0_25', 5, pretrained=False), tmp_path / 'other.pth')
    assert report.complete and [k for k, _, _ in report.shape_mismatch] == ['classifier.weight', 'classifier.bias']


# ----------------------------------------------------------------------------------------------------------
# the download itself: urllib with a per-call timeout, sha256 prefix checked, atomic into the hub cache
# ----------------------------------------------------------------------------------------------------------
def _tiny_weights(prefix_of=None):
    """A torchvision WeightsEnum for a 3->2 Linear whose url carries the sha256 prefix of ``prefix_of``."""
    from torchvision.models._api import Weights, WeightsEnum

    digest = hashlib.sha256(prefix_of).hexdigest()[:8] if prefix_of is not None else '0123abcd'

    class TinyWeights(WeightsEnum):
        IMAGENET1K_V1 = Weights(url=f'https://example.invalid/models/tiny-{digest}.pth', transforms=None,
                                meta={})

    return TinyWeights


def _tiny_constructor(weights=None, progress=True):
    net = torch.nn.Linear(3, 2)
    if weights is not None:  # as torchvision's constructors do: read through torch.hub's cache
        net.load_state_dict(weights.get_state_dict(progress=progress, check_hash=True))
    return net


def _serialised_linear():
    reference = torch.nn.Linear(3, 2)
    buf = io.BytesIO()
    torch.save(reference.state_dict(), buf)
    return reference, buf.getvalue()


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


@pytest.fixture
def hub_home(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('TORCHREID_OFFLINE', raising=False)
    monkeypatch.delenv('TORCHREID_DOWNLOAD_TIMEOUT', raising=False)

    def no_hub_download(*args, **kwargs):
        raise AssertionError('torch.hub must not download (it has no timeout)')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_hub_download)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def _build(weights_enum, strict=False):
    from torchreid.models.weights import PretrainOptions, torchvision_weights_or_warn
    return torchvision_weights_or_warn('tiny', _tiny_constructor, weights_enum, PretrainOptions(strict=strict))


def test_download_lands_in_hub_cache_with_timeout_and_no_global_socket_default(hub_home, monkeypatch):
    reference, payload = _serialised_linear()
    weights_enum = _tiny_weights(payload)
    monkeypatch.setenv('TORCHREID_DOWNLOAD_TIMEOUT', '7.5')
    before = socket.getdefaulttimeout()
    calls = []

    def serve(url, *args, timeout=None, **kwargs):
        calls.append((url, timeout, socket.getdefaulttimeout()))
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, 'urlopen', serve)
    with warnings.catch_warnings():
        warnings.simplefilter('error', PretrainedWeightsWarning)
        net = _build(weights_enum, strict=True)
    assert calls == [(weights_enum.IMAGENET1K_V1.url, 7.5, before)]  # the timeout went to this call only
    assert socket.getdefaulttimeout() == before
    cached = hub_home / osp.basename(weights_enum.IMAGENET1K_V1.url)
    assert cached.read_bytes() == payload
    assert os.listdir(hub_home) == [cached.name]  # no temporary file left
    assert torch.equal(net.weight, reference.weight)

    # In the cache now: built again without any download.
    monkeypatch.setattr(urllib.request, 'urlopen', lambda *a, **k: pytest.fail('downloaded again'))
    assert torch.equal(_build(weights_enum, strict=True).weight, reference.weight)


def test_default_timeout_is_30_seconds(hub_home, monkeypatch):
    _, payload = _serialised_linear()
    timeouts = []

    def serve(url, *args, timeout=None, **kwargs):
        timeouts.append(timeout)
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, 'urlopen', serve)
    _build(_tiny_weights(payload), strict=True)
    assert timeouts == [30.0]


def test_hash_mismatch_warns_or_raises_and_leaves_nothing(hub_home, monkeypatch):
    _, payload = _serialised_linear()
    weights_enum = _tiny_weights(b'other bytes')  # the name's prefix is not the payload's sha256
    monkeypatch.setattr(urllib.request, 'urlopen', lambda url, *a, **k: _FakeResponse(payload))
    name = osp.basename(weights_enum.IMAGENET1K_V1.url)
    with pytest.warns(PretrainedWeightsWarning, match=rf'{name}.*sha256') as record:
        net = _build(weights_enum)
    assert 'random' in str(record[0].message)
    assert isinstance(net, torch.nn.Linear)
    assert not hub_home.exists() or os.listdir(hub_home) == []
    with pytest.raises(PretrainedWeightsError, match=rf'{name}.*sha256'):
        _build(weights_enum, strict=True)
    assert not hub_home.exists() or os.listdir(hub_home) == []


def test_urlopen_failing_gives_random_init_and_a_warning(hub_home, monkeypatch):
    def fail(url, *args, **kwargs):
        raise urllib.error.URLError('timed out (simulated)')

    monkeypatch.setattr(urllib.request, 'urlopen', fail)
    with pytest.warns(PretrainedWeightsWarning, match='URLError.*timed out'):
        net = _build(_tiny_weights(b'x'))
    assert isinstance(net, torch.nn.Linear)
    assert not hub_home.exists() or os.listdir(hub_home) == []
