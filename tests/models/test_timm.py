"""timm backbones behind build_model('timm/<name>'): shapes, pooling, listing, weights (local, HF cache, offline,
dead network), checkpoint round trip. Tiny models at 64x32 (vit_tiny_patch16_224 with img_size, resnet10t)."""
import os
import socket
import time
import warnings

import pytest
import torch

pytest.importorskip('timm')

from torchreid.models import (PretrainedWeightsError, PretrainedWeightsWarning, TimmReIDModel, UnknownModelError,
                              build_model, build_model_from_checkpoint, describe_model, is_model, list_models)

VIT = 'timm/vit_tiny_patch16_224'
CNN = 'timm/resnet10t'
SIZE = (64, 32)


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    """No weights anywhere: an empty $TORCHREID_WEIGHTS_DIR, torch hub dir and Hugging Face cache."""
    import huggingface_hub.constants as hf_constants

    weights_dir = tmp_path / 'weights'
    (weights_dir / 'timm').mkdir(parents=True)
    monkeypatch.setenv('TORCHREID_WEIGHTS_DIR', str(weights_dir))
    monkeypatch.delenv('TORCHREID_OFFLINE', raising=False)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    return weights_dir


@pytest.fixture
def dead_network(monkeypatch):
    """Every connection attempt fails at once (as on a machine without network)."""
    def refuse(*args, **kwargs):
        raise OSError('network disabled by the test')

    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    monkeypatch.setattr(socket.socket, 'connect', refuse)


def _vit_state_dict():
    import timm

    torch.manual_seed(0)
    return timm.create_model('vit_tiny_patch16_224', pretrained=False).state_dict()


def test_vit_non_square_train_and_eval_shapes():
    model = build_model(VIT, num_classes=7, loss='triplet', pretrained=False, img_size=SIZE, bnneck=True)
    assert isinstance(model, TimmReIDModel)
    assert model.feature_dim == 192
    assert model.default_input_size == SIZE
    assert model.default_normalization == {'mean': [0.5, 0.5, 0.5], 'std': [0.5, 0.5, 0.5]}
    x = torch.randn(2, 3, *SIZE)
    model.train()
    logits, feats = model(x)
    assert logits.shape == (2, 7) and feats.shape == (2, 192)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 192)
    # the eval feature is the BNNeck of timm's pooled output (the CLS token after the final norm)
    with torch.no_grad():
        tokens = model.backbone.forward_features(x)
        expected = model.bnneck(tokens[:, 0])
    assert torch.allclose(out, expected, atol=1e-6)


def test_cnn_gem_pooling_and_vit_refuses_it():
    cnn = build_model(CNN, num_classes=3, pretrained=False, pooling='gem', fc_dims=[16])
    cnn.eval()
    assert cnn(torch.randn(2, 3, *SIZE)).shape == (2, 16)
    assert cnn.default_normalization['mean'] == pytest.approx([0.485, 0.456, 0.406])
    vit = build_model(VIT, num_classes=3, pretrained=False, pooling='gem', img_size=SIZE).eval()
    with pytest.raises(ValueError, match="pooling='gem' needs a CNN feature map"):
        vit(torch.randn(1, 3, *SIZE))


def test_normalization_known_before_building():
    from torchreid.models.timm_backbone import timm_normalization

    clip = timm_normalization('timm/vit_base_patch16_clip_224.openai')
    assert clip['mean'] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert clip['std'] == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    assert timm_normalization('timm/resnet10t') == build_model(CNN, 2, pretrained=False).default_normalization
    assert timm_normalization('osnet_x1_0') is None


def test_grad_checkpointing_keyword():
    model = build_model(VIT, num_classes=3, pretrained=False, img_size=SIZE, grad_checkpointing=True)
    assert model.backbone.grad_checkpointing is True
    model.train()
    model(torch.randn(2, 3, *SIZE)).sum().backward()
    assert model.backbone.blocks[0].attn.qkv.weight.grad is not None


def test_names_listing_and_unknown_name():
    default = list_models()
    assert not any(n.startswith('timm/') for n in default)
    assert 'osnet_x1_0' in default
    assert 'timm/resnet10t' in list_models('timm/resnet10*')
    assert 'timm/vit_base_patch16_clip_224.openai' in list_models('timm/vit_base_patch16_clip_224.*')
    assert len(list_models(include_timm=True)) > len(default) + 1000
    assert list_models('osnet_x1*') == ['osnet_x1_0']
    assert is_model(CNN) and is_model('osnet_x1_0') and not is_model('timm/no_such_net')
    with pytest.raises(UnknownModelError,
                       match=r"timm has no model 'vit_tiny_patch16_2244'.*timm/vit_tiny_patch16_224"):
        build_model('timm/vit_tiny_patch16_2244', num_classes=2, pretrained=False)
    with pytest.raises(TypeError, match='unexpected keyword'):
        build_model(CNN, num_classes=2, pretrained=False, img_sise=SIZE)


