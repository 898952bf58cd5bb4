"""ModelSpec: what build_model records, describe_model, and rebuilding a model from a checkpoint."""
import logging

import pytest
import torch
import torch.nn as nn

import torchreid
from torchreid.models import (CheckpointError, ModelSpec, UnknownModelError, build_model,
                              build_model_from_checkpoint, checkpoint_input_size, checkpoint_normalization,
                              describe_model, register_model)
from torchreid.models import registry
from torchreid.utils.checkpoint import load_checkpoint, save_checkpoint

NAME = 'shufflenet_v2_x0_5'
H, W = 64, 32


@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, '_MODEL_FACTORY', dict(registry._MODEL_FACTORY))


def _trained(num_classes=5, **kw):
    """A tiny model whose BN statistics and BNNeck are not at their initial values (so a load is visible)."""
    torch.manual_seed(0)
    model = build_model(NAME, num_classes=num_classes, pretrained=False, **kw)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, H, W))  # BN running statistics move
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _state(model, **overrides):
    state = {'state_dict': model.state_dict(), 'epoch': 1, 'model_spec': describe_model(model),
             'input_size': [H, W], 'normalization': {'mean': [0.5, 0.4, 0.3], 'std': [0.2, 0.25, 0.3]},
             'config': None, 'torchreid_version': torchreid.__version__}
    state.update(overrides)
    return state


# -- what build_model records -------------------------------------------------------------------------------

def test_spec_records_the_architecture_keywords_not_the_weight_source(tmp_path):
    model = build_model(NAME, num_classes=7, loss='triplet', pretrained=False, bnneck=True, fc_dims=[16],
                        pooling='gem', pretrained_strict=False, imagenet_weights='IMAGENET1K_V1', use_gpu=False)
    assert isinstance(model.model_spec, ModelSpec)
    assert 'model_spec' not in model.state_dict() and 'model_spec' not in dict(model.named_buffers())
    assert model.model_spec == ModelSpec(NAME, 7, 'triplet', {'bnneck': True, 'fc_dims': [16], 'pooling': 'gem'})
    assert describe_model(model) == {'name': NAME, 'num_classes': 7, 'loss': 'triplet',
                                     'kwargs': {'bnneck': True, 'fc_dims': [16], 'pooling': 'gem'}}
    assert describe_model(nn.DataParallel(model)) == describe_model(model)
    assert build_model('osnet_x0_25', 3, pretrained=False).model_spec == ModelSpec('osnet_x0_25', 3, 'softmax', {})


def test_spec_is_a_copy_of_what_was_passed():
    fc_dims = [16]
    model = build_model(NAME, num_classes=2, pretrained=False, fc_dims=fc_dims)
    fc_dims.append(8)
    assert model.model_spec.kwargs == {'fc_dims': [16]}
    d = describe_model(model)
    d['kwargs']['fc_dims'].append(4)
    assert model.model_spec.kwargs == {'fc_dims': [16]}
    with pytest.raises(Exception):  # frozen
        model.model_spec.name = 'other'


def test_not_describable_keywords_give_none(isolated_registry, caplog):
    @register_model('spec_test_net')
    def spec_test_net(num_classes, loss='softmax', pretrained=True, **kwargs):
        net = nn.Linear(2, num_classes)
        net.feature_dim, net.classifier = 2, net
        return net

    with caplog.at_level(logging.DEBUG, logger='torchreid.models.registry'):
        model = build_model('spec_test_net', 3, pretrained=False, act=nn.ReLU())
    assert model.model_spec is None and describe_model(model) is None
    assert 'model_spec is None' in caplog.text and "kwargs['act']" in caplog.text and 'ReLU' in caplog.text
    assert build_model('spec_test_net', 3, pretrained=False, dims={'a': [1, (2, 3)]}).model_spec is not None
    for value in ([1, object()], {1: 'int key'}, torch.tensor(1.0)):
        assert build_model('spec_test_net', 3, pretrained=False, x=value).model_spec is None
    # a weight-source keyword is never recorded, whatever its value
    assert build_model('spec_test_net', 3, pretrained=False, pretrained_path=object()).model_spec is not None
    assert describe_model(nn.Linear(2, 2)) is None  # not built by build_model


