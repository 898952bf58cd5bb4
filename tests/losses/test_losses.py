import math

import pytest
import torch
import torch.nn.functional as F

from torchreid.losses import CrossEntropyLoss, DeepSupervision, TripletLoss


# ---------------------------------------------------------------- cross entropy

def test_cross_entropy_smoothing_matches_hand_values():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([2, 1])
    # Row 1: log-probs are -(logsumexp - x) with logsumexp = 3 + log(1 + e^-1 + e^-2).
    lse = 3 + math.log(1 + math.exp(-1) + math.exp(-2))
    nll = [lse - 1, lse - 2, lse - 3]
    eps, k = 0.1, 3
    row1 = (eps / k) * nll[0] + (eps / k) * nll[1] + (1 - eps + eps / k) * nll[2]
    row2 = math.log(3)  # uniform prediction: smoothing does not matter
    expected = (row1 + row2) / 2
    loss = CrossEntropyLoss(num_classes=3, eps=0.1)(logits, targets)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(0.8031091, abs=1e-6)
    # Same formula as torch's label_smoothing.
    assert loss.item() == pytest.approx(F.cross_entropy(logits, targets, label_smoothing=0.1).item(), abs=1e-6)


def test_cross_entropy_without_smoothing_is_plain_nll():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([2, 1])
    lse = 3 + math.log(1 + math.exp(-1) + math.exp(-2))
    expected = ((lse - 3) + math.log(3)) / 2
    loss = CrossEntropyLoss(num_classes=3, label_smooth=False)(logits, targets)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_rejects_bad_inputs():
    ce = CrossEntropyLoss(num_classes=3)
    with pytest.raises(ValueError, match=r'\[0, 2\]'):
        ce(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='shape'):
        ce(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='eps'):
        CrossEntropyLoss(3, eps=1.5)
    CrossEntropyLoss(3, use_gpu=False)  # deprecated kwarg still accepted


# ---------------------------------------------------------------- triplet

def test_triplet_matches_hand_values():
    # a=(0,0) b=(3,4) share id 0; c=(1,0) d=(0,2) share id 1.
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    m = 0.3
    s5, s13 = math.sqrt(5), math.sqrt(13)
    # hardest positive / hardest negative per anchor:
    # a: ab=5 / ac=1; b: ba=5 / bd=sqrt13; c: cd=sqrt5 / ca=1; d: dc=sqrt5 / da=2
    expected = ((5 - 1 + m) + (5 - s13 + m) + (s5 - 1 + m) + (s5 - 2 + m)) / 4
    loss = TripletLoss(margin=m)(x, y)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_triplet_three_samples_anchor_without_positive_is_excluded():
    x = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    # anchors 0 and 1: ap=1, an=3 and 2; anchor 2 has no positive and is left out (mean over 2, not 3).
    expected = (max(0.0, 1 - 3 + 1.5) + max(0.0, 1 - 2 + 1.5)) / 2
    assert expected == 0.25
    loss = TripletLoss(margin=1.5)(x, y)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()  # the excluded anchor's infinite mining values must not leak NaN into the gradient
    # only anchor 1's triplet is active: d(|x1-x0| - |x1-x2|)/dx = [-1, 2, -1] / 2 anchors
    assert torch.allclose(x.grad, torch.tensor([[-0.5], [1.0], [-0.5]]))


def naive_triplet(x, y, margin, actions=None):
    n = x.size(0)
    terms = []
    for i in range(n):
        ap, an = None, None
        for j in range(n):
            if actions is not None and actions[i] != actions[j]:
                continue
            d = torch.sqrt(torch.clamp(((x[i] - x[j]) ** 2).sum(), min=1e-12))
            if y[i] == y[j] and i != j:
                ap = d if ap is None else torch.maximum(ap, d)
            elif y[i] != y[j]:
                an = d if an is None else torch.minimum(an, d)
        if ap is not None and an is not None:
            terms.append(torch.relu(ap - an + margin))
    return torch.stack(terms).mean() if terms else torch.tensor(0.0)


