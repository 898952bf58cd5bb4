"""The state-of-the-art recipe through main(): configs/sota.yaml with a tiny ViT, metric losses from the config,
margin heads, EMA (exact resume), flip averaging, ensembles and soups of checkpoints, 'auto' normalisation."""
import os.path as osp

import pytest
import torch

from .helpers import load_default_config, load_main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SOTA = osp.join(REPO, 'configs', 'sota.yaml')
TARGETS = ['soccernetv3', 'soccernetv3_test']


def tiny(root, save_dir, *extra):
    """A tiny CNN recipe on the tiny synthetic set: 1 epoch, the valid and test targets, nothing exported."""
    return ['--root', root, 'data.save_dir', save_dir, 'data.targets', str(TARGETS),
            'data.height', '64', 'data.width', '32', 'data.workers', '0',
            'model.name', 'osnet_x0_25', 'model.pretrained', 'False',
            'sampler.train_sampler', 'RandomActionSampler', 'sampler.num_instances', '2',
            'train.batch_size', '16', 'train.max_epoch', '1', 'train.lr', '0.003', 'train.print_freq', '0',
            'train.lr_scheduler', 'single_step', 'train.stepsize', '20', 'train.seed', '3',
            'test.batch_size', '64', 'test.export_ranking_results', 'False', 'test.visrank', 'False',
            'device', 'cpu', *extra]


def scores(out):
    return {name: (res['mAP'], res['rank1']) for name, res in out['targets'].items()}


def test_sota_yaml_runs_with_a_tiny_vit(tiny_root, tmp_path):
    """The shipped recipe as written, only shrunk: a tiny ViT from scratch, 1 epoch, no challenge target."""
    out = load_main().main([
        '--config-file', SOTA, '--root', tiny_root, 'data.save_dir', str(tmp_path / 'sota'),
        'data.targets', str(TARGETS), 'data.synthetic_preset', '', 'data.workers', '0',
        'data.height', '64', 'data.width', '32', 'model.img_size', '[64, 32]',
        'model.name', 'timm/vit_tiny_patch16_224', 'model.pretrained', 'False',
        'train.max_epoch', '2', 'train.warmup_epochs', '1', 'train.batch_size', '16', 'sampler.num_instances', '2',
        'test.batch_size', '64', 'test.export_ranking_results', 'False', 'test.visrank', 'False',
        'test.eval_freq', '-1', 'train.mixed_precision', '', 'device', 'cpu'])
    cfg = out['config']
    assert cfg.loss.name == 'metric' and list(cfg.loss.metric.losses) == ['infonce']
    assert cfg.test.flip_test and cfg.test.inverted_softmax and cfg.train.optim == 'adamw'
    assert cfg.train.layer_decay > 0 and cfg.sampler.train_sampler == 'RandomActionGameSampler'
    # 'auto' normalisation: the ViT's pretrained config (ImageNet-style 0.5 / 0.5 for vit_tiny's augreg weights)
    assert list(cfg.data.norm_mean) == pytest.approx([0.5, 0.5, 0.5])
    assert [h['epoch'] for h in out['history']] == [1, 2]
    assert 'loss_infonce' in out['history'][0]
    for name in TARGETS:
        assert 0.0 < out['targets'][name]['mAP'] <= 1.0
    checkpoint = torch.load(out['checkpoints'][-1][1], map_location='cpu', weights_only=True)
    assert checkpoint['normalization']['mean'] == pytest.approx([0.5, 0.5, 0.5])
    assert checkpoint['model_spec']['kwargs'].get('img_size') in ((64, 32), [64, 32])


def test_metric_losses_margin_head_and_learnable_scale(tiny_root, tmp_path):
    out = load_main().main(tiny(tiny_root, str(tmp_path / 'metric'), 'loss.name', 'metric',
                                'loss.metric.losses', "['infonce', 'triplet', 'centroid']",
                                'loss.metric.weights', '[1.0, 0.5, 0.1]', 'loss.metric.weight_x', '1.0',
                                'loss.metric.learnable_scale', 'True', 'loss.classifier', 'cosface'))
    history = out['history'][0]
    for key in ('loss_infonce', 'loss_triplet', 'loss_centroid', 'loss_x', 'infonce_scale'):
        assert key in history
    # the learnt logit scale moved (it reached the optimizer) and is in the checkpoint
    checkpoint = torch.load(out['checkpoints'][-1][1], map_location='cpu', weights_only=True)
    log_scale = float(checkpoint['criterion_state']['infonce.logit_scale'])
    assert log_scale != pytest.approx(float(torch.log(torch.tensor(1 / 0.07))), abs=1e-7)
    assert 'classifier.weight' in checkpoint['state_dict'] and 'classifier.bias' not in checkpoint['state_dict']


