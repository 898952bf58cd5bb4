"""Centroid, circle and margin-softmax losses, the shared pair masks and build_loss: values worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from torchreid.losses import (ArcFace, CentroidLoss, CircleLoss, CosFace, CrossEntropyLoss, TripletLoss, build_loss,
                              list_losses, pair_masks, register_loss)


def test_pair_masks_by_hand():
    targets = torch.tensor([0, 0, 1, 0])
    actions = torch.tensor([0, 0, 0, 1])
    pos, neg = pair_masks(targets)
    assert pos.tolist() == [[False, True, False, True], [True, False, False, True],
                            [False, False, False, False], [True, True, False, False]]
    assert neg.tolist() == [[False, False, True, False], [False, False, True, False],
                            [True, True, False, True], [False, False, True, False]]
    pos, neg = pair_masks(targets, actions)
    assert pos.tolist() == [[False, True, False, False], [True, False, False, False],
                            [False, False, False, False], [False, False, False, False]]
    assert neg.tolist() == [[False, False, True, False], [False, False, True, False],
                            [True, True, False, False], [False, False, False, False]]


# ------------------------------------------------------------------------------------------- centroid
# x0=(0,0), x1=(2,0) identity 0; x2=(0,4), x3=(0,6) identity 1: centroids (1,0) and (0,5).
CX = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
CY = torch.tensor([0, 0, 1, 1])


def test_centroid_loss_by_hand():
    # every anchor: -||(1,0) - (0,5)|| = -sqrt(26)
    assert CentroidLoss()(CX, CY).item() == pytest.approx(-math.sqrt(26), abs=1e-5)


def test_triplet_centroid_loss_by_hand():
    # margin 5: anchor 0: 1 - 5 + 5 = 1; anchor 1: 1 - sqrt(29) + 5; anchor 2: 1 - sqrt(17) + 5;
    # anchor 3: 1 - sqrt(37) + 5 < 0 -> 0
    expected = (1 + (6 - math.sqrt(29)) + (6 - math.sqrt(17)) + 0) / 4
    loss = CentroidLoss(mode='triplet_centroid', margin=5.0)(CX, CY)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_centroid_loss_action_aware():
    # x4=(100,100) has identity 0 but lives in action 1 with x5=(50,0): it joins neither centroid of action 0.
    x = torch.cat([CX, torch.tensor([[100.0, 100.0], [50.0, 0.0]])])
    y = torch.tensor([0, 0, 1, 1, 0, 2])
    actions = torch.tensor([0, 0, 0, 0, 1, 1])
    expected = -(4 * math.sqrt(26) + 2 * math.sqrt(50 ** 2 + 100 ** 2)) / 6
    assert CentroidLoss(action_aware=True)(x, y, actions=actions).item() == pytest.approx(expected, rel=1e-6)
    assert CentroidLoss()(x, y).item() != pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match='mode must be one of'):
        CentroidLoss(mode='centre')


# --------------------------------------------------------------------------------------------- circle
def test_circle_loss_by_hand():
    # z0=(1,0), z1=(0,1) identity 0, z2=(-1,0) identity 1; m=0.25, gamma=2.
    # anchor 0: s_p=0 -> a_p=1.25, -2*1.25*(0-0.75)=1.875; s_n=-1 -> a_n=relu(-0.75)=0 -> 0: softplus(1.875)
    # anchor 1: s_p=0 -> 1.875; s_n=0 -> a_n=0.25, 2*0.25*(0-0.25)=-0.125: softplus(1.75)
    # anchor 2: no positive, left out
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = (softplus(1.875) + softplus(1.75)) / 2
    assert CircleLoss(margin=0.25, gamma=2.0)(x, y).item() == pytest.approx(expected, abs=1e-6)
    # action-aware: z2 moved to another action leaves anchors 0 and 1 without a negative -> attached zero
    xg = x.clone().requires_grad_(True)
    loss = CircleLoss(margin=0.25, gamma=2.0)(xg, y, actions=torch.tensor([0, 0, 1]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(xg.grad).all()


# ------------------------------------------------------------------------------------- cosface / arcface
def _head(cls, **kw):
    head = cls(2, 2, **kw)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # normalised: (1,0), (0,1)
    return head


def test_cosface_by_hand():
    head = _head(CosFace, scale=10.0, margin=0.2)
    feats = torch.tensor([[3.0, 4.0]])  # normalised (0.6, 0.8): cosines 0.6 and 0.8
    assert head(feats).tolist()[0] == pytest.approx([6.0, 8.0], abs=1e-5)
    logits = head(feats, torch.tensor([0]))
    assert logits.tolist()[0] == pytest.approx([4.0, 8.0], abs=1e-5)
    # used as a model's classifier: the margin is added to its logits afterwards
    assert torch.allclose(head.apply_margin(head(feats), torch.tensor([0])), logits)
    expected_ce = math.log(math.exp(4) + math.exp(8)) - 4
    assert F.cross_entropy(logits, torch.tensor([0])).item() == pytest.approx(expected_ce, abs=1e-5)


def test_arcface_by_hand():
    head = _head(ArcFace, scale=10.0, margin=0.5)
    feats = torch.tensor([[3.0, 4.0], [-1.0, 0.0]])
    logits = head(feats, torch.tensor([0, 0]))
    # row 0: cos(theta + 0.5) = 0.6 cos 0.5 - 0.8 sin 0.5
    row0 = 10 * (0.6 * math.cos(0.5) - 0.8 * math.sin(0.5))
    assert logits[0].tolist() == pytest.approx([row0, 8.0], abs=1e-4)
    # row 1: theta = pi, theta + m would pass pi: cos(theta) - m sin(m) = -1 - 0.5 sin 0.5
    assert logits[1, 0].item() == pytest.approx(10 * (-1 - 0.5 * math.sin(0.5)), abs=1e-4)
    assert logits[1, 1].item() == pytest.approx(0.0, abs=1e-5)
    assert torch.allclose(head.apply_margin(head(feats), torch.tensor([0, 0])), logits)
    with pytest.raises(ValueError, match='targets must have shape'):
        head.apply_margin(head(feats), torch.tensor([0]))


# ------------------------------------------------------------------------------------------- registry
def test_build_loss_by_name(monkeypatch):
    import torchreid.losses as losses_pkg

    monkeypatch.setattr(losses_pkg, '_LOSSES', dict(losses_pkg._LOSSES))  # the registration below stays local
    assert list_losses() == ['arcface', 'centroid', 'circle', 'cosface', 'cross_entropy', 'infonce', 'supcon',
                             'triplet']
    assert isinstance(build_loss('triplet', margin=0.5, action_aware=True), TripletLoss)
    assert isinstance(build_loss('cross_entropy', num_classes=3), CrossEntropyLoss)
    assert build_loss('centroid', mode='triplet_centroid').mode == 'triplet_centroid'
    assert build_loss('circle', gamma=64).gamma == 64
    assert build_loss('arcface', in_features=8, num_classes=3).weight.shape == (3, 8)
    with pytest.raises(ValueError, match="unknown loss 'suppcon'.*supcon"):
        build_loss('suppcon')
    with pytest.raises(TypeError, match="build_loss\\('circle'\\)"):
        build_loss('circle', temperature=0.1)
    register_loss('test_only_loss', CircleLoss)
    assert isinstance(build_loss('test_only_loss'), CircleLoss)
    with pytest.raises(KeyError):
        register_loss('test_only_loss', TripletLoss)
