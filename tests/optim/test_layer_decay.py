"""Layer-wise lr decay and weight-decay exemptions through build_optimizer (ViT via timm, ReID CNN stages)."""
import pytest
import torch
import torch.nn as nn

from torchreid.optim import build_lr_scheduler, build_optimizer, layer_ids


def _group_of(opt, param):
    return next(g for g in opt.param_groups if any(p is param for p in g['params']))


@pytest.fixture(scope='module')
def vit():
    pytest.importorskip('timm')
    from torchreid.models import build_model

    # vit_tiny: patch embedding + 12 blocks + final norm; the ReID head on top
    return build_model('timm/vit_tiny_patch16_224', num_classes=4, pretrained=False, img_size=(32, 16), bnneck=True)


def test_vit_layer_decay_per_block(vit):
    ids, depth = layer_ids(vit)
    assert depth == 14  # stem (patch embed, cls token, pos embed) 0, blocks 1..12, final norm + head 13
    assert ids['backbone.cls_token'] == 0 and ids['backbone.patch_embed.proj.weight'] == 0
    assert ids['backbone.blocks.0.attn.qkv.weight'] == 1 and ids['backbone.blocks.11.mlp.fc2.weight'] == 12
    assert ids['classifier.weight'] == 13 and ids['bnneck.weight'] == 13

    opt = build_optimizer(vit, optim='adamw', lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    assert isinstance(opt, torch.optim.AdamW)
    g = _group_of(opt, vit.classifier.weight)
    assert g['lr'] == pytest.approx(1e-3) and g['weight_decay'] == 0.05
    g = _group_of(opt, vit.backbone.blocks[11].attn.qkv.weight)
    assert g['lr'] == pytest.approx(1e-3 * 0.5) and g['weight_decay'] == 0.05
    g = _group_of(opt, vit.backbone.blocks[0].attn.qkv.weight)
    assert g['lr'] == pytest.approx(1e-3 * 0.5 ** 12)
    g = _group_of(opt, vit.backbone.patch_embed.proj.weight)
    assert g['lr'] == pytest.approx(1e-3 * 0.5 ** 13) and g['weight_decay'] == 0.05
    # no weight decay: position embedding and class token (timm's no_weight_decay), norms, biases
    for param in (vit.backbone.pos_embed, vit.backbone.cls_token, vit.backbone.blocks[3].norm1.weight,
                  vit.backbone.blocks[3].attn.qkv.bias, vit.bnneck.weight):
        assert _group_of(opt, param)['weight_decay'] == 0.0
    # every parameter exactly once, frozen ones included (bnneck.bias)
    placed = [p for g in opt.param_groups for p in g['params']]
    assert len(placed) == len(list(vit.parameters())) == len({id(p) for p in placed})


def test_scheduler_keeps_the_per_layer_ratio(vit):
    opt = build_optimizer(vit, optim='adamw', lr=1e-3, layer_decay=0.5)
    sched = build_lr_scheduler(opt, lr_scheduler='cosine', max_epoch=4)
    opt.step()
    sched.step()
    head = _group_of(opt, vit.classifier.weight)['lr']
    block = _group_of(opt, vit.backbone.blocks[11].attn.qkv.weight)['lr']
    assert head < 1e-3 and block == pytest.approx(head * 0.5)


def test_cnn_stages_and_plain_modules():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3)
            self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
            self.classifier = nn.Linear(4, 2)

    model = Tiny()
    ids, depth = layer_ids(model)
    assert (ids['conv1.weight'], ids['layer1.0.weight'], ids['classifier.weight'], depth) == (0, 1, 2, 3)
    opt = build_optimizer(model, optim='sgd', lr=0.1, weight_decay=1e-4, layer_decay=0.1)
    assert _group_of(opt, model.conv1.weight)['lr'] == pytest.approx(0.001)
    assert _group_of(opt, model.layer1[0].weight)['lr'] == pytest.approx(0.01)
    assert _group_of(opt, model.classifier.weight)['lr'] == pytest.approx(0.1)
    assert _group_of(opt, model.layer1[1].weight)['weight_decay'] == 0.0


def test_no_decay_norm_bias_alone_and_defaults_unchanged():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    plain = build_optimizer(model, optim='adamw', lr=0.01, weight_decay=0.1)
    assert len(plain.param_groups) == 1 and plain.param_groups[0]['weight_decay'] == 0.1
    opt = build_optimizer(model, optim='adamw', lr=0.01, weight_decay=0.1, no_decay_norm_bias=True)
    assert _group_of(opt, model[0].weight)['weight_decay'] == 0.1
    assert _group_of(opt, model[0].bias)['weight_decay'] == 0.0
    assert _group_of(opt, model[1].weight)['weight_decay'] == 0.0
    assert all(g['lr'] == 0.01 for g in opt.param_groups)
    staged = build_optimizer(model, lr=0.01, weight_decay=0.1, staged_lr=True, new_layers=['2'],
                             base_lr_mult=0.1, no_decay_norm_bias=True)
    assert _group_of(staged, model[2].bias)['weight_decay'] == 0.0
    assert _group_of(staged, model[0].weight)['lr'] == pytest.approx(0.001)
    assert _group_of(staged, model[0].weight)['weight_decay'] == 0.1


def test_layer_decay_errors():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='layer_decay must lie in'):
        build_optimizer(model, layer_decay=1.5)
    with pytest.raises(ValueError, match='use one of them'):
        build_optimizer(model, layer_decay=0.5, staged_lr=True, new_layers=['x'])
    with pytest.raises(TypeError, match='layer_decay needs an nn.Module'):
        build_optimizer(list(model.parameters()), layer_decay=0.5)
