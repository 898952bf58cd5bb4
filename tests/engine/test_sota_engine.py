"""ImageMetricEngine (weighted losses, learnable scale in the optimizer, margin heads), EMA in the engine, flip
test-time averaging, the feature ensemble, and the action-then-game sampler."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchreid.data.samplers import RandomActionGameSampler, RandomActionSampler, build_train_sampler, game_of
from torchreid.engine.ensemble import FeatureEnsemble
from torchreid.engine.metric import ImageMetricEngine, use_margin_classifier
from torchreid.losses import CosFace, SupConLoss, TripletLoss


class TinyReID(nn.Module):
    """(logits, features) in train mode, features in eval mode."""

    def __init__(self, num_classes=4, dim=6):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 2, dim))
        self.classifier = nn.Linear(dim, num_classes)
        self.feature_dim = dim

    def forward(self, x):
        f = self.backbone(x)
        return (self.classifier(f), f) if self.training else f


class DM:
    num_train_pids = 4


def batch():
    torch.manual_seed(1)
    return {'img': torch.rand(8, 3, 4, 2), 'pid': torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
            'camid': torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])}


def test_metric_engine_sums_the_weighted_losses_and_trains_the_scale():
    model = TinyReID()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    engine = ImageMetricEngine(DM(), model, opt, sched, metric_losses=['infonce', 'triplet'], metric_weights=[1.0, 2.0],
                               metric_options={'infonce': {'temperature': 0.1, 'learnable_scale': True}},
                               weight_x=0.5, device='cpu', tensorboard=False, progress=False)
    data = batch()
    model.train()
    logits, feats = model(data['img'])
    expected = (SupConLoss(0.1)(feats, data['pid'], data['camid']) + 2 * TripletLoss(action_aware=True)(
        feats, data['pid'], data['camid']) + 0.5 * engine.criterion_x(logits, data['pid']))
    assert len(opt.param_groups) == 2 and opt.param_groups[-1]['weight_decay'] == 0.0
    assert len(sched.base_lrs) == 2
    scale_before = float(engine.criteria['infonce'].logit_scale.detach())
    summary = engine.forward_backward(data)
    assert summary['loss'] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert set(summary) >= {'loss_infonce', 'loss_triplet', 'loss_x', 'acc', 'infonce_scale'}
    assert float(engine.criteria['infonce'].logit_scale.detach()) != scale_before
    state = engine._training_state()
    assert 'infonce.logit_scale' in state['criterion_state']


def test_margin_head_replaces_the_classifier_and_gets_its_margin():
    model = use_margin_classifier(TinyReID(), 'cosface', scale=10.0, margin=0.2)
    assert isinstance(model.classifier, CosFace) and model.classifier.scale == 10.0
    engine = ImageMetricEngine(DM(), model, torch.optim.SGD(model.parameters(), lr=0.0), metric_losses=['triplet'],
                               metric_weights=[0.0], weight_x=1.0, device='cpu', tensorboard=False)
    data = batch()
    model.train()
    logits, _ = model(data['img'])
    margin_logits = logits - 10.0 * 0.2 * F.one_hot(data['pid'], 4)
    summary = engine.forward_backward(data)
    assert summary['loss_x'] == pytest.approx(float(engine.criterion_x(margin_logits, data['pid']).detach()), rel=1e-5)
    with pytest.raises(ValueError, match='unknown metric loss'):
        ImageMetricEngine(DM(), TinyReID(), None, metric_losses=['bogus'], device='cpu')


def test_ema_follows_each_optimizer_step_and_evaluation_uses_it():
    model = TinyReID()
    engine = ImageMetricEngine(DM(), model, torch.optim.SGD(model.parameters(), lr=0.5), metric_losses=['triplet'],
                               device='cpu', tensorboard=False)
    engine.use_ema(0.5, warmup_updates=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine.forward_backward(batch())
    after = model.state_dict()
    for key in before:  # one update with decay 0.5: the mean of the initial and the new weights
        assert torch.allclose(engine.ema.module.state_dict()[key], (before[key] + after[key]) / 2)
    with engine.evaluation_weights():
        assert torch.allclose(model.backbone[1].weight, engine.ema.module.backbone[1].weight)
    assert torch.equal(model.state_dict()['backbone.1.weight'], after['backbone.1.weight'])
    assert engine._training_state()['ema']['num_updates'] == 1


def test_flip_averages_the_features_of_the_image_and_its_mirror():
    model = TinyReID().eval()
    engine = ImageMetricEngine(DM(), model, None, metric_losses=['triplet'], device='cpu', tensorboard=False,
                               progress=False)
    data = batch()
    loader = [dict(data)]
    plain, _, _ = engine.extract_features_from_loader(loader)
    flipped, _, _ = engine.extract_features_from_loader(loader, flip=True)
    with torch.no_grad():
        expected = (model(data['img']) + model(data['img'].flip(-1))) / 2
    assert torch.allclose(flipped, expected, atol=1e-6) and not torch.allclose(plain, flipped)


def test_feature_extractor_flip():
    from torchreid.utils import FeatureExtractor

    model = TinyReID().eval()
    x = torch.rand(3, 3, 4, 2)
    ext = FeatureExtractor(model=model, image_size=(4, 2), device='cpu', verbose=False, flip=True)
    with torch.no_grad():
        assert torch.allclose(ext(x), (model(x) + model(x.flip(-1))) / 2, atol=1e-6)


def test_feature_ensemble_normalises_concatenates_and_adapts_inputs():
    a, b = TinyReID(dim=6).eval(), TinyReID(dim=6).eval()
    with torch.no_grad():
        b.backbone[1].weight.mul_(-2)
    x = torch.rand(2, 3, 4, 2)
    ens = FeatureEnsemble([a, b])
    with torch.no_grad():
        out = ens(x)
        assert out.shape == (2, 12) and ens.feature_dim == 12
        assert torch.allclose(out[:, :6], F.normalize(a(x), dim=1))
        assert torch.allclose(out[:, 6:], F.normalize(b(x), dim=1))
        mean = FeatureEnsemble([a, b], mode='mean')(x)
        assert torch.allclose(mean, (F.normalize(a(x), dim=1) + F.normalize(b(x), dim=1)) / 2)
    # a member trained with other statistics gets its own normalisation back: x_in * 0.5 + 0.5 = raw; (raw - 0) / 1
    adapt = FeatureEnsemble([a], input_size=(4, 2), input_normalization={'mean': [0.5] * 3, 'std': [0.5] * 3},
                            member_sizes=[(4, 2)], member_normalizations=[{'mean': [0.0] * 3, 'std': [1.0] * 3}])
    assert torch.allclose(adapt.member_input(x, 0), x * 0.5 + 0.5)
    with pytest.raises(RuntimeError, match='for evaluation'):
        ens.train()


def _records():
    records = []
    for game in range(3):
        for action in range(4):
            camid = game * 4 + action
            for pid in range(4):
                for k in range(2):
                    path = f'/d/train/league/2020/game{game}/{action}/{camid * 100 + pid * 10 + k}.png'
                    records.append((path, camid * 10 + pid, camid, 0))
    return records


def test_action_then_game_sampler_keeps_a_batch_inside_one_game():
    records = _records()
    assert game_of(records[0][0]) == '/d/train/league/2020/game0'
    sampler = build_train_sampler(records, 'RandomActionGameSampler', batch_size=16, num_instances=2,
                                  num_pids_per_action=4, seed=0)
    assert isinstance(sampler, RandomActionGameSampler) and len(sampler.games) == 3
    indices = list(iter(sampler))
    batches = [indices[i:i + 16] for i in range(0, len(indices), 16)]
    assert batches
    # 2 actions of 4 identities per batch; 4 actions per game: every batch lies inside one game
    for b in batches:
        assert len({game_of(records[i][0]) for i in b}) == 1
    plain = RandomActionSampler(records, 16, 2, num_pids_per_action=4, seed=0)
    plain_batches = [list(iter(plain))[i:i + 16] for i in range(0, len(indices), 16)]
    assert any(len({game_of(records[i][0]) for i in b}) > 1 for b in plain_batches)
