"""The model registry: names, errors, custom models."""
import logging

import pytest
import torch
import torch.nn as nn

import torchreid
from torchreid.models import (NEW_LAYER_NAMES, ReIDModel, UnknownModelError, build_model, list_models, register_model,
                              show_avai_models)
from torchreid.models import registry


@pytest.fixture
def isolated_registry(monkeypatch):
    """A copy of the registry, so custom registrations do not leak into other tests."""
    monkeypatch.setattr(registry, '_MODEL_FACTORY', dict(registry._MODEL_FACTORY))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as info:
        build_model('resnet5', 10)
    message = str(info.value)
    assert 'resnet5' in message
    for name in ('resnet50', 'osnet_x1_0', 'densenet121'):
        assert name in message
    assert isinstance(info.value, ValueError)  # also catchable as a ValueError
    assert isinstance(info.value, UnknownModelError)
    assert message.startswith('Unknown model')  # no KeyError quoting


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unsupported loss 'htri'.*softmax.*triplet"):
        build_model('osnet_x0_25', 10, loss='htri', pretrained=False)


@pytest.mark.parametrize('num_classes', [-1, 2.5, True, '10'])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match='num_classes'):
        build_model('osnet_x0_25', num_classes, pretrained=False)


def test_use_gpu_is_accepted_and_ignored():
    model = build_model('osnet_x0_25', 10, pretrained=False, use_gpu=True)
    assert next(model.parameters()).device.type == 'cpu'


def test_show_avai_models_logs_and_returns(caplog):
    with caplog.at_level(logging.INFO, logger='torchreid.models.registry'):
        names = show_avai_models()
    assert names == list_models()
    assert 'osnet_x1_0' in caplog.text and 'resnet50' in caplog.text


def test_lazy_package_access():
    assert torchreid.models.build_model is build_model


def test_register_model_decorator_and_function(isolated_registry):
    @register_model('tiny_test_net')
    def tiny_test_net(num_classes, loss='softmax', pretrained=True, **kwargs):
        stages = [('conv1', nn.Conv2d(3, 8, 3, padding=1)), ('relu', nn.ReLU())]
        return ReIDModel(num_classes, loss, stages, 8)

    assert 'tiny_test_net' in list_models()
    model = build_model('tiny_test_net', 4, pretrained=False)
    assert model.feature_dim == 8 and model.classifier.out_features == 4
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 8)).shape == (2, 8)

    # The function form; and the decorated function stays callable.
    register_model('tiny_test_net_2', tiny_test_net)
    assert isinstance(build_model('tiny_test_net_2', 3, pretrained=False), ReIDModel)
    assert isinstance(tiny_test_net(3), ReIDModel)

    # A name cannot be taken twice by accident.
    with pytest.raises(KeyError, match='already registered'):
        register_model('tiny_test_net', lambda **kw: None)
    register_model('tiny_test_net', tiny_test_net, override=True)

    with pytest.raises(TypeError):
        register_model('not_callable', 3)


def test_factory_must_return_a_module(isolated_registry):
    register_model('broken_net', lambda num_classes, loss, pretrained, **kw: 'not a module')
    with pytest.raises(TypeError, match='broken_net'):
        build_model('broken_net', 3)


def test_custom_model_without_contract_attributes_warns(isolated_registry):
    register_model('bare_net', lambda num_classes, loss, pretrained, **kw: nn.Linear(3, num_classes))
    with pytest.warns(UserWarning, match='feature_dim'):
        build_model('bare_net', 3)


@pytest.mark.parametrize('name', ['resnet50_fc512', 'osnet_x0_25', 'mobilenetv2_x1_0'])
def test_new_layers_are_children_of_every_model(name):
    model = build_model(name, 10, pretrained=False)
    children = dict(model.named_children())
    # Disabled head parts are nn.Identity children, so one new_layers list fits every model.
    for child in NEW_LAYER_NAMES + ('dropout', 'global_pool'):
        assert child in children


def test_new_layers_are_named_for_staged_lr_and_open_layers():
    model = build_model('resnet50_fc512', 10, pretrained=False, bnneck=True)
    children = dict(model.named_children())
    for name in ('fc', 'bnneck', 'classifier', 'layer4', 'conv1'):
        assert name in children
    assert sum(p.numel() for p in children['fc'].parameters()) > 0
    # backbone parameters keep torchvision's names, so torchvision state dicts match key for key
    assert 'layer1.0.conv1.weight' in model.state_dict()
