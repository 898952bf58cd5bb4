import io
import math

import pytest
import torch
import torch.nn as nn

from torchreid.optim import build_lr_scheduler, build_optimizer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.bn = nn.BatchNorm1d(8)
        self.classifier = nn.Linear(8, 3)
        self.scale = nn.Parameter(torch.ones(1))  # owned directly by the model, not by a child


# ---------------------------------------------------------------- optimizers

@pytest.mark.parametrize('name, cls', [
    ('adam', torch.optim.Adam), ('amsgrad', torch.optim.Adam), ('sgd', torch.optim.SGD),
    ('rmsprop', torch.optim.RMSprop), ('radam', torch.optim.RAdam), ('adamw', torch.optim.AdamW),
])
def test_optimizer_types(name, cls):
    opt = build_optimizer(Net(), optim=name, lr=0.01, weight_decay=1e-3)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group['lr'] == 0.01 and group['weight_decay'] == 1e-3
    if name in ('adam', 'amsgrad'):
        assert group['amsgrad'] is (name == 'amsgrad')
        assert group['betas'] == (0.9, 0.99)


def test_optimizer_options_are_passed():
    sgd = build_optimizer(Net(), optim='sgd', lr=0.1, momentum=0.8, sgd_nesterov=True)
    assert sgd.param_groups[0]['momentum'] == 0.8 and sgd.param_groups[0]['nesterov'] is True
    rms = build_optimizer(Net(), optim='rmsprop', rmsprop_alpha=0.9)
    assert rms.param_groups[0]['alpha'] == 0.9
    adamw = build_optimizer(Net(), optim='adamw', adam_beta1=0.5, adam_beta2=0.6)
    assert adamw.param_groups[0]['betas'] == (0.5, 0.6)


def test_unknown_optimizer_lists_known_ones():
    with pytest.raises(ValueError, match="unknown optimizer 'lion'.*adam.*radam.*adamw"):
        build_optimizer(Net(), optim='lion')


def test_staged_lr_groups():
    model = Net()
    opt = build_optimizer(model, optim='sgd', lr=0.1, staged_lr=True, new_layers=['classifier', 'bn'],
                          base_lr_mult=0.1)
    base, new = opt.param_groups
    assert base['lr'] == pytest.approx(0.01) and new['lr'] == pytest.approx(0.1)
    new_ids = {id(p) for p in new['params']}
    expected_new = {id(p) for p in list(model.classifier.parameters()) + list(model.bn.parameters())}
    assert new_ids == expected_new
    base_ids = {id(p) for p in base['params']}
    assert id(model.scale) in base_ids  # direct parameters are not lost
    assert base_ids | new_ids == {id(p) for p in model.parameters()} and not base_ids & new_ids
    # a plain string is one layer name
    opt = build_optimizer(model, lr=0.1, staged_lr=True, new_layers='classifier')
    assert {id(p) for p in opt.param_groups[1]['params']} == {id(p) for p in model.classifier.parameters()}


def test_staged_lr_errors():
    with pytest.raises(ValueError, match=r"\['fc'\].*children are"):
        build_optimizer(Net(), staged_lr=True, new_layers=['classifier', 'fc'])
    with pytest.raises(ValueError, match='needs new_layers'):
        build_optimizer(Net(), staged_lr=True, new_layers='')
    with pytest.raises(TypeError, match='nn.Module'):
        build_optimizer(Net().parameters(), staged_lr=True, new_layers='classifier')


def test_optimizer_accepts_params_and_groups():
    model = Net()
    opt = build_optimizer(model.parameters(), optim='adam', lr=0.5)
    assert sum(len(g['params']) for g in opt.param_groups) == len(list(model.parameters()))
    opt = build_optimizer([{'params': model.backbone.parameters(), 'lr': 0.1},
                           {'params': model.classifier.parameters()}], optim='sgd', lr=0.5)
    assert [g['lr'] for g in opt.param_groups] == [0.1, 0.5]
    opt = build_optimizer(nn.DataParallel(model), optim='adam')
    assert len(opt.param_groups[0]['params']) == len(list(model.parameters()))


# ---------------------------------------------------------------- schedulers

def _lrs(scheduler, optimizer, epochs):
    """lr used in each epoch 0..epochs-1 (scheduler stepped once at the end of every epoch)."""
    values = []
    for _ in range(epochs):
        values.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return values


