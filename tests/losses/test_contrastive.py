"""SupConLoss / InfoNCE: values worked out by hand on a 4-sample batch of 2-D features.

Features (0,1)... are chosen so that the normalised embeddings are z0=(1,0), z1=(0,1), z2=(1,0), z3=(0,-1),
labels [0, 0, 1, 1]: cosines z0.z1=0, z0.z2=1, z0.z3=0, z1.z2=0, z1.z3=-1, z2.z3=0.
"""
import math

import pytest
import torch

from torchreid.losses import SupConLoss, build_loss

FEATS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, -3.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_supcon_hand_values_temperature_one():
    # anchor 0: positive 1 (cos 0); candidates 1, 2, 3 (cos 0, 1, 0) -> loss log(2 + e)
    # anchor 1: positive 0 (cos 0); candidates 0, 2, 3 (cos 0, 0, -1) -> loss log(2 + 1/e)
    # anchors 2 and 3 mirror anchors 0 and 1.
    expected = (math.log(2 + math.e) + math.log(2 + 1 / math.e)) / 2  # (1.551445 + 0.861994) / 2
    loss = SupConLoss(temperature=1.0)(FEATS, LABELS)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(1.206720, abs=1e-5)


def test_supcon_temperature_scales_the_cosines():
    # temperature 0.5 -> scale 2: log(2 + e^2) and log(2 + e^-2)
    expected = (math.log(2 + math.e ** 2) + math.log(2 + math.e ** -2)) / 2
    assert SupConLoss(temperature=0.5)(FEATS, LABELS).item() == pytest.approx(expected, abs=1e-6)


def test_supcon_action_aware_ignores_pairs_across_actions():
    actions = torch.tensor([0, 0, 0, 1])
    # sample 3 is alone in its action and sample 2's only same-identity sample is in another action: neither
    # anchor has a positive, so both are left out. anchor 0: candidates 1, 2 (cos 0, 1), positive 1 ->
    # log(1 + e); anchor 1: candidates 0, 2 (cos 0, 0), positive 0 -> log 2.
    expected = (math.log(1 + math.e) + math.log(2)) / 2
    loss = SupConLoss(temperature=1.0, action_aware=True)(FEATS, LABELS, actions=actions)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match='needs actions'):
        SupConLoss(action_aware=True)(FEATS, LABELS)


def test_supcon_label_smoothing():
    actions = torch.tensor([0, 0, 0, 1])
    # eps 0.1 over 2 candidates: targets 0.95 (positive) / 0.05 (the other one).
    # anchor 0: log(1 + e) - (0.95 * 0 + 0.05 * 1); anchor 1: log 2 - 0.
    expected = (math.log(1 + math.e) - 0.05 + math.log(2)) / 2
    loss = SupConLoss(temperature=1.0, label_smoothing=0.1)(FEATS, LABELS, actions=actions)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_learnable_scale_starts_at_inverse_temperature_is_clipped_and_trained():
    loss_fn = SupConLoss(temperature=0.5, learnable_scale=True, max_scale=100.0)
    assert loss_fn.scale().item() == pytest.approx(2.0)
    expected = (math.log(2 + math.e ** 2) + math.log(2 + math.e ** -2)) / 2
    loss = loss_fn(FEATS, LABELS)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.abs().item() > 0
    with torch.no_grad():
        loss_fn.logit_scale.fill_(math.log(1000.0))
    assert loss_fn.scale().item() == pytest.approx(100.0)
    assert [name for name, _ in loss_fn.named_parameters()] == ['logit_scale']


def test_no_positive_gives_attached_zero_and_finite_gradients():
    feats = FEATS.clone().requires_grad_(True)
    loss = SupConLoss()(feats, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(feats.grad).all()
    feats.grad = None
    # one sample alone in its action (no candidate at all) must not produce NaN gradients
    SupConLoss()(feats, LABELS, actions=torch.tensor([0, 0, 0, 1])).backward()
    assert torch.isfinite(feats.grad).all()


def test_built_by_name_and_checks_shapes():
    assert isinstance(build_loss('infonce', temperature=0.15), SupConLoss)
    assert build_loss('supcon').temperature == 0.07
    with pytest.raises(ValueError, match='targets must have shape'):
        SupConLoss()(FEATS, LABELS[:3])
    with pytest.raises(ValueError, match='temperature must be > 0'):
        SupConLoss(temperature=0)
