"""Engine training: loss goes down, resume replays exactly, fixbase, AMP, channels-last, clipping, best model."""
import copy
import glob
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch

from engine_helpers import make_datamanager, tiny_model
from torchreid.engine import Engine, ImageSoftmaxEngine, ImageTripletEngine
from torchreid.utils import load_checkpoint, set_random_seed


def _first_batch(dm):
    set_random_seed(0)
    return next(iter(dm.train_loader))


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _first_vs_last(history, key='loss', n=3):
    values = [h[key] for h in history]
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


def test_softmax_training_lowers_loss(dm_small, tmp_path):
    set_random_seed(0)
    model = tiny_model(dm_small.num_train_pids)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = ImageSoftmaxEngine(dm_small, model, optimizer, device='cpu', progress=False, tensorboard=False)
    results = engine.run(save_dir=str(tmp_path), max_epoch=12, print_freq=100, save_freq=None)
    assert [h['epoch'] for h in engine.history] == list(range(1, 13))
    first, last = _first_vs_last(engine.history)
    assert last < first - 0.1, (first, last)
    assert results['soccernetv3']['mAP'] is not None
    assert engine.rank1 == results['soccernetv3']['rank1']


def test_triplet_action_aware_training_lowers_loss(dm_small, tmp_path, monkeypatch):
    set_random_seed(0)
    model = tiny_model(dm_small.num_train_pids, loss='triplet')
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = ImageTripletEngine(dm_small, model, optimizer, margin=0.3, weight_t=1, weight_x=1, device='cpu',
                                action_aware=True, progress=False, tensorboard=False)
    # The action-aware triplet must receive the batch's actions (camid).
    seen = []
    real_forward = engine.criterion_t.forward

    def spy(inputs, targets, actions=None):
        seen.append(actions)
        return real_forward(inputs, targets, actions=actions)

    monkeypatch.setattr(engine.criterion_t, 'forward', spy)
    engine.run(save_dir=str(tmp_path), max_epoch=12, print_freq=100, save_freq=None)
    assert seen and all(a is not None for a in seen)
    assert {'loss_t', 'loss_x', 'loss', 'acc'} <= set(engine.history[0])
    first, last = _first_vs_last(engine.history)
    assert last < first - 0.1, (first, last)