def _opt(lr=1.0):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_linear_warmup_then_single_step():
    opt = _opt()
    sched = build_lr_scheduler(opt, 'single_step', stepsize=2, gamma=0.1, warmup_epochs=4, warmup_factor=0.1)
    got = _lrs(sched, opt, 9)
    # warmup 0.1 -> 1 over 4 epochs, then the steps count from the warmup end (epoch 4)
    expected = [0.1, 0.325, 0.55, 0.775, 1.0, 1.0, 0.1, 0.1, 0.01]
    assert got == pytest.approx(expected)


def test_constant_warmup():
    opt = _opt()
    sched = build_lr_scheduler(opt, 'multi_step', stepsize=[1], warmup_epochs=2, warmup_factor=0.5,
                               warmup_method='constant')
    assert _lrs(sched, opt, 4) == pytest.approx([0.5, 0.5, 1.0, 0.1])


def test_single_step_list_uses_last_value_like_torchreid():
    opt = _opt()
    sched = build_lr_scheduler(opt, 'single_step', stepsize=[3], gamma=0.5)
    assert _lrs(sched, opt, 7) == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])


def test_multi_step_matches_torch():
    opt, ref_opt = _opt(), _opt()
    sched = build_lr_scheduler(opt, 'multi_step', stepsize=[5, 2], gamma=0.1)  # order does not matter
    ref = torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=[2, 5], gamma=0.1)
    got = _lrs(sched, opt, 8)
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert got == pytest.approx(_lrs(ref, ref_opt, 8))


def test_cosine_matches_torch_and_endpoints():
    opt, ref_opt = _opt(0.5), _opt(0.5)
    sched = build_lr_scheduler(opt, 'cosine', max_epoch=10)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=10)
    assert _lrs(sched, opt, 11) == pytest.approx(_lrs(ref, ref_opt, 11), abs=1e-9)

    opt = _opt(1.0)
    sched = build_lr_scheduler(opt, 'cosine', max_epoch=12, warmup_epochs=2, warmup_factor=0.1, min_lr=0.01)
    got = _lrs(sched, opt, 15)
    assert got[0] == pytest.approx(0.1) and got[1] == pytest.approx(0.55)
    assert got[2] == pytest.approx(1.0)  # main schedule starts at the warmup end
    assert got[7] == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the 10 cosine epochs
    assert got[12] == pytest.approx(0.01) and got[14] == pytest.approx(0.01)  # min_lr at max_epoch, then flat
    assert all(a >= b for a, b in zip(got[2:], got[3:]))


def test_cosine_delay_holds_the_peak_then_anneals_over_the_rest():
    opt = _opt(1.0)
    sched = build_lr_scheduler(opt, 'cosine', max_epoch=12, warmup_epochs=2, warmup_factor=0.1, min_lr=0.01,
                               cosine_delay_epochs=4)
    got = _lrs(sched, opt, 14)
    assert got[:2] == pytest.approx([0.1, 0.55])  # warmup unchanged
    assert got[2:7] == pytest.approx([1.0] * 5)  # the peak for 4 delay epochs; the decay starts at epoch 6
    assert got[9] == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the remaining 6 epochs
    assert got[12] == pytest.approx(0.01) and got[13] == pytest.approx(0.01)
    # A step schedule ignores the delay (it only shapes the cosine).
    opt = _opt(1.0)
    steps = _lrs(build_lr_scheduler(opt, 'single_step', stepsize=3, cosine_delay_epochs=4), opt, 4)
    assert steps == pytest.approx([1.0, 1.0, 1.0, 0.1])
    # A resumed scheduler continues on the same curve.
    opt, resumed_opt = _opt(1.0), _opt(1.0)
    sched = build_lr_scheduler(opt, 'cosine', max_epoch=8, cosine_delay_epochs=3)
    for _ in range(5):
        opt.step()
        sched.step()
    resumed = build_lr_scheduler(resumed_opt, 'cosine', max_epoch=8, cosine_delay_epochs=3)
    resumed.load_state_dict(sched.state_dict())
    assert resumed.get_last_lr() == pytest.approx(sched.get_last_lr())
    # epoch 5 is the 2nd of the 5 cosine epochs (3 to 7)
    assert sched.get_last_lr()[0] == pytest.approx((1 + math.cos(math.pi * 2 / 5)) / 2)


def test_staged_groups_keep_their_ratio():
    model = Net()
    opt = build_optimizer(model, optim='sgd', lr=0.1, staged_lr=True, new_layers='classifier', base_lr_mult=0.1)
    sched = build_lr_scheduler(opt, 'single_step', stepsize=1, gamma=0.5, warmup_epochs=1, warmup_factor=0.5)
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([0.005, 0.05])
    opt.step()
    sched.step()
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([0.01, 0.1])