def test_to_dict_from_dict_round_trip():
    spec = ModelSpec('osnet_x0_25', 751, 'triplet', {'bnneck': True, 'fc_dims': [512], 'dropout': 0.1,
                                                     'pooling': 'gem', 'extra': {'a': None, 'b': (1, 2)}})
    d = spec.to_dict()
    assert d == {'name': 'osnet_x0_25', 'num_classes': 751, 'loss': 'triplet', 'kwargs': spec.kwargs}
    assert ModelSpec.from_dict(d) == spec
    assert ModelSpec.from_dict(d).to_dict() == d


@pytest.mark.parametrize('bad, field', [
    ({'num_classes': 3, 'loss': 'softmax', 'kwargs': {}}, r"missing field\(s\) \['name'\]"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {}, 'extra': 1}, r"unknown field\(s\) \['extra'\]"),
    ({'name': '', 'num_classes': 3, 'loss': 'softmax', 'kwargs': {}}, "field 'name'"),
    ({'name': 5, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {}}, "field 'name'"),
    ({'name': NAME, 'num_classes': -1, 'loss': 'softmax', 'kwargs': {}}, "field 'num_classes'"),
    ({'name': NAME, 'num_classes': True, 'loss': 'softmax', 'kwargs': {}}, "field 'num_classes'"),
    ({'name': NAME, 'num_classes': '3', 'loss': 'softmax', 'kwargs': {}}, "field 'num_classes'"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'htri', 'kwargs': {}}, "field 'loss'"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': [1]}, "field 'kwargs'"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {'pretrained': True}}, "field 'kwargs'.*pretrained"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {'num_classes': 2}}, "field 'kwargs'"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {'a b': 1}}, "field 'kwargs'.*'a b'"),
    ({'name': NAME, 'num_classes': 3, 'loss': 'softmax', 'kwargs': {'x': object()}}, r"field 'kwargs'.*kwargs\['x'\]"),
    ([NAME, 3], 'expected a dict'),
])
def test_from_dict_refuses_invalid_dicts(bad, field):
    with pytest.raises(ValueError, match=field):
        ModelSpec.from_dict(bad)


def test_constructor_validates_too():
    with pytest.raises(ValueError, match="ModelSpec: field 'loss'"):
        ModelSpec(NAME, 3, 'htri', {})


# -- rebuilding from a checkpoint ---------------------------------------------------------------------------

def test_rebuilds_the_exact_model_and_loads_it(tmp_path):
    model = _trained(bnneck=True, fc_dims=[16])
    path = save_checkpoint(_state(model), str(tmp_path))
    rebuilt = build_model_from_checkpoint(path, device='cpu')
    assert not rebuilt.training and next(rebuilt.parameters()).device.type == 'cpu'
    assert isinstance(rebuilt.bnneck, nn.BatchNorm1d) and rebuilt.classifier.bias is None  # the bnneck head
    assert rebuilt.feature_dim == 16 and rebuilt.model_spec == model.model_spec
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    x = torch.randn(3, 3, H, W)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    # a loaded dict works as well, and a DataParallel 'module.' prefix is stripped
    state = _state(model)
    state['state_dict'] = {f'module.{k}': v for k, v in state['state_dict'].items()}
    assert torch.equal(build_model_from_checkpoint(state, device='cpu')(x), model(x))
    assert checkpoint_input_size(path) == (H, W)
    assert checkpoint_normalization(load_checkpoint(path)) == {'mean': [0.5, 0.4, 0.3], 'std': [0.2, 0.25, 0.3]}


def test_missing_backbone_key_is_an_error_naming_it(tmp_path):
    model = _trained()
    state = _state(model)
    del state['state_dict']['conv5.0.weight']
    path = save_checkpoint(state, str(tmp_path))
    with pytest.raises(CheckpointError, match=rf"{path}.*missing key\(s\) 1: 'conv5.0.weight'"):
        build_model_from_checkpoint(path, device='cpu')