@pytest.mark.parametrize('action_aware', [False, True])
def test_triplet_vectorised_equals_naive_loop(action_aware):
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        n = 12
        x = torch.randn(n, 8, generator=g)
        y = torch.randint(0, 4, (n,), generator=g)
        actions = torch.randint(0, 3, (n,), generator=g)
        loss = TripletLoss(margin=0.3, action_aware=action_aware)(x, y, actions if action_aware else None)
        ref = naive_triplet(x, y, 0.3, actions if action_aware else None)
        assert loss.item() == pytest.approx(ref.item(), abs=1e-4), trial


def _two_action_batch():
    # action 0: ids 0,0,1 ; action 1: ids 0,1,1 (id 0 in action 1 is another person)
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [5.0, 5.0], [6.0, 5.0], [5.0, 7.0]])
    y = torch.tensor([0, 0, 1, 0, 1, 1])
    a = torch.tensor([0, 0, 0, 1, 1, 1])
    return x, y, a


def test_action_aware_ignores_cross_action_pairs():
    x, y, a = _two_action_batch()
    aware = TripletLoss(margin=0.3, action_aware=True)
    plain = TripletLoss(margin=0.3)
    base = aware(x, y, a)
    # Per-action losses computed separately and averaged over their anchors give the same value.
    per_action = torch.cat([
        TripletLoss(margin=0.3)(x[a == k], y[a == k]).reshape(1) for k in (0, 1)
    ])
    assert base.item() == pytest.approx(per_action.mean().item(), abs=1e-5)  # 2 valid anchors in each action

    # Moving action 1 as a whole (within-action distances unchanged) onto action 0 changes nothing...
    moved = x.clone()
    moved[a == 1] += torch.tensor([-5.0, -5.0])
    assert aware(moved, y, a).item() == pytest.approx(base.item(), abs=1e-5)
    # ...while the plain loss, which mixes actions, does change.
    assert plain(moved, y).item() != pytest.approx(plain(x, y).item(), abs=1e-3)

    # A different-action sample placed exactly on an anchor (a perfect "negative" or "positive") is ignored.
    x2, y2, a2 = (torch.cat([x, x[:1]]), torch.cat([y, torch.tensor([1])]), torch.cat([a, torch.tensor([2])]))
    assert aware(x2, y2, a2).item() == pytest.approx(base.item(), abs=1e-5)


def test_same_pid_in_other_action_is_not_a_positive():
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]], requires_grad=True)
    y = torch.tensor([0, 1, 0, 1])
    a = torch.tensor([0, 0, 1, 1])
    # Without actions, 0/2 and 1/3 are positives (loss > 0); with actions no anchor has a positive.
    assert TripletLoss(margin=0.3)(x, y).item() > 0
    loss = TripletLoss(margin=0.3, action_aware=True)(x, y, a)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_triplet_requires_actions_when_action_aware():
    with pytest.raises(ValueError, match='actions'):
        TripletLoss(action_aware=True)(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match='actions must have shape'):
        TripletLoss(action_aware=True)(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]))


def test_triplet_gradient_flows_to_hardest_pairs_only():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    TripletLoss(margin=0.3)(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- deep supervision

def test_deep_supervision_averages_and_forwards_kwargs():
    ce = CrossEntropyLoss(num_classes=3)
    l1, l2 = torch.randn(4, 3), torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    assert DeepSupervision(ce, (l1, l2), y).item() == pytest.approx(((ce(l1, y) + ce(l2, y)) / 2).item(), abs=1e-6)
    assert DeepSupervision(ce, l1, y).item() == pytest.approx(ce(l1, y).item(), abs=1e-6)
    x, yy, a = _two_action_batch()
    tri = TripletLoss(action_aware=True)
    assert DeepSupervision(tri, [x, x * 2], yy, actions=a).item() == pytest.approx(
        ((tri(x, yy, a) + tri(x * 2, yy, a)) / 2).item(), abs=1e-5)
    with pytest.raises(ValueError, match='empty'):
        DeepSupervision(ce, [], y)
