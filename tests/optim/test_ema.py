"""ModelEMA: averaged weights worked out by hand, warm-up, copied buffers, state dict round trip."""
import math

import pytest
import torch
import torch.nn as nn

from torchreid.optim import ModelEMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_constant_decay_by_hand():
    model = _net()
    ema = ModelEMA(model, decay=0.9, warmup_updates=0)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    # 0.9 * w0 + 0.1 * (w0 + 1) = w0 + 0.1
    assert torch.allclose(ema.module[0].weight, w0 + 0.1, atol=1e-6)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    # 0.9 * (w0 + 0.1) + 0.1 * (w0 + 2) = w0 + 0.29
    assert torch.allclose(ema.module[0].weight, w0 + 0.29, atol=1e-6)
    assert ema.num_updates == 2
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training


def test_warmup_decay_and_buffers_copied():
    model = _net()
    ema = ModelEMA(model, decay=0.99, warmup_updates=10)
    assert ema.current_decay() == pytest.approx(0.99 * (1 - math.exp(-0.1)))
    model.train()
    model(torch.randn(8, 2) * 5 + 3)  # moves the BN running statistics
    with torch.no_grad():
        model[0].bias.fill_(2.0)
    old_bias = ema.module[0].bias.detach().clone()
    ema.update(model)
    d = 0.99 * (1 - math.exp(-1 / 10))
    assert torch.allclose(ema.module[0].bias, d * old_bias + (1 - d) * 2.0, atol=1e-6)
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)
    assert torch.equal(ema.module[1].running_var, model[1].running_var)
    assert ema.module[1].num_batches_tracked.item() == 1
    for _ in range(200):
        ema.update(model)
    assert ema.current_decay() == pytest.approx(0.99, abs=1e-6)


def test_state_dict_round_trip_and_wrapped_model(tmp_path):
    model = _net()
    ema = ModelEMA(nn.DataParallel(model), decay=0.5, warmup_updates=0)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    ema.update(nn.DataParallel(model))
    path = tmp_path / 'ema.pth'
    torch.save(ema.state_dict(), path)
    restored = ModelEMA(_net(), decay=0.1, warmup_updates=5)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.num_updates == 1 and restored.decay == 0.5 and restored.warmup_updates == 0
    assert torch.equal(restored.module[0].weight, ema.module[0].weight)
    with pytest.raises(KeyError, match='missing'):
        restored.load_state_dict({'module': {}})
    with pytest.raises(ValueError, match='decay must lie'):
        ModelEMA(model, decay=1.0)