def test_unexpected_and_mismatched_keys_are_errors(tmp_path):
    model = _trained()
    state = _state(model)
    for i in range(7):
        state['state_dict'][f'extra.{i}'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) 7: 'extra.0', .* and 2 more"):
        build_model_from_checkpoint(state, device='cpu', source='ckpt.pth')
    state = _state(model)
    state['state_dict']['conv5.0.weight'] = torch.zeros(3, 3, 1, 1)
    expected = r"ckpt.pth.*shape mismatch\(es\) 1: 'conv5.0.weight' \(checkpoint \(3, 3, 1, 1\), model \(1024, "
    with pytest.raises(CheckpointError, match=expected):
        build_model_from_checkpoint(state, device='cpu', source='ckpt.pth')


def test_classifier_of_another_size_is_skipped(tmp_path, caplog):
    model = _trained(num_classes=5)
    path = save_checkpoint(_state(model), str(tmp_path))
    with caplog.at_level(logging.INFO, logger='torchreid.models.from_checkpoint'):
        rebuilt = build_model_from_checkpoint(path, num_classes=2, device='cpu')
    assert 'classifier not loaded' in caplog.text
    assert rebuilt.classifier.out_features == 2 and rebuilt.model_spec.num_classes == 2
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert torch.equal(build_model_from_checkpoint(path, device='cpu').classifier.weight, model.classifier.weight)
    with pytest.raises(ValueError, match='num_classes'):
        build_model_from_checkpoint(path, num_classes=-1, device='cpu')


def test_checkpoint_that_does_not_describe_its_model(tmp_path):
    model = _trained()
    torchreid_style = save_checkpoint({'state_dict': model.state_dict(), 'epoch': 3}, str(tmp_path))
    expected = (r"does not describe its model.*no 'model_spec'.*"
                r"FeatureExtractor\(model_name=\.\.\., model_path=\.\.\.\).*--model-name")
    with pytest.raises(CheckpointError, match=expected):
        build_model_from_checkpoint(torchreid_style, device='cpu')
    bare = tmp_path / 'bare.pth'
    torch.save(model.state_dict(), bare)
    with pytest.raises(CheckpointError, match='bare state dict'):
        build_model_from_checkpoint(str(bare), device='cpu')
    with pytest.raises(CheckpointError, match="'model_spec' is None"):
        build_model_from_checkpoint(_state(model, model_spec=None), device='cpu')
    bad_spec = _state(model, model_spec={'name': NAME, 'num_classes': 5, 'loss': 'x', 'kwargs': {}})
    with pytest.raises(CheckpointError, match="invalid model_spec.*field 'loss'"):
        build_model_from_checkpoint(bad_spec, device='cpu')
    no_weights = _state(model)
    del no_weights['state_dict']
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        build_model_from_checkpoint(no_weights, device='cpu')
    unknown = _state(model, model_spec={'name': 'not_a_model', 'num_classes': 5, 'loss': 'softmax', 'kwargs': {}})
    with pytest.raises(UnknownModelError, match="'not_a_model', which is not registered"):
        build_model_from_checkpoint(unknown, device='cpu')
    stale = _state(model, model_spec={'name': NAME, 'num_classes': 5, 'loss': 'softmax', 'kwargs': {'bogus': 1}})
    with pytest.raises(CheckpointError, match='recorded keywords.*bogus'):
        build_model_from_checkpoint(stale, device='cpu')
    with pytest.raises(TypeError, match='path or a loaded checkpoint dict'):
        build_model_from_checkpoint(3)


def test_accessors_handle_missing_and_refuse_malformed_values():
    assert checkpoint_input_size({}) is None and checkpoint_normalization({'normalization': None}) is None
    assert checkpoint_input_size({'input_size': (256, 128)}) == (256, 128)
    for bad in ([256], [256, 0], [256.5, 128], 'big'):
        with pytest.raises(CheckpointError, match='input_size'):
            checkpoint_input_size({'input_size': bad}, source='f.pth')
    for bad in ({'mean': [0.5] * 3}, {'mean': [0.5] * 2, 'std': [0.2] * 3}, {'mean': [0.5] * 3, 'std': [0, 1, 1]}):
        with pytest.raises(CheckpointError, match='normalization'):
            checkpoint_normalization({'normalization': bad})