def _triplet_engine(tiny_root, seed=0):
    dm = make_datamanager(tiny_root, targets=['soccernetv3'], train_sampler='RandomIdentitySampler',
                          num_instances=4)
    set_random_seed(seed)
    model = tiny_model(dm.num_train_pids, loss='triplet', seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return ImageTripletEngine(dm, model, optimizer, scheduler=scheduler, device='cpu', progress=False,
                              tensorboard=False)


def test_interrupted_and_resumed_run_matches_uninterrupted(tiny_root, tmp_path):
    # Uninterrupted: 3 epochs, with evaluation after every epoch (it must not disturb the randomness).
    set_random_seed(7)
    full = _triplet_engine(tiny_root)
    full.run(save_dir=str(tmp_path / 'full'), max_epoch=3, eval_freq=1, print_freq=100)

    # Interrupted after epoch 2, then a new process-like start (new data manager, model, optimizer).
    set_random_seed(7)
    first = _triplet_engine(tiny_root)
    first.run(save_dir=str(tmp_path / 'part'), max_epoch=2, print_freq=100)
    ckpt = str(tmp_path / 'part' / 'model' / 'model.pth.tar-2')
    assert os.path.isfile(ckpt)
    # Saved every epoch by default (save_freq=1).
    assert os.path.isfile(str(tmp_path / 'part' / 'model' / 'model.pth.tar-1'))

    set_random_seed(12345)  # a different seed: everything must come from the checkpoint
    resumed = _triplet_engine(tiny_root, seed=3)
    resumed.run(save_dir=str(tmp_path / 'part'), max_epoch=3, resume=ckpt, print_freq=100)

    assert [h['epoch'] for h in resumed.history] == [3]
    assert resumed.history[0]['loss'] == pytest.approx(full.history[-1]['loss'], abs=0)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.get_current_lr() == full.get_current_lr()
    assert resumed.best_metric is not None


def test_fixbase_trains_only_open_layers(dm_valid, tmp_path):
    set_random_seed(0)
    model = tiny_model(dm_valid.num_train_pids)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', progress=False, tensorboard=False)
    before = _params(model)
    engine.run(save_dir=str(tmp_path), max_epoch=1, fixbase_epoch=1, open_layers=['classifier'], print_freq=100)
    after = _params(model)
    for k in before:
        if k.startswith('backbone.'):
            assert torch.equal(before[k], after[k]), f'{k} changed during fixbase (BN stats included)'
    assert not torch.equal(before['classifier.weight'], after['classifier.weight'])
    # After the fixbase epochs every layer trains again.
    engine.run(save_dir=str(tmp_path), max_epoch=2, start_epoch=1, fixbase_epoch=1, open_layers=['classifier'],
               print_freq=100)
    final = _params(model)
    assert not torch.equal(after['backbone.0.weight'], final['backbone.0.weight'])
    assert all(p.requires_grad for p in model.parameters())


def test_parameters_frozen_by_the_model_stay_frozen(dm_valid, tmp_path):
    # A model may freeze parameters itself (the BNNeck bias): neither training nor the end of the fixbase
    # phase may open them.
    set_random_seed(0)
    model = tiny_model(dm_valid.num_train_pids)
    model.classifier.bias.requires_grad_(False)
    frozen = model.classifier.bias.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', progress=False, tensorboard=False)
    engine.run(save_dir=str(tmp_path), max_epoch=2, fixbase_epoch=1, open_layers=['classifier'], print_freq=100)
    assert not model.classifier.bias.requires_grad
    assert torch.equal(model.classifier.bias, frozen)
    assert model.classifier.weight.requires_grad and model.backbone[0].weight.requires_grad


def test_bf16_autocast_on_cpu_runs_one_step(dm_valid):
    batch = _first_batch(dm_valid)
    model = tiny_model(dm_valid.num_train_pids)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    engine = ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', mixed_precision='bf16', progress=False,
                                tensorboard=False)
    before = _params(model)
    with engine.autocast():
        assert model(batch['img']).dtype == torch.bfloat16
    engine.set_model_mode('train')
    summary = engine.forward_backward(batch)
    assert torch.isfinite(torch.tensor(summary['loss']))
    assert not torch.equal(before['backbone.0.weight'], model.backbone[0].weight.detach())
    assert model.backbone[0].weight.dtype == torch.float32  # master weights stay fp32
    assert engine.scaler is None  # no gradient scaler for bf16 / on CPU
    feats, _, _ = engine.extract_features_from_loader(dm_valid.test_loader['soccernetv3']['query'])
    assert feats.dtype == torch.float32


def test_channels_last_runs_and_extracts_the_same_features(dm_valid):
    batch = _first_batch(dm_valid)
    model = tiny_model(dm_valid.num_train_pids)
    reference = copy.deepcopy(model)
    ref_engine = ImageSoftmaxEngine(dm_valid, reference, torch.optim.SGD(reference.parameters(), lr=0.1),
                                    device='cpu', progress=False, tensorboard=False)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.SGD(model.parameters(), lr=0.1), device='cpu',
                                channels_last=True, progress=False, tensorboard=False)
    assert model.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)
    loader = dm_valid.test_loader['soccernetv3']['query']
    torch.testing.assert_close(engine.extract_features_from_loader(loader)[0],
                               ref_engine.extract_features_from_loader(loader)[0],
                               atol=1e-5, rtol=1e-5)
    engine.set_model_mode('train')
    ref_engine.set_model_mode('train')
    a = engine.forward_backward(batch)['loss']
    b = ref_engine.forward_backward(batch)['loss']
    assert a == pytest.approx(b, rel=1e-5)


