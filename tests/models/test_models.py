"""Every registered model: shapes of the train/eval forward, the head's options, init, gradients."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchreid.models import (GeneralizedMeanPooling, ReIDModel, build_model, list_models)
from torchreid.models.resnet_ibn_a import IBN

NUM_CLASSES = 5
BATCH = 2
# Tiny input: 64x32 still leaves a 2x1 map after stride 32 (the resnets), enough to exercise everything.
H, W = 64, 32

# The documented feature dimension of every built-in model (the eval-mode output size).
EXPECTED_FEATURE_DIMS = {
    'resnet18': 512, 'resnet34': 512, 'resnet50': 2048, 'resnet101': 2048, 'resnet152': 2048,
    'resnext50_32x4d': 2048, 'resnet50_fc512': 512, 'resnet50_ibn_a': 2048,
    'mobilenetv2_x1_0': 1280, 'mobilenetv2_x1_4': 1792,
    'shufflenet_v2_x0_5': 1024, 'shufflenet_v2_x1_0': 1024, 'shufflenet_v2_x1_5': 1024, 'shufflenet_v2_x2_0': 2048,
    'densenet121': 1024,
    'osnet_x1_0': 512, 'osnet_x0_75': 512, 'osnet_x0_5': 512, 'osnet_x0_25': 512, 'osnet_ibn_x1_0': 512,
    'osnet_ain_x1_0': 512, 'osnet_ain_x0_75': 512, 'osnet_ain_x0_5': 512, 'osnet_ain_x0_25': 512,
    'resnet50_ibn_b': 2048,
}
BUILTIN = sorted(EXPECTED_FEATURE_DIMS)


@pytest.fixture(scope='module')
def images():
    torch.manual_seed(0)
    return torch.randn(BATCH, 3, H, W)


def _params_without_classifier(model):
    clf = {id(p) for p in model.classifier.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in clf)


def test_every_builtin_model_is_registered_and_documented():
    # A model added to the registry without a documented feature dim (or one that vanished) fails here.
    assert set(BUILTIN) <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize('name', BUILTIN)
def test_forward_shapes(name, images):
    model = build_model(name, NUM_CLASSES, loss='softmax', pretrained=False)
    assert model.feature_dim == EXPECTED_FEATURE_DIMS[name]
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.out_features == NUM_CLASSES
    assert model.classifier.in_features == model.feature_dim
    children = dict(model.named_children())
    assert 'classifier' in children  # what open_layers=['classifier'] / staged lr look up

    with torch.no_grad():
        model.train()
        logits = model(images)
        assert isinstance(logits, torch.Tensor) and logits.shape == (BATCH, NUM_CLASSES)

        model.loss = 'triplet'  # same network, the other train-mode contract (saves a second build)
        out = model(images)
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].shape == (BATCH, NUM_CLASSES) and out[1].shape == (BATCH, model.feature_dim)

        model.eval()
        feats = model(images)
    assert feats.shape == (BATCH, EXPECTED_FEATURE_DIMS[name])
    assert torch.isfinite(feats).all()


def test_triplet_loss_build_returns_tuple(images):
    model = build_model('osnet_x0_25', NUM_CLASSES, loss='triplet', pretrained=False)
    model.train()
    with torch.no_grad():
        logits, feats = model(images)
    assert logits.shape == (BATCH, NUM_CLASSES) and feats.shape == (BATCH, 512)


def test_bnneck_eval_feature_is_bn_output_and_classifier_has_no_bias(images):
    model = build_model('osnet_x0_25', NUM_CLASSES, loss='triplet', pretrained=False, bnneck=True)
    assert isinstance(model.bnneck, nn.BatchNorm1d)
    assert model.classifier.bias is None
    # Non-trivial running statistics, so that the BN output differs from its input at eval.
    with torch.no_grad():
        model.bnneck.running_mean.uniform_(-1, 1)
        model.bnneck.running_var.uniform_(0.5, 2.0)
    model.eval()
    with torch.no_grad():
        pre_bn = model.fc(model.global_pool(model.featuremaps(images)).flatten(1))
        expected = model.bnneck(pre_bn)
        feats = model(images)
    assert torch.allclose(feats, expected, atol=1e-5)
    assert not torch.allclose(feats, pre_bn, atol=1e-3)

    # Train mode: the triplet features are the pre-BN ones, the classifier sees the BN output.
    model.train()
    with torch.no_grad():
        logits, tri_feats = model(images)
        pre_bn_train = model.fc(model.global_pool(model.featuremaps(images)).flatten(1))
    assert torch.allclose(tri_feats, pre_bn_train, atol=1e-5)
    assert logits.shape == (BATCH, NUM_CLASSES)


def test_without_bnneck_classifier_has_bias_and_no_bnneck():
    model = build_model('osnet_x0_25', NUM_CLASSES, pretrained=False)
    assert isinstance(model.bnneck, nn.Identity) and model.classifier.bias is not None


def test_last_stride_one_doubles_the_feature_map(images):
    m2 = build_model('resnet18', NUM_CLASSES, pretrained=False)  # default last_stride=2
    m1 = build_model('resnet18', NUM_CLASSES, pretrained=False, last_stride=1)
    m2.eval(), m1.eval()
    with torch.no_grad():
        f2 = m2.featuremaps(images)
        f1 = m1.featuremaps(images)
        assert m1(images).shape == (BATCH, 512)
    assert f2.shape == (BATCH, 512, H // 32, W // 32)
    assert f1.shape == (BATCH, 512, 2 * (H // 32), 2 * (W // 32))


def test_resnet50_fc512_defaults_to_last_stride_one(images):
    model = build_model('resnet50_fc512', NUM_CLASSES, pretrained=False)
    model.eval()
    with torch.no_grad():
        assert model.featuremaps(images).shape[-2:] == (H // 16, W // 16)
    assert isinstance(model.fc[0], nn.Linear) and model.fc[0].out_features == 512
    assert isinstance(model.fc[1], nn.BatchNorm1d) and isinstance(model.fc[2], nn.ReLU)


def test_bad_last_stride_rejected():
    with pytest.raises(ValueError, match='last_stride'):
        build_model('resnet18', NUM_CLASSES, pretrained=False, last_stride=3)
    with pytest.raises(TypeError, match='last_stride'):  # OSNet has no strided last stage to change
        build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, last_stride=1)


def test_fc_dims_dropout_and_gem_options(images):
    model = build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, fc_dims=[64, 32], dropout=0.5,
                        pooling='gem', gem_p=3.0)
    assert model.feature_dim == 32
    assert isinstance(model.global_pool, GeneralizedMeanPooling)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    model.eval()
    with torch.no_grad():
        a, b = model(images), model(images)
    assert a.shape == (BATCH, 32) and torch.equal(a, b)  # dropout is off at eval

    # Torchreid's name for dropout is accepted too; fc_dims=None removes the fc of OSNet.
    model = build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, dropout_p=0.2, fc_dims=None)
    assert model.dropout.p == 0.2 and isinstance(model.fc, nn.Identity) and model.feature_dim == 128


def test_gem_pooling_values():
    x = torch.rand(2, 3, 4, 5) + 0.1
    assert torch.allclose(GeneralizedMeanPooling(p=1.0)(x), F.adaptive_avg_pool2d(x, 1), atol=1e-6)
    big = GeneralizedMeanPooling(p=50.0)(x)
    assert torch.allclose(big, F.adaptive_max_pool2d(x, 1), rtol=0.1)
    learnable = GeneralizedMeanPooling(p=3.0, learnable=True)
    assert isinstance(learnable.p, nn.Parameter)
    with pytest.raises(ValueError):
        GeneralizedMeanPooling(p=0)


def test_head_option_errors_name_the_problem():
    with pytest.raises(ValueError, match='pooling'):
        build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, pooling='median')
    with pytest.raises(ValueError, match='fc_dims'):
        build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, fc_dims=512)
    with pytest.raises(ValueError, match='dropout'):
        build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, dropout=1.5)
    with pytest.raises(TypeError, match='fc_dim'):
        build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, fc_dim=[512])


def test_init_follows_torchreid():
    model = build_model('osnet_x0_25', NUM_CLASSES, pretrained=False, bnneck=True)
    w = model.classifier.weight
    assert 0.0002 < w.std().item() < 0.003  # N(0, 0.001)
    assert torch.all(model.fc[1].weight == 1) and torch.all(model.fc[1].bias == 0)
    assert torch.all(model.bnneck.weight == 1) and torch.all(model.bnneck.bias == 0)
    assert not model.bnneck.bias.requires_grad
    conv = model.conv1.conv
    # kaiming normal, fan_out: std = sqrt(2 / (out_channels * k * k))
    expected_std = (2.0 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.2


def test_osnet_parameter_counts_match_the_paper():
    full = _params_without_classifier(build_model('osnet_x1_0', 10, pretrained=False))
    quarter = _params_without_classifier(build_model('osnet_x0_25', 10, pretrained=False))
    # The paper reports 2.2M parameters for OSNet x1.0 (classifier excluded) and 0.2M for x0.25.
    assert 2.0e6 < full < 2.4e6
    assert 0.15e6 < quarter < 0.3e6
    assert quarter < full / 5


def test_osnet_block_uses_four_streams_and_a_shared_gate():
    from torchreid.models.osnet import AggregationGate, LiteConv3x3, OSBlock
    block = OSBlock(64, 256)
    assert len(block.streams) == 4
    assert [sum(isinstance(m, LiteConv3x3) for m in s.modules()) for s in block.streams] == [1, 2, 3, 4]
    assert sum(isinstance(m, AggregationGate) for m in block.modules()) == 1
    x = torch.randn(2, 64, 8, 4)
    assert block(x).shape == (2, 256, 8, 4)
    lite = LiteConv3x3(16, 16)
    assert lite.conv2.groups == 16 and lite.conv1.kernel_size == (1, 1)
    with pytest.raises(ValueError, match='num_streams'):
        OSBlock(64, 256, num_streams=27)


def test_osnet_state_dict_uses_torchreid_layer_names():
    # Torchreid's OSNet weight files (ImageNet and ReID) name their tensors like this; with the same names
    # and shapes they load by name instead of being reported as skipped.
    sd = build_model('osnet_x1_0', 10, pretrained=False).state_dict()
    expected = {
        'conv1.conv.weight': (64, 3, 7, 7), 'conv1.bn.running_var': (64,),
        'conv2.0.conv1.conv.weight': (64, 64, 1, 1), 'conv2.0.conv2a.conv1.weight': (64, 64, 1, 1),
        'conv2.0.conv2a.conv2.weight': (64, 1, 3, 3), 'conv2.0.conv2d.3.bn.weight': (64,),
        'conv2.0.gate.fc1.weight': (4, 64, 1, 1), 'conv2.0.gate.fc2.bias': (64,),
        'conv2.0.conv3.conv.weight': (256, 64, 1, 1), 'conv2.0.downsample.conv.weight': (256, 64, 1, 1),
        'conv2.2.0.conv.weight': (256, 256, 1, 1), 'conv3.0.downsample.bn.weight': (384,),
        'conv4.1.conv2c.2.conv2.weight': (128, 1, 3, 3), 'conv5.conv.weight': (512, 512, 1, 1),
        'fc.0.weight': (512, 512), 'fc.1.running_mean': (512,), 'classifier.weight': (10, 512),
    }
    assert {k: tuple(sd[k].shape) for k in expected if k in sd} == expected
    assert not any(k.startswith('conv2.1.downsample') for k in sd)  # no projection when channels match

    ibn = build_model('osnet_ibn_x1_0', 10, pretrained=False).state_dict()
    assert 'conv2.0.IN.weight' in ibn and 'conv2.1.IN.weight' in ibn
    assert not any('.IN.' in k for k in ibn if not k.startswith('conv2.'))
    assert 'conv1.bn.weight' in ibn and 'conv1.bn.running_mean' not in ibn  # the stem's InstanceNorm


def test_instance_norm_variants():
    def count_in(model):
        return sum(isinstance(m, nn.InstanceNorm2d) for m in model.modules())

    assert count_in(build_model('osnet_x1_0', 3, pretrained=False)) == 0
    ibn = build_model('osnet_ibn_x1_0', 3, pretrained=False)
    ain = build_model('osnet_ain_x1_0', 3, pretrained=False)
    assert count_in(ibn) == 1 + 2  # the stem + the 2 blocks of conv2 (as in Torchreid's osnet_ibn_x1_0)
    assert isinstance(ibn.conv1.bn, nn.InstanceNorm2d) and isinstance(ain.conv1.bn, nn.InstanceNorm2d)
    assert count_in(ain) == 1 + 4  # the stem + 4 "IN-in" blocks
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in ibn.conv4.modules())

    res = build_model('resnet50_ibn_a', 3, pretrained=False)
    for layer in ('layer1', 'layer2', 'layer3'):
        for block in getattr(res, layer):
            assert isinstance(block.bn1, IBN)
            assert block.bn1.IN.num_features == block.bn1.BN.num_features == block.conv1.out_channels // 2
    assert not any(isinstance(m, IBN) for m in res.layer4.modules())


@pytest.mark.parametrize('name,loss', [('osnet_x0_25', 'triplet'), ('resnet18', 'softmax')])
def test_gradients_flow(name, loss, images):
    model = build_model(name, NUM_CLASSES, loss=loss, pretrained=False, bnneck=True)
    model.train()
    targets = torch.tensor([0, 3])
    out = model(images)
    if loss == 'triplet':
        logits, feats = out
        total = F.cross_entropy(logits, targets) + feats.pow(2).mean()
    else:
        total = F.cross_entropy(out, targets)
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    first_conv = next(p for n, p in model.named_parameters() if p.dim() == 4)
    assert first_conv.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0


def test_return_featuremaps(images):
    model = build_model('osnet_x0_25', NUM_CLASSES, pretrained=False)
    model.eval()
    with torch.no_grad():
        maps = model(images, return_featuremaps=True)
    assert maps.shape == (BATCH, 128, H // 16, W // 16)


def test_reid_model_refuses_reserved_stage_names():
    with pytest.raises(ValueError, match='classifier'):
        ReIDModel(3, 'softmax', [('classifier', nn.Conv2d(3, 8, 1))], 8)
    with pytest.raises(ValueError, match='loss'):
        ReIDModel(3, 'arcface', [('conv', nn.Conv2d(3, 8, 1))], 8)