@pytest.mark.parametrize('kind, kwargs', [
    ('single_step', dict(stepsize=3)),
    ('multi_step', dict(stepsize=[2, 6])),
    ('cosine', dict(max_epoch=10, min_lr=0.001)),
])
def test_state_dict_round_trip_continues_identically(kind, kwargs):
    def make():
        model = Net()
        opt = build_optimizer(model, optim='sgd', lr=0.1)
        return opt, build_lr_scheduler(opt, kind, warmup_epochs=2, **kwargs)

    opt, sched = make()
    _lrs(sched, opt, 3)
    buf = io.BytesIO()
    torch.save({'optimizer': opt.state_dict(), 'scheduler': sched.state_dict()}, buf)
    rest = _lrs(sched, opt, 8)

    opt2, sched2 = make()
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2.load_state_dict(state['optimizer'])
    sched2.load_state_dict(state['scheduler'])
    assert sched2.last_epoch == 3
    assert _lrs(sched2, opt2, 8) == rest


def test_scheduler_errors():
    with pytest.raises(ValueError, match="unknown lr_scheduler 'poly'.*cosine"):
        build_lr_scheduler(_opt(), 'poly')
    with pytest.raises(TypeError, match='list'):
        build_lr_scheduler(_opt(), 'multi_step', stepsize=3)
    with pytest.raises(ValueError, match='stepsize'):
        build_lr_scheduler(_opt(), 'single_step', stepsize=0)
    with pytest.raises(ValueError, match='warmup_factor'):
        build_lr_scheduler(_opt(), 'single_step', warmup_epochs=2, warmup_factor=0)
    with pytest.raises(ValueError, match='smaller than max_epoch'):
        build_lr_scheduler(_opt(), 'cosine', max_epoch=3, warmup_epochs=3)
    with pytest.raises(ValueError, match='warmup_method'):
        build_lr_scheduler(_opt(), 'cosine', max_epoch=3, warmup_method='exp')
    with pytest.raises(ValueError, match=r'warmup_epochs \(1\) \+ cosine_delay_epochs \(2\).*max_epoch \(3\)'):
        build_lr_scheduler(_opt(), 'cosine', max_epoch=3, warmup_epochs=1, cosine_delay_epochs=2)
    with pytest.raises(ValueError, match='cosine_delay_epochs must be an int >= 0'):
        build_lr_scheduler(_opt(), 'cosine', max_epoch=3, cosine_delay_epochs=-1)


# ---------------------------------------------------------------- names
def test_available_names_and_their_aliases_are_the_same_objects():
    import torchreid.optim as optim
    from torchreid.optim import lr_scheduler, optimizer

    assert optimizer.AVAI_OPTIMS is optimizer.AVAILABLE_OPTIMIZERS is optim.AVAILABLE_OPTIMIZERS
    assert optim.AVAI_OPTIMS is optim.AVAILABLE_OPTIMIZERS
    assert lr_scheduler.AVAI_SCH is lr_scheduler.AVAILABLE_LR_SCHEDULERS is optim.AVAILABLE_LR_SCHEDULERS
    assert optim.AVAI_SCH is optim.AVAI_SCHEDULERS is optim.AVAILABLE_LR_SCHEDULERS
    assert optim.AVAILABLE_WARMUP_METHODS == ('linear', 'constant')
    for name in ('AVAILABLE_OPTIMIZERS', 'AVAILABLE_LR_SCHEDULERS', 'AVAILABLE_WARMUP_METHODS', 'AVAI_OPTIMS',
                 'AVAI_SCH', 'AVAI_SCHEDULERS'):
        assert name in optim.__all__


def test_error_messages_name_the_available_constants():
    with pytest.raises(ValueError, match=r"'lion'; expected one of AVAILABLE_OPTIMIZERS: adam, amsgrad"):
        build_optimizer(Net(), optim='lion')
    with pytest.raises(ValueError, match=r"'poly'; expected one of AVAILABLE_LR_SCHEDULERS: single_step"):
        build_lr_scheduler(_opt(), 'poly')
    with pytest.raises(ValueError, match=r"'exp'; expected one of AVAILABLE_WARMUP_METHODS: linear, constant"):
        build_lr_scheduler(_opt(), 'cosine', max_epoch=3, warmup_method='exp')