def test_grad_clip_bounds_the_update(dm_valid):
    batch = _first_batch(dm_valid)
    model = tiny_model(dm_valid.num_train_pids)
    max_norm = 1e-3
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # plain SGD: update = -grad
    engine = ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', grad_clip=max_norm, progress=False,
                                tensorboard=False)
    before = [p.detach().clone() for p in model.parameters()]
    engine.set_model_mode('train')
    engine.forward_backward(batch)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert engine.last_grad_norm > 10 * max_norm  # the raw gradient was much larger ...
    assert step <= max_norm * (1 + 1e-4)  # ... and the applied update is clipped
    assert step >= max_norm * 0.99


def _fake_results(value):
    # Challenge first (no labels): the declared metric comes from the first target WITH labels.
    return OrderedDict([
        ('soccernetv3_challenge', {'mAP': None, 'rank1': None, 'mINP': None, 'eval_metric': 'soccernetv3',
                                   'hidden_labels': True}),
        ('soccernetv3', {'mAP': value, 'rank1': 1 - value, 'mINP': value / 2, 'eval_metric': 'soccernetv3',
                         'hidden_labels': False}),
    ])


def scripted_test(engine, values, calls=None):
    """A stand-in for ``engine.test`` giving ``_fake_results`` of the next value (Torchreid's contract: rank-1
    returned, every target's results in ``last_test_results``); ``calls`` collects ``(epoch, final)``."""
    values = iter(values)

    def fake_test(options=None, *, epoch=None, final=True, **kw):
        if calls is not None:
            calls.append((epoch, final))
        engine.last_test_results = _fake_results(next(values))
        return engine.rank1

    return fake_test


@pytest.mark.parametrize('metric, best_epoch', [('mAP', 2), ('rank1', 1)])
def test_model_best_follows_declared_metric(dm_valid, tmp_path, monkeypatch, metric, best_epoch):
    model = tiny_model(dm_valid.num_train_pids)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                                progress=False, tensorboard=False)
    calls = []
    monkeypatch.setattr(engine, 'test', scripted_test(engine, [0.2, 0.5, 0.3], calls))
    engine.run(save_dir=str(tmp_path), max_epoch=3, eval_freq=1, checkpoint_metric=metric, print_freq=100)
    assert calls == [(1, False), (2, False), (3, True)]
    best = load_checkpoint(str(tmp_path / 'model' / 'model-best.pth.tar'))
    assert best['epoch'] == best_epoch
    assert best['metric_name'] == metric
    same_epoch = load_checkpoint(str(tmp_path / 'model' / f'model.pth.tar-{best_epoch}'))
    for k, v in same_epoch['state_dict'].items():
        assert torch.equal(best['state_dict'][k], v)
    last = load_checkpoint(str(tmp_path / 'model' / 'model.pth.tar-3'))
    assert last['best_metric'] == pytest.approx(0.5 if metric == 'mAP' else 0.8)
    assert last['best_epoch'] == best_epoch


def test_tensorboard_events_and_log_file(dm_valid, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = tiny_model(dm_valid.num_train_pids)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                                progress=False)
    import logging
    level_before = logging.getLogger('torchreid').level
    engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=2)
    assert logging.getLogger('torchreid').level == level_before   # the run leaves the library logger as it was
    events = glob.glob(str(tmp_path / 'events.out.tfevents.*'))
    assert events
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'Train/loss', 'Train/lr', 'Epoch/loss', 'Test/soccernetv3/mAP', 'Test/soccernetv3/rank1'} <= tags
    log_text = (tmp_path / 'train.log').read_text()
    assert 'epoch: [1/1]' in log_text and 'mAP' in log_text
    # The handler is detached after the run: later messages do not land in this file.
    logging.getLogger('torchreid.engine').info('after the run')
    assert 'after the run' not in (tmp_path / 'train.log').read_text()


