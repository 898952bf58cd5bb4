"""The baseline pipeline end to end on the tiny synthetic set: train, evaluate, export, resume, test only."""
import glob
import json
import os.path as osp

import pytest
import torch

from .helpers import load_main

TARGETS = ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge']


def tiny_argv(root, save_dir, *extra):
    """A small demo-like recipe: tiny network and images, 1 epoch, every target exported."""
    return [
        '--root', root,
        'data.save_dir', save_dir,
        'data.targets', str(TARGETS),
        'data.height', '64', 'data.width', '32', 'data.workers', '0',
        'model.name', 'osnet_x0_25', 'model.pretrained', 'False', 'model.bnneck', 'True',
        'sampler.train_sampler', 'RandomActionSampler', 'sampler.num_instances', '2',
        'loss.name', 'triplet', 'loss.triplet.action_aware', 'True', 'loss.triplet.weight_x', '1.0',
        'train.batch_size', '16', 'train.max_epoch', '1', 'train.lr', '0.003', 'train.print_freq', '2',
        # a constant lr: a 1-epoch run then resumed for a 2nd epoch equals a straight 2-epoch run
        'train.lr_scheduler', 'single_step', 'train.stepsize', '20', 'train.seed', '3',
        'test.batch_size', '64', 'test.export_ranking_results', 'True', 'test.normalize_feature', 'True',
        'test.visrank', 'True', 'test.visrank_max_queries', '2', 'test.visrank_topk', '3',
        'device', 'cpu',
        *extra,
    ]


def metrics_of(out):
    return {name: (res['mAP'], res['rank1'], res['mINP']) for name, res in out['targets'].items()}


@pytest.fixture(scope='module')
def trained(tiny_root, tmp_path_factory):
    save_dir = str(tmp_path_factory.mktemp('baseline_run'))
    out = load_main().main(tiny_argv(tiny_root, save_dir))
    return out, save_dir


def test_trains_evaluates_and_exports_every_target(trained, tiny_root, capsys):
    from torchreid.metrics import evaluate_ranking_file

    out, save_dir = trained
    assert list(out['targets']) == TARGETS
    assert [h['epoch'] for h in out['history']] == [1]
    for name in ('soccernetv3', 'soccernetv3_test'):
        res = out['targets'][name]
        assert res['eval_metric'] == 'soccernetv3' and not res['hidden_labels']
        assert 0.0 < res['mAP'] <= 1.0 and 0.0 <= res['rank1'] <= 1.0
    challenge = out['targets']['soccernetv3_challenge']
    assert challenge['hidden_labels'] and challenge['mAP'] is None

    # One ranking JSON per target, named as sn-reid names them, accepted by the evaluator.
    reid = osp.join(tiny_root, 'soccernetv3', 'reid')
    gts = {'soccernetv3': osp.join(reid, 'valid', 'bbox_info.json'),
           'soccernetv3_test': osp.join(reid, 'test', 'test_bbox_info.json'),
           'soccernetv3_challenge': osp.join(reid, 'challenge_labels', 'bbox_info.json')}
    for name in TARGETS:
        files = glob.glob(osp.join(save_dir, f'ranking_results_{name}_2*.json'))
        assert len(files) == 1, (name, files)
        assert out['targets'][name]['ranking_path'] == files[0]
        with open(files[0]) as f:
            assert all(isinstance(v, list) for v in json.load(f).values())
        scored = evaluate_ranking_file(files[0], gts[name])
        assert scored['num_queries'] > 0
        # main scored it too, with the same evaluator and ground truth
        assert out['targets'][name]['evaluator']['mAP'] == pytest.approx(scored['mAP'], abs=1e-12)
        if name != 'soccernetv3_challenge':
            # the engine's numbers equal the evaluator's
            assert out['targets'][name]['agree'] is True
            assert scored['mAP'] == pytest.approx(out['targets'][name]['mAP'], abs=1e-6)
            assert scored['rank-1'] == pytest.approx(out['targets'][name]['rank1'], abs=1e-6)

    # Log, checkpoint, TensorBoard events, ranked-result pictures.
    assert osp.basename(out['log_file']).startswith('train.log-')
    with open(out['log_file']) as f:
        log = f.read()
    assert 'stand-alone evaluator' in log and 'agree' in log and 'DISAGREE' not in log
    assert [e for e, _ in out['checkpoints']] == [1]
    assert glob.glob(osp.join(save_dir, 'events.out.tfevents.*'))
    assert glob.glob(osp.join(save_dir, 'visrank_soccernetv3', '*.jpg')) + \
        glob.glob(osp.join(save_dir, 'visrank_soccernetv3', '*.png'))


