"""The engine never loses work (issue 12): save before test, the best file survives, leftovers and the lock, a
full disk, a non-finite loss, a new learning rate on resume; and Torchreid's engine contract (issue 13, 17)."""
import errno
import logging
import os

import pytest
import torch

from engine_helpers import toy_engine
from torchreid.engine import Engine, ImageSoftmaxEngine, ImageTripletEngine
from torchreid.engine.engine import NonFiniteLossError
from torchreid.utils import load_checkpoint, resolve_device
from torchreid.utils.io import DiskFullError


def _model_files(save_dir):
    return sorted(os.listdir(os.path.join(save_dir, 'model')))


def _weights(engine):
    return {k: v.clone() for k, v in engine.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_final_test_loses_no_training(tmp_path):
    """fault: the final test fails (bad gallery image, full disk) -> expected: the last epoch is saved; the
    resume runs only the test.
    Save first, then test: the last epoch survives an error in the final test (a bad gallery image, an export
    on a full disk); the resumed run only runs that test and writes model-best."""
    save_dir = str(tmp_path)
    engine = toy_engine()
    real_test = engine.test

    def broken_final_test(*args, final=True, **kwargs):
        if final:
            raise OSError('cannot read gallery image x.jpg')
        return real_test(*args, final=final, **kwargs)

    engine.test = broken_final_test
    with pytest.raises(OSError, match='gallery image'):
        engine.run(save_dir=save_dir, max_epoch=2, eval_freq=1, print_freq=0)
    trained = _weights(engine)
    ckpt = load_checkpoint(os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    assert ckpt['test_pending'] is True and ckpt['best_epoch'] == 1
    assert _same(ckpt['state_dict'], trained)

    resumed = toy_engine(lr=1e-2)
    results = resumed.run(save_dir=save_dir, max_epoch=2, eval_freq=1, print_freq=0,
                          resume=os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    assert resumed.history == []                                     # nothing trained again
    assert results['toy']['mAP'] is not None
    final = load_checkpoint(os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    assert final['test_pending'] is False and final['metric'] == pytest.approx(results['toy']['mAP'])
    best_epoch = final['best_epoch']
    best = load_checkpoint(os.path.join(save_dir, 'model', 'model-best.pth.tar'))
    assert best['epoch'] == best_epoch in (1, 2)


def _scripted(engine, scores):
    """``engine.test`` replaced by a test whose mAP depends only on the epoch."""
    def test(options=None, *, epoch=None, final=True, **kwargs):
        engine.last_test_results = {'toy': {'mAP': scores[epoch], 'rank1': scores[epoch], 'mINP': scores[epoch],
                                            'eval_metric': 'default', 'hidden_labels': False}}
        return scores[epoch]

    engine.test = test
    return engine


def test_model_best_lost_is_restored_or_said_gone_on_resume(tmp_path, caplog):
    """fault: model-best.pth.tar missing or corrupt at resume -> expected: restored from its epoch, or an
    error saying it is gone."""
    scores = {1: 0.7, 2: 0.5, 3: 0.6}                                 # epoch 1 is the best
    save_dir = str(tmp_path)
    model_dir = os.path.join(save_dir, 'model')
    _scripted(toy_engine(), scores).run(save_dir=save_dir, max_epoch=2, eval_freq=1, print_freq=0, keep_last=None)
    expected = load_checkpoint(os.path.join(model_dir, 'model-best.pth.tar'))['state_dict']
    assert _same(expected, load_checkpoint(os.path.join(model_dir, 'model.pth.tar-1'))['state_dict'])
    # A kill during the best file's write leaves the previous best, or none; here a broken file stands for it.
    with open(os.path.join(model_dir, 'model-best.pth.tar'), 'r+b') as f:
        f.truncate(100)
    with caplog.at_level(logging.WARNING, logger='torchreid'):
        _scripted(toy_engine(), scores).run(save_dir=save_dir, max_epoch=2, eval_freq=1, print_freq=0,
                                            resume=os.path.join(model_dir, 'model.pth.tar-2'))
    assert 'restored the best weights (epoch 1)' in caplog.text
    best = load_checkpoint(os.path.join(model_dir, 'model-best.pth.tar'))
    assert best['epoch'] == 1 and _same(best['state_dict'], expected)

    # No file holds those weights any more: said clearly, and the best is tracked afresh.
    os.remove(os.path.join(model_dir, 'model-best.pth.tar'))
    os.remove(os.path.join(model_dir, 'model.pth.tar-1'))
    caplog.clear()
    engine = _scripted(toy_engine(), scores)
    with caplog.at_level(logging.ERROR, logger='torchreid'):
        engine.run(save_dir=save_dir, max_epoch=3, eval_freq=1, print_freq=0,
                   resume=os.path.join(model_dir, 'model.pth.tar-2'))
    assert 'The best weights (epoch 1, by mAP) are gone' in caplog.text
    assert engine.best_epoch == 3 and engine.best_metric == pytest.approx(0.6)
    assert load_checkpoint(os.path.join(model_dir, 'model-best.pth.tar'))['epoch'] == 3


def test_leftover_temp_files_of_killed_writes_are_removed_at_start_only_ours(tmp_path):
    """fault: temp files left by killed writes -> expected: ours removed at the next start, others kept."""
    save_dir = tmp_path
    (save_dir / 'model').mkdir()
    ours = [save_dir / 'model' / '.model.pth.tar-3.0123456789ab.tmp', save_dir / '.ranking.json.a1b2c3d4e5f6.tmp']
    theirs = [save_dir / 'model' / '.notes.tmp', save_dir / 'model' / 'x.0123456789ab.tmp']
    for path in ours + theirs:
        path.write_bytes(b'partial')
    toy_engine().run(save_dir=str(save_dir), max_epoch=1, print_freq=0)
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs)


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """fault: the disk fills during a checkpoint write -> expected: DiskFullError naming the file, previous
    checkpoint intact, no temp file."""
    save_dir = str(tmp_path)
    engine = toy_engine()
    real_fdopen = os.fdopen

    class FillsUp:
        """The temporary file of model.pth.tar-2: the device fills up after 1000 bytes."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            if self.written + len(data) > 1000:
                raise OSError(errno.ENOSPC, 'No space left on device')
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return FillsUp(f) if '.model.pth.tar-2.' in os.readlink(f'/proc/self/fd/{fd}') else f

    if not os.path.exists('/proc/self/fd'):
        pytest.skip('needs /proc/self/fd to tell which file is written')
    monkeypatch.setattr(os, 'fdopen', fdopen)
    with pytest.raises(DiskFullError, match=r'could not write ".*model\.pth\.tar-2": no space left on the device '
                                            r'\(disk full\)') as info:
        engine.run(save_dir=save_dir, max_epoch=2, print_freq=0)
    assert info.value.errno == errno.ENOSPC and 'unexpected pos' not in str(info.value)
    monkeypatch.undo()
    assert _model_files(save_dir) == ['model.pth.tar-1']     # no partial file left
    assert load_checkpoint(os.path.join(save_dir, 'model', 'model.pth.tar-1'))['epoch'] == 1


def test_a_non_finite_loss_stops_training_and_is_not_saved(tmp_path):
    """fault: the loss becomes NaN / inf -> expected: training stops naming epoch and batch, the bad step
    neither applied nor saved."""
    save_dir = str(tmp_path)
    engine = toy_engine()
    real_criterion = engine.criterion
    calls = []

    def criterion(outputs, targets):
        calls.append(1)
        loss = real_criterion(outputs, targets)
        return loss * float('nan') if len(calls) == 7 else loss   # epoch 2 (4 batches an epoch), batch 3

    engine.criterion = criterion
    with pytest.raises(NonFiniteLossError, match=r'loss is nan at epoch 2, batch 3/4: training stopped\. This state '
                                                 r'was not saved; the last good checkpoint is ".*model\.pth\.tar-1"'):
        engine.run(save_dir=save_dir, max_epoch=3, print_freq=0)
    assert _model_files(save_dir) == ['model.pth.tar-1']
    assert all(torch.isfinite(p).all() for p in engine.model.parameters())       # the bad step was not applied

    class SelfStepping(ImageSoftmaxEngine):
        """Steps its optimizer itself: the summary it returns is checked."""

        def forward_backward(self, data):
            return {'loss': float('inf') if self.epoch == 0 and self.batch_idx == 1 else 1.0}

    with pytest.raises(NonFiniteLossError, match='loss is inf at epoch 1, batch 2/4'):
        toy_engine(engine_cls=SelfStepping).run(save_dir=str(tmp_path / 'other'), max_epoch=1, print_freq=0)


def test_a_new_learning_rate_on_resume_applies(tmp_path, caplog):
    """fault: a changed learning rate on resume -> expected: the new rate applies, with a warning."""
    save_dir = str(tmp_path)
    toy_engine(lr=1e-2).run(save_dir=save_dir, max_epoch=2, print_freq=0)     # StepLR 0.5: lr 2.5e-3 after 2
    resumed = toy_engine(lr=4e-2)
    with caplog.at_level(logging.WARNING, logger='torchreid'):
        resumed.run(save_dir=save_dir, max_epoch=3, print_freq=0,
                    resume=os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    assert 'the new lr applies' in caplog.text and '0.01' in caplog.text and '0.04' in caplog.text
    # epoch 3 trained at 4e-2 * 0.5**2, then the scheduler stepped once more
    assert resumed.history[0]['epoch'] == 3
    assert resumed.get_current_lr() == pytest.approx(4e-2 * 0.5 ** 3)
    assert resumed.scheduler.base_lrs == [pytest.approx(4e-2)]
    # the same lr as the checkpoint's: nothing changes, nothing said
    caplog.clear()
    same = toy_engine(lr=1e-2)
    with caplog.at_level(logging.WARNING, logger='torchreid'):
        same.resume(os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    assert 'new lr' not in caplog.text and same.get_current_lr() == pytest.approx(1e-2 * 0.5 ** 2)


# ---------------------------------------------------------------------------------------- Torchreid's contract
def test_test_returns_rank1_and_keeps_every_target(tmp_path):
    engine = toy_engine()
    rank1 = engine.test(save_dir=str(tmp_path))
    assert isinstance(rank1, float) and rank1 == engine.last_test_results['toy']['rank1'] == engine.rank1
    assert engine.last_results is engine.last_test_results
    assert set(engine.last_test_results['toy']) >= {'mAP', 'rank1', 'mINP', 'cmc'}


def test_a_subclass_overriding_extract_features_per_batch_is_used():
    """Torchreid's extension point: ``extract_features(self, input)`` takes an image batch."""
    seen = []

    class Doubling(ImageSoftmaxEngine):
        def extract_features(self, input):
            seen.append(tuple(input.shape))
            return self.model(input) * 2

    plain, doubled = toy_engine(), toy_engine(engine_cls=Doubling)
    loader = plain.test_loader['toy']['gallery']
    base, pids, _ = plain.extract_features_from_loader(loader)
    feats, pids2, _ = doubled.extract_features_from_loader(loader)
    assert seen == [(1, 3, 8, 4)] * 8
    torch.testing.assert_close(feats, 2 * base)
    assert pids.tolist() == pids2.tolist()
    doubled.test()                                                       # the evaluation goes through it too
    assert len(seen) == 8 + 4 + 8
    # The base hook is Torchreid's: a batch in, the model's features out.
    with torch.no_grad():
        torch.testing.assert_close(plain.extract_features(torch.ones(2, 3, 8, 4)),
                                   plain.model(torch.ones(2, 3, 8, 4)))
    with pytest.warns(DeprecationWarning, match='extract_features_from_loader'):
        torch.testing.assert_close(plain.extract_features(loader)[0], base)


def test_device_defaults_to_the_best_available():
    from torchreid.utils import FeatureExtractor

    engine = toy_engine(device='auto')
    assert Engine.__init__.__defaults__[0] == 'auto'
    assert engine.device == resolve_device('auto')
    extractor = FeatureExtractor(model=torch.nn.Linear(2, 2), verbose=False)
    assert extractor.device == resolve_device('auto')


def test_run_prints_the_results_once_and_where_the_files_are(tmp_path, capsys, monkeypatch):
    """With no logging set up by the user (here: pytest's capture detached), the run shows its messages on the
    console, the results table once, and where it wrote its files."""
    lib = logging.getLogger('torchreid')
    monkeypatch.setattr(lib, 'propagate', False)
    handlers_before = list(lib.handlers)
    toy_engine().run(save_dir=str(tmp_path), max_epoch=1, print_freq=0, export_ranking_results=True)
    out = capsys.readouterr().out
    assert out.count('| target | metric | mAP | rank-1 | mINP |') == 1
    assert 'epoch 1/1 done: loss' in out
    assert f'log: {tmp_path / "train.log"}' in out
    assert f'checkpoints: {tmp_path / "model"} (last: model.pth.tar-1, best: model-best.pth.tar = epoch 1)' in out
    assert lib.handlers == handlers_before                              # the console handler is removed again

    # The user's own console handler: nothing added (no line twice).
    mine = logging.StreamHandler()
    lib.addHandler(mine)
    try:
        toy_engine().run(save_dir=str(tmp_path / 'again'), max_epoch=1, print_freq=0)
        assert capsys.readouterr().out == ''
    finally:
        lib.removeHandler(mine)


def test_progress_bars_get_the_console_records_above_them(tmp_path, monkeypatch):
    lib = logging.getLogger('torchreid')
    monkeypatch.setattr(lib, 'propagate', False)
    seen = []

    class Spy(ImageSoftmaxEngine):
        def forward_backward(self, data):
            seen.append([type(h).__name__ for h in lib.handlers])
            return super().forward_backward(data)

    toy_engine(engine_cls=Spy, progress=True).run(save_dir=str(tmp_path), max_epoch=1, print_freq=0)
    assert seen and all('_TqdmLoggingHandler' in names and 'StreamHandler' not in names for names in seen)


def test_training_accuracy_only_when_the_classifier_trains(tmp_path):
    """With weight_x=0 the classifier is never trained: its accuracy (about 0) is not reported."""
    import torch.nn as nn

    class TwoOutputs(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            logits = self.net(x)
            return (logits, logits) if self.training else logits

    for weight_x, has_acc in ((0.0, False), (1.0, True)):
        base = toy_engine()
        model = TwoOutputs(base.model)
        engine = ImageTripletEngine(base.datamanager, model, torch.optim.Adam(model.parameters()), weight_x=weight_x,
                                    device='cpu', progress=False, tensorboard=False)
        engine.run(save_dir=str(tmp_path / str(weight_x)), max_epoch=1, print_freq=0)
        assert ('acc' in engine.history[0]) is has_acc