def test_metric_keys_are_checked_naming_the_key():
    dc = load_default_config()
    cfg = dc.get_default_config()
    assert cfg.loss.name == 'softmax' and cfg.loss.classifier == 'linear'  # sn-reid's defaults unchanged
    cfg.loss.classifier = 'arcface'
    with pytest.raises(dc.ConfigError, match='loss.classifier'):
        dc.check_cfg(cfg)
    cfg = dc.get_default_config()
    cfg.loss.name = 'metric'
    cfg.loss.metric.losses = ['infonce', 'triplet']
    cfg.loss.metric.weights = [1.0]
    with pytest.raises(dc.ConfigError, match='loss.metric.weights has 1 values for 2'):
        dc.check_cfg(cfg)
    cfg.loss.metric.weights = []
    cfg.loss.metric.losses = ['bogus']
    with pytest.raises(dc.ConfigError, match='loss.metric.losses'):
        dc.check_cfg(cfg)
    cfg = dc.get_default_config()
    cfg.data.norm_mean = []
    with pytest.raises(dc.ConfigError, match='data.norm_mean and data.norm_std'):
        dc.check_cfg(cfg)
    cfg.model.ensemble = ['missing.pth.tar']
    cfg.data.norm_mean = [0.5, 0.5, 0.5]
    with pytest.raises(dc.ConfigError, match='model.ensemble is for test-only'):
        dc.check_cfg(cfg)
    kwargs = dc.metric_engine_kwargs(dc.get_default_config())
    assert kwargs['metric_losses'] == ['infonce'] and kwargs['metric_options']['infonce']['temperature'] == 0.07


def test_ema_resume_is_exact_and_flip_changes_features(tiny_root, tmp_path):
    main = load_main()
    ema = ('train.ema_decay', '0.9', 'train.ema_warmup_updates', '0', 'loss.name', 'triplet',
           'loss.triplet.weight_x', '1.0')
    straight = main.main(tiny(tiny_root, str(tmp_path / 'straight'), *ema, 'train.max_epoch', '2'))
    first = main.main(tiny(tiny_root, str(tmp_path / 'resumed'), *ema))
    resumed = main.main(tiny(tiny_root, str(tmp_path / 'resumed'), *ema, 'train.max_epoch', '2',
                             'model.resume', first['checkpoints'][-1][1], 'train.overwrite', 'True'))
    assert scores(resumed) == scores(straight)
    a = torch.load(straight['checkpoints'][-1][1], map_location='cpu', weights_only=True)
    b = torch.load(resumed['checkpoints'][-1][1], map_location='cpu', weights_only=True)
    for key, value in a['ema']['module'].items():
        assert torch.equal(value, b['ema']['module'][key]), key
    assert a['ema']['num_updates'] == b['ema']['num_updates'] > 0
    # the averaged weights differ from the trained ones, and the tests used them
    assert any(not torch.equal(a['ema']['module'][k], a['state_dict'][k]) for k in a['state_dict']
               if a['state_dict'][k].is_floating_point())
    flipped = main.main(tiny(tiny_root, str(tmp_path / 'flip'), 'test.evaluate', 'True', 'model.load_weights',
                             straight['checkpoints'][-1][1], 'test.flip_test', 'True'))
    plain = main.main(tiny(tiny_root, str(tmp_path / 'plain'), 'test.evaluate', 'True', 'model.load_weights',
                           straight['checkpoints'][-1][1]))
    assert scores(plain) == scores(straight)  # the test-only run loads the EMA weights the run evaluated
    assert scores(flipped) != scores(plain)


def test_ensemble_and_soup_of_checkpoints(tiny_root, tmp_path):
    from torchreid.engine.ensemble import SoupError, average_checkpoints
    from torchreid.utils import FeatureExtractor

    main = load_main()
    a = main.main(tiny(tiny_root, str(tmp_path / 'a')))['checkpoints'][-1][1]
    b = main.main(tiny(tiny_root, str(tmp_path / 'b'), 'train.seed', '4'))['checkpoints'][-1][1]
    other = main.main(tiny(tiny_root, str(tmp_path / 'c'), 'model.name', 'resnet18', 'data.height', '32',
                           'data.width', '16'))['checkpoints'][-1][1]
    out = main.main(tiny(tiny_root, str(tmp_path / 'ens'), 'test.evaluate', 'True', 'model.ensemble',
                         str([a, b, other])))
    for name in TARGETS:
        assert 0.0 < out['targets'][name]['mAP'] <= 1.0
    x = torch.rand(2, 3, 64, 32)
    fa, fb = (FeatureExtractor.from_checkpoint(p, device='cpu', verbose=False).model(x) for p in (a, b))
    soup = average_checkpoints([a, b])
    assert soup['soup_of'] == [a, b] and soup['model_spec']['name'] == 'osnet_x0_25'
    key = next(k for k, v in soup['state_dict'].items() if v.is_floating_point() and v.dim() == 4)
    wa = torch.load(a, map_location='cpu', weights_only=True)['state_dict'][key]
    wb = torch.load(b, map_location='cpu', weights_only=True)['state_dict'][key]
    assert torch.allclose(soup['state_dict'][key], (wa + wb) / 2)
    assert fa.shape == fb.shape
    with pytest.raises(SoupError, match='ONE architecture'):
        average_checkpoints([a, other])