def test_final_table_printed(trained):
    out, _ = trained
    table = load_main().format_table(out['targets'])
    for name in TARGETS:
        assert f'| {name} |' in table
    valid = out['targets']['soccernetv3']
    assert f"{100 * valid['mAP']:.2f} | {100 * valid['evaluator']['mAP']:.2f}" in table
    assert '| agree |' in table and 'evaluator only' in table


def test_test_only_from_saved_weights_reproduces_numbers(trained, tiny_root, tmp_path):
    out, save_dir = trained
    weights = out['checkpoints'][-1][1]
    again = load_main().main(tiny_argv(tiny_root, str(tmp_path), 'test.evaluate', 'True',
                                       'model.load_weights', weights, 'test.visrank', 'False'))
    assert again['test_only'] and again['history'] == []
    assert osp.basename(again['log_file']).startswith('test.log-')
    for name in ('soccernetv3', 'soccernetv3_test'):
        assert again['targets'][name]['mAP'] == pytest.approx(out['targets'][name]['mAP'], abs=1e-9)
        assert again['targets'][name]['rank1'] == pytest.approx(out['targets'][name]['rank1'], abs=1e-9)
        assert again['targets'][name]['agree'] is True
    # the challenge ranking is the same ranking as well
    with open(out['targets']['soccernetv3_challenge']['ranking_path']) as f1, \
            open(again['targets']['soccernetv3_challenge']['ranking_path']) as f2:
        assert json.load(f1) == json.load(f2)


def test_inverted_softmax_reaches_the_exported_rankings(trained, tiny_root, tmp_path):
    out, _ = trained
    weights = out['checkpoints'][-1][1]
    ism = load_main().main(tiny_argv(tiny_root, str(tmp_path), 'test.evaluate', 'True', 'model.load_weights',
                                     weights, 'test.visrank', 'False', 'test.inverted_softmax', 'True'))
    for name in ('soccernetv3', 'soccernetv3_test'):
        # the exported file, re-scored by the evaluator, gives the engine's numbers
        assert ism['targets'][name]['agree'] is True
    # every target, the challenge one too (hidden labels), is ranked differently from the plain ranking
    for name in ('soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'):
        with open(out['targets'][name]['ranking_path']) as f1, open(ism['targets'][name]['ranking_path']) as f2:
            plain, reranked = json.load(f1), json.load(f2)
        assert plain.keys() == reranked.keys() and plain != reranked, name
        assert all(sorted(plain[q]) == sorted(reranked[q]) for q in plain), name


def test_resume_continues_at_the_right_epoch(trained, tiny_root, tmp_path):
    from torchreid.utils import load_checkpoint

    out, _ = trained
    ckpt = out['checkpoints'][-1][1]
    resumed = load_main().main(tiny_argv(tiny_root, str(tmp_path / 'resumed'), 'train.max_epoch', '2',
                                         'model.resume', ckpt, 'test.visrank', 'False'))
    assert resumed['start_epoch'] == 1
    assert [h['epoch'] for h in resumed['history']] == [2]  # only the second epoch was trained
    assert [e for e, _ in resumed['checkpoints']] == [2]
    # An uninterrupted 2-epoch run ends with the same weights.
    straight = load_main().main(tiny_argv(tiny_root, str(tmp_path / 'straight'), 'train.max_epoch', '2',
                                          'test.visrank', 'False', 'test.export_ranking_results', 'False'))
    a = load_checkpoint(resumed['checkpoints'][-1][1])['state_dict']
    b = load_checkpoint(straight['checkpoints'][-1][1])['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    assert resumed['targets']['soccernetv3']['mAP'] == pytest.approx(straight['targets']['soccernetv3']['mAP'],
                                                                     abs=1e-6)