def test_constructor_checks_and_use_gpu_compat(dm_valid):
    model = tiny_model(dm_valid.num_train_pids)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.warns(DeprecationWarning, match='use_gpu'):
        engine = ImageSoftmaxEngine(dm_valid, model, optimizer, use_gpu=False, progress=False)
    assert engine.device == torch.device('cpu') and engine.use_gpu is False
    with pytest.raises(ValueError, match='mixed_precision'):
        ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', mixed_precision='fp8')
    with pytest.raises(ValueError, match='grad_clip'):
        ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', grad_clip=0)
    with pytest.raises(ValueError, match='weight_t'):
        ImageTripletEngine(dm_valid, model, optimizer, weight_t=0, weight_x=0, device='cpu')
    engine = ImageSoftmaxEngine(dm_valid, model, optimizer, device='cpu', progress=False)
    with pytest.raises(ValueError, match='checkpoint_metric'):
        engine.run(max_epoch=1, checkpoint_metric='accuracy')
    with pytest.raises(NotImplementedError):
        Engine(dm_valid, device='cpu').forward_backward({})


class _TorchreidStyleEngine(Engine):
    """Written as Torchreid's engines are: self.model / optimizer / scheduler set as attributes, and the model
    registered under ``slot`` (before or after the attributes)."""

    def __init__(self, datamanager, model, optimizer, scheduler, slot='model', attributes_first=True):
        super().__init__(datamanager, device='cpu', progress=False, tensorboard=False)
        if attributes_first:
            self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.register_model(slot, model, optimizer, scheduler)
        if not attributes_first:
            self.model, self.optimizer, self.scheduler = model, optimizer, scheduler

    def forward_backward(self, data):
        outputs, pids = self.forward_train_batch(data)
        loss = torch.nn.functional.cross_entropy(outputs, pids)
        self.backward_and_step(loss)
        return {'loss': loss.item()}


@pytest.mark.parametrize('slot,attributes_first', [('model', True), ('net', True), ('net', False)])
def test_torchreid_style_subclass_shares_one_registry(dm_valid, tmp_path, slot, attributes_first):
    """One slot whatever the order and the name: one optimizer step per batch, one scheduler step per epoch,
    checkpoints in one folder and a single-path resume; the registry follows the attributes."""
    model = tiny_model(dm_valid.num_train_pids)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    engine = _TorchreidStyleEngine(dm_valid, model, optimizer, scheduler, slot, attributes_first)
    assert engine.get_model_names() == [slot]
    assert engine.model is model and engine.optimizer is optimizer and engine.scheduler is scheduler
    engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=100)
    assert engine.get_current_lr() == pytest.approx(0.05)        # stepped once, not once per slot
    assert sorted(os.listdir(tmp_path)) == ['.torchreid.lock', slot, 'train.log']   # the lock file stays, free
    assert engine.resume(str(tmp_path / slot / 'model.pth.tar-1')) == 1
    replacement = torch.optim.SGD(model.parameters(), lr=0.01)
    engine.optimizer = replacement
    assert engine._optims[slot] is replacement


def test_setting_model_before_super_init_is_a_clear_error(dm_valid):
    class Early(Engine):
        def __init__(self, datamanager, model):
            self.model = model
            super().__init__(datamanager, device='cpu')

    with pytest.raises(AttributeError, match=r'call super\(\).__init__\(\) before setting self.model'):
        Early(dm_valid, tiny_model(dm_valid.num_train_pids))


def test_triplet_engine_refuses_one_instance_per_identity(tiny_root):
    """fault: a P x K sampler with K=1 given to the triplet engine (no positive pair: loss exactly 0) ->
    expected: refused at construction, naming num_instances."""
    dm = make_datamanager(tiny_root, targets=['soccernetv3'], train_sampler='RandomIdentitySampler',
                          num_instances=1)
    model = tiny_model(dm.num_train_pids, loss='triplet')
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='num_instances=1'):
        ImageTripletEngine(dm, model, optimizer, device='cpu')
    ImageTripletEngine(dm, model, optimizer, device='cpu', weight_t=0)  # no triplet term: nothing to refuse