def test_checkpoint_round_trip(tmp_path):
    model = build_model(VIT, num_classes=5, loss='triplet', pretrained=False, img_size=SIZE, bnneck=True,
                        fc_dims=[32])
    spec = describe_model(model)
    assert spec == {'name': VIT, 'num_classes': 5, 'loss': 'triplet',
                    'kwargs': {'img_size': SIZE, 'bnneck': True, 'fc_dims': [32]}}
    path = tmp_path / 'model.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'model_spec': spec}, path)
    rebuilt = build_model_from_checkpoint(str(path), device='cpu')
    x = torch.randn(2, 3, *SIZE)
    model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_local_file_loads_strictly_with_resampled_position_embedding(isolated_weights):
    sd = _vit_state_dict()
    torch.save(sd, isolated_weights / 'timm' / 'vit_tiny_patch16_224_imagenet.pth')
    with warnings.catch_warnings():
        warnings.simplefilter('error', PretrainedWeightsWarning)
        model = build_model(VIT, num_classes=2, pretrained=True, img_size=SIZE)
    assert torch.equal(model.backbone.blocks[1].mlp.fc1.weight, sd['blocks.1.mlp.fc1.weight'])
    assert torch.equal(model.backbone.cls_token, sd['cls_token'])
    assert model.backbone.pos_embed.shape == (1, 1 + 4 * 2, 192)  # 224x224 grid resampled to 4x2 patches


def test_safetensors_file_and_partial_file(isolated_weights):
    from safetensors.torch import save_file

    sd = _vit_state_dict()
    save_file(sd, str(isolated_weights / 'timm' / 'vit_tiny_patch16_224_imagenet.safetensors'))
    model = build_model(VIT, num_classes=2, pretrained=True)
    assert torch.equal(model.backbone.patch_embed.proj.weight, sd['patch_embed.proj.weight'])

    del sd['blocks.0.attn.qkv.weight']
    partial = isolated_weights / 'partial.pth'
    torch.save(sd, partial)
    with pytest.warns(PretrainedWeightsWarning, match='does not load strictly.*blocks.0.attn.qkv.weight'):
        model = build_model(VIT, num_classes=2, pretrained=True, pretrained_path=str(partial))
    assert not torch.equal(model.backbone.blocks[1].mlp.fc1.weight, sd['blocks.1.mlp.fc1.weight'])
    with pytest.raises(PretrainedWeightsError, match='does not load strictly'):
        build_model(VIT, num_classes=2, pretrained=True, pretrained_path=str(partial), pretrained_strict=True)


def test_offline_without_weights_warns_fast(isolated_weights, dead_network, monkeypatch):
    monkeypatch.setenv('TORCHREID_OFFLINE', '1')
    start = time.perf_counter()
    with pytest.warns(PretrainedWeightsWarning, match='TORCHREID_OFFLINE is set.*timm/resnet10t_imagenet.pth'):
        model = build_model(CNN, num_classes=2, pretrained=True)
    assert time.perf_counter() - start < 10
    assert isinstance(model, TimmReIDModel)
    with pytest.raises(PretrainedWeightsError):
        build_model(CNN, num_classes=2, pretrained=True, pretrained_strict=True)


def test_dead_network_warns_fast_without_offline_flag(isolated_weights, dead_network):
    start = time.perf_counter()
    with pytest.warns(PretrainedWeightsWarning, match='Hugging Face hub timm/resnet10t'):
        build_model(CNN, num_classes=2, pretrained=True)
    assert time.perf_counter() - start < 10  # no retry loop on a dead network


def test_weights_read_from_the_hugging_face_cache_offline(isolated_weights, dead_network, monkeypatch, tmp_path):
    import timm
    from huggingface_hub.constants import HF_HUB_CACHE
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    hub_id = get_pretrained_cfg('resnet10t').hf_hub_id  # 'timm/resnet10t.c3_in1k'
    commit = '0' * 40
    repo = os.path.join(HF_HUB_CACHE, 'models--' + hub_id.replace('/', '--'))
    os.makedirs(os.path.join(repo, 'refs'))
    os.makedirs(os.path.join(repo, 'snapshots', commit))
    with open(os.path.join(repo, 'refs', 'main'), 'w') as f:
        f.write(commit)
    torch.manual_seed(1)
    sd = timm.create_model('resnet10t', pretrained=False).state_dict()
    save_file(sd, os.path.join(repo, 'snapshots', commit, 'model.safetensors'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with warnings.catch_warnings():
        warnings.simplefilter('error', PretrainedWeightsWarning)
        model = build_model(CNN, num_classes=2, pretrained=True)
    assert torch.equal(model.backbone.layer4[0].conv1.weight, sd['layer4.0.conv1.weight'])
    assert torch.equal(model.backbone.bn1.running_var, sd['bn1.running_var'])