def test_resume_from_missing_checkpoint_is_a_clear_error(tiny_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_main().main(tiny_argv(tiny_root, str(tmp_path), 'model.resume', str(tmp_path / 'nope.pth')))


def test_a_new_ranking_step_is_a_config_key_that_reaches_the_rankings(toy_ranking_step, trained, tiny_root,
                                                                      tmp_path):
    """tests/conftest.py's toy step, registered in one place, is a ``test.*`` key of the config and changes the
    exported rankings (here: the plain ranking reversed)."""
    from .helpers import load_default_config

    cfg = load_default_config().get_default_config()
    assert cfg.test.toy_farthest_first is False and cfg.test.toy_weight == 1.0
    common = ('test.evaluate', 'True', 'test.visrank', 'False', 'data.targets', "['soccernetv3']",
              'model.load_weights', trained[0]['checkpoints'][-1][1])
    plain = load_main().main(tiny_argv(tiny_root, str(tmp_path / 'plain'), *common))
    toy = load_main().main(tiny_argv(tiny_root, str(tmp_path / 'toy'), *common, 'test.toy_farthest_first', 'True',
                                     'test.toy_weight', '3.0'))
    with open(plain['targets']['soccernetv3']['ranking_path']) as f1, \
            open(toy['targets']['soccernetv3']['ranking_path']) as f2:
        a, b = json.load(f1), json.load(f2)
    assert a.keys() == b.keys() and all(a[q][::-1] == b[q] for q in a)  # same network, same seed
    assert toy['targets']['soccernetv3']['agree'] is True
    assert toy['targets']['soccernetv3']['mAP'] < plain['targets']['soccernetv3']['mAP']


def test_test_only_rebuilds_the_model_the_checkpoint_describes(trained, tiny_root, tmp_path, caplog):
    """No model.name / bnneck / size restated: architecture, input size and normalisation come from the file;
    a configuration value that disagrees with it is named in a warning."""
    out, _ = trained
    weights = out['checkpoints'][-1][1]
    argv = ['--root', tiny_root, 'data.save_dir', str(tmp_path), 'data.targets', "['soccernetv3']",
            'data.workers', '0', 'test.evaluate', 'True', 'model.load_weights', weights, 'data.height', '96',
            'test.batch_size', '64', 'test.normalize_feature', 'True', 'test.export_ranking_results', 'True',
            'device', 'cpu']
    with caplog.at_level('WARNING', logger='torchreid'):
        again = load_main().main(argv)
    cfg = again['config']
    assert (cfg.model.name, cfg.model.bnneck, cfg.data.height, cfg.data.width) == ('osnet_x0_25', True, 64, 32)
    assert again['targets']['soccernetv3']['mAP'] == pytest.approx(out['targets']['soccernetv3']['mAP'], abs=1e-9)
    assert any('data.height' in r.getMessage() and '96' in r.getMessage() for r in caplog.records)


def test_test_only_with_a_torchreid_checkpoint_or_a_broken_description(trained, tiny_root, tmp_path):
    """A Torchreid file (a NumPy scalar in it: the safe loader refuses it) is refused, naming the opt-in; with
    --allow-unsafe-pickle it is loaded into the model the configuration names; a checkpoint whose model_spec is
    malformed is one clear error naming the file."""
    import numpy as np

    from torchreid.models import CheckpointError
    from torchreid.utils import load_checkpoint

    out, _ = trained
    ckpt = load_checkpoint(out['checkpoints'][-1][1])
    legacy = str(tmp_path / 'torchreid.pth.tar')
    torch.save({'state_dict': ckpt['state_dict'], 'epoch': 1, 'rank1': np.float64(0.5)}, legacy)
    with pytest.raises(RuntimeError, match='torchreid.pth.tar'):
        load_main().main(tiny_argv(tiny_root, str(tmp_path / 'refused'), 'test.evaluate', 'True',
                                   'model.load_weights', legacy, 'test.visrank', 'False'))
    again = load_main().main(['--allow-unsafe-pickle',
                              *tiny_argv(tiny_root, str(tmp_path / 'legacy'), 'test.evaluate', 'True',
                                         'model.load_weights', legacy, 'test.visrank', 'False')])
    assert again['targets']['soccernetv3']['mAP'] == pytest.approx(out['targets']['soccernetv3']['mAP'], abs=1e-9)
    broken = str(tmp_path / 'broken.pth.tar')
    torch.save(dict(ckpt, model_spec={'name': 'osnet_x0_25'}), broken)
    with pytest.raises(CheckpointError, match=r'broken\.pth\.tar.*model_spec'):
        load_main().main(tiny_argv(tiny_root, str(tmp_path / 'broken'), 'test.evaluate', 'True',
                                   'model.load_weights', broken))
