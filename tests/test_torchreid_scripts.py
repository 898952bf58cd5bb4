"""Torchreid's own user code, written the way Torchreid's ``scripts/main.py`` + ``scripts/default_config.py``
(and sn-reid's ``benchmarks/baseline`` copy of them) and its README / user guide write it, run unchanged in shape
against this package on tiny generated data.

The config below keeps Torchreid's key layout (``cfg.data.*``, ``cfg.sampler.*``, ``cfg.train.*``, ...) and its
four ``*_kwargs(cfg)`` helpers; ``main`` follows scripts/main.py step by step: seed, ``sys.stdout = Logger(...)``,
data manager, ``build_model``, ``compute_model_complexity``, ``load_pretrained_weights``, optimizer, scheduler,
``resume_from_checkpoint``, engine, ``engine.run(**engine_run_kwargs(cfg))``. Only the values are tiny.
"""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from yacs.config import CfgNode as CN

import torchreid
from torchreid.utils import (Logger, check_isfile, collect_env_info, compute_model_complexity,
                             load_pretrained_weights, resume_from_checkpoint, set_random_seed)

HEIGHT, WIDTH = 32, 16
MODEL = 'osnet_x0_25'


# ------------------------------------------------------------------ Torchreid's default_config.py, tiny values
def get_default_config():
    cfg = CN()
    cfg.model = CN()
    cfg.model.name = MODEL
    cfg.model.pretrained = False          # Torchreid's default is True (ImageNet download); the tests are offline
    cfg.model.load_weights = ''
    cfg.model.resume = ''
    cfg.data = CN()
    cfg.data.type = 'image'
    cfg.data.root = 'reid-data'
    cfg.data.sources = ['soccernetv3']
    cfg.data.targets = ['soccernetv3']
    cfg.data.workers = 0
    cfg.data.split_id = 0
    cfg.data.height = HEIGHT
    cfg.data.width = WIDTH
    cfg.data.combineall = False
    cfg.data.transforms = ['random_flip']
    cfg.data.k_tfm = 1
    cfg.data.norm_mean = [0.485, 0.456, 0.406]
    cfg.data.norm_std = [0.229, 0.224, 0.225]
    cfg.data.save_dir = 'log'
    cfg.data.load_train_targets = False
    cfg.soccernetv3 = CN()                # sn-reid's addition
    cfg.soccernetv3.training_subset = 1.0
    cfg.sampler = CN()
    cfg.sampler.train_sampler = 'RandomSampler'
    cfg.sampler.train_sampler_t = 'RandomSampler'
    cfg.sampler.num_instances = 4
    cfg.sampler.num_cams = 1
    cfg.sampler.num_datasets = 1
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False
    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.train = CN()
    cfg.train.optim = 'adam'
    cfg.train.lr = 0.0003
    cfg.train.weight_decay = 5e-4
    cfg.train.max_epoch = 1
    cfg.train.start_epoch = 0
    cfg.train.batch_size = 8
    cfg.train.fixbase_epoch = 0
    cfg.train.open_layers = ['classifier']
    cfg.train.staged_lr = False
    cfg.train.new_layers = ['classifier']
    cfg.train.base_lr_mult = 0.1
    cfg.train.lr_scheduler = 'single_step'
    cfg.train.stepsize = [20]
    cfg.train.gamma = 0.1
    cfg.train.print_freq = 20
    cfg.train.seed = 1
    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999
    cfg.loss = CN()
    cfg.loss.name = 'softmax'
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.
    cfg.loss.triplet.weight_x = 0.
    cfg.test = CN()
    cfg.test.batch_size = 16
    cfg.test.dist_metric = 'euclidean'
    cfg.test.normalize_feature = False
    cfg.test.ranks = [1, 5, 10, 20]
    cfg.test.evaluate = False
    cfg.test.eval_freq = -1
    cfg.test.start_eval = 0
    cfg.test.rerank = False
    cfg.test.visrank = False
    cfg.test.visrank_topk = 10
    cfg.test.export_ranking_results = False   # sn-reid's addition
    return cfg


def imagedata_kwargs(cfg):
    return {
        'root': cfg.data.root, 'sources': cfg.data.sources, 'targets': cfg.data.targets,
        'height': cfg.data.height, 'width': cfg.data.width, 'transforms': cfg.data.transforms,
        'k_tfm': cfg.data.k_tfm, 'norm_mean': cfg.data.norm_mean, 'norm_std': cfg.data.norm_std,
        'use_gpu': cfg.use_gpu, 'split_id': cfg.data.split_id, 'combineall': cfg.data.combineall,
        'load_train_targets': cfg.data.load_train_targets, 'batch_size_train': cfg.train.batch_size,
        'batch_size_test': cfg.test.batch_size, 'workers': cfg.data.workers,
        'num_instances': cfg.sampler.num_instances, 'num_cams': cfg.sampler.num_cams,
        'num_datasets': cfg.sampler.num_datasets, 'train_sampler': cfg.sampler.train_sampler,
        'train_sampler_t': cfg.sampler.train_sampler_t,
        'cuhk03_labeled': cfg.cuhk03.labeled_images, 'cuhk03_classic_split': cfg.cuhk03.classic_split,
        'market1501_500k': cfg.market1501.use_500k_distractors,
        'soccernetv3_training_subset': cfg.soccernetv3.training_subset,
    }


def optimizer_kwargs(cfg):
    return {
        'optim': cfg.train.optim, 'lr': cfg.train.lr, 'weight_decay': cfg.train.weight_decay,
        'momentum': cfg.sgd.momentum, 'sgd_dampening': cfg.sgd.dampening, 'sgd_nesterov': cfg.sgd.nesterov,
        'rmsprop_alpha': cfg.rmsprop.alpha, 'adam_beta1': cfg.adam.beta1, 'adam_beta2': cfg.adam.beta2,
        'staged_lr': cfg.train.staged_lr, 'new_layers': cfg.train.new_layers, 'base_lr_mult': cfg.train.base_lr_mult,
    }


def lr_scheduler_kwargs(cfg):
    return {'lr_scheduler': cfg.train.lr_scheduler, 'stepsize': cfg.train.stepsize, 'gamma': cfg.train.gamma,
            'max_epoch': cfg.train.max_epoch}


def engine_run_kwargs(cfg):
    return {
        'save_dir': cfg.data.save_dir, 'max_epoch': cfg.train.max_epoch, 'start_epoch': cfg.train.start_epoch,
        'fixbase_epoch': cfg.train.fixbase_epoch, 'open_layers': cfg.train.open_layers,
        'start_eval': cfg.test.start_eval, 'eval_freq': cfg.test.eval_freq, 'test_only': cfg.test.evaluate,
        'print_freq': cfg.train.print_freq, 'dist_metric': cfg.test.dist_metric,
        'normalize_feature': cfg.test.normalize_feature, 'visrank': cfg.test.visrank,
        'visrank_topk': cfg.test.visrank_topk, 'use_metric_cuhk03': cfg.cuhk03.use_metric_cuhk03,
        'ranks': cfg.test.ranks, 'rerank': cfg.test.rerank,
        'export_ranking_results': cfg.test.export_ranking_results,
    }


# ------------------------------------------------------------------ Torchreid's scripts/main.py
def build_datamanager(cfg):
    return torchreid.data.ImageDataManager(**imagedata_kwargs(cfg))


def build_engine(cfg, datamanager, model, optimizer, scheduler):
    if cfg.loss.name == 'softmax':
        return torchreid.engine.ImageSoftmaxEngine(
            datamanager, model, optimizer=optimizer, scheduler=scheduler, use_gpu=cfg.use_gpu,
            label_smooth=cfg.loss.softmax.label_smooth)
    return torchreid.engine.ImageTripletEngine(
        datamanager, model, optimizer=optimizer, margin=cfg.loss.triplet.margin, weight_t=cfg.loss.triplet.weight_t,
        weight_x=cfg.loss.triplet.weight_x, scheduler=scheduler, use_gpu=cfg.use_gpu,
        label_smooth=cfg.loss.softmax.label_smooth)


def check_cfg(cfg):
    if cfg.loss.name == 'triplet' and cfg.loss.triplet.weight_x == 0:
        assert cfg.train.fixbase_epoch == 0, 'The output of classifier is not included in the computational graph'


def main(cfg):
    """scripts/main.py's body after argument parsing; returns what the test inspects."""
    set_random_seed(cfg.train.seed)
    check_cfg(cfg)
    log_name = 'test.log' if cfg.test.evaluate else 'train.log'
    console = sys.stdout
    sys.stdout = Logger(osp.join(cfg.data.save_dir, log_name))
    try:
        print('Show configuration\n{}\n'.format(cfg))
        print('** System info **\n{}\n'.format(collect_env_info()))
        datamanager = build_datamanager(cfg)
        print('Building model: {}'.format(cfg.model.name))
        model = torchreid.models.build_model(name=cfg.model.name, num_classes=datamanager.num_train_pids,
                                             loss=cfg.loss.name, pretrained=cfg.model.pretrained,
                                             use_gpu=cfg.use_gpu)
        num_params, flops = compute_model_complexity(model, (1, 3, cfg.data.height, cfg.data.width))
        print('Model complexity: params={:,} flops={:,}'.format(num_params, flops))
        if cfg.model.load_weights and check_isfile(cfg.model.load_weights):
            load_pretrained_weights(model, cfg.model.load_weights)
        optimizer = torchreid.optim.build_optimizer(model, **optimizer_kwargs(cfg))
        scheduler = torchreid.optim.build_lr_scheduler(optimizer, **lr_scheduler_kwargs(cfg))
        if cfg.model.resume and check_isfile(cfg.model.resume):
            cfg.train.start_epoch = resume_from_checkpoint(cfg.model.resume, model, optimizer=optimizer,
                                                           scheduler=scheduler)
        print('Building {}-engine for {}-reid'.format(cfg.loss.name, cfg.data.type))
        engine = build_engine(cfg, datamanager, model, optimizer, scheduler)
        engine.run(**engine_run_kwargs(cfg))
    finally:
        sys.stdout.close()
        sys.stdout = console
    return engine, (num_params, flops)


@pytest.fixture(autouse=True)
def quick_env_report(monkeypatch):
    """main() prints collect_env_info() as Torchreid's does; PyTorch's report takes ~7 s (it runs pip and
    nvidia-smi), so the script flow gets a stub (collect_env_info itself is tested in tests/utils)."""
    monkeypatch.setattr(sys.modules[__name__], 'collect_env_info', lambda: 'PyTorch environment (stub)')


def _checkpoints(save_dir):
    model_dir = osp.join(save_dir, 'model')
    return sorted(f for f in os.listdir(model_dir) if f.startswith('model.pth.tar-')) if osp.isdir(model_dir) else []


@pytest.mark.parametrize('loss', ['softmax', 'triplet'])
def test_torchreid_main_flow_runs_unchanged(tiny_root, tmp_path, loss):
    cfg = get_default_config()
    cfg.use_gpu = torch.cuda.is_available()
    cfg.data.root = tiny_root
    cfg.data.save_dir = str(tmp_path / 'log')
    cfg.loss.name = loss
    if loss == 'triplet':   # sn-reid's baseline recipe: P x K sampling, both losses
        cfg.sampler.train_sampler = 'RandomIdentitySampler'
        cfg.sampler.num_instances = 2
        cfg.loss.triplet.weight_x = 1.
    engine, (num_params, flops) = main(cfg)
    assert num_params > 0 and flops > 0
    assert _checkpoints(cfg.data.save_dir) == ['model.pth.tar-1']
    assert open(osp.join(cfg.data.save_dir, 'train.log')).read().startswith('Show configuration')

    # test-only run from the trained weights (Torchreid: model.load_weights + test.evaluate), with the
    # sn-reid ranking export; engine.test() returns rank-1 as in Torchreid
    cfg.model.load_weights = osp.join(cfg.data.save_dir, 'model', 'model.pth.tar-1')
    cfg.test.evaluate = True
    cfg.test.export_ranking_results = True
    engine, _ = main(cfg)
    rank1 = engine.test()
    assert isinstance(rank1, float) and 0.0 <= rank1 <= 1.0
    assert any(f.startswith('ranking_results_') for _, _, files in os.walk(cfg.data.save_dir) for f in files)


def test_torchreid_resume_flow(tiny_root, tmp_path):
    cfg = get_default_config()
    cfg.use_gpu = False
    cfg.data.root = tiny_root
    cfg.data.save_dir = str(tmp_path / 'log')
    main(cfg)
    cfg.model.resume = osp.join(cfg.data.save_dir, 'model', 'model.pth.tar-1')
    cfg.train.max_epoch = 2
    main(cfg)
    assert cfg.train.start_epoch == 1   # resume_from_checkpoint returned the epochs done
    assert _checkpoints(cfg.data.save_dir) == ['model.pth.tar-1', 'model.pth.tar-2']


# ------------------------------------------------------------------ README / user guide
def make_market_folder(root, num_ids=6, seed=0):
    """A tiny Market-1501 folder: per identity 2 train images (cameras 1 and 2), a query (camera 1) and two
    gallery images (cameras 2 and 3); each identity has its own colour."""
    rng = np.random.default_rng(seed)
    base = osp.join(root, 'market1501', 'Market-1501-v15.09.15')
    for folder in ('bounding_box_train', 'bounding_box_test', 'query'):
        os.makedirs(osp.join(base, folder), exist_ok=True)
    k = 0
    for pid in range(1, num_ids + 1):
        colour = rng.integers(0, 256, 3)
        for folder, cams in (('bounding_box_train', (1, 2)), ('query', (1,)), ('bounding_box_test', (2, 3))):
            for cam in cams:
                pixels = np.clip(colour + rng.integers(-20, 21, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(osp.join(base, folder, f'{pid:04d}_c{cam}s1_{k:06d}_00.jpg'))
                k += 1


def test_readme_thirty_second_example_feature_extractor_and_visrank(tmp_path):
    root = str(tmp_path / 'reid-data')
    make_market_folder(root)
    save_dir = str(tmp_path / 'log' / MODEL)
    torch.manual_seed(0)
    # README "Get started: 30 seconds to Torchreid" (sizes tiny, pretrained off: offline)
    datamanager = torchreid.data.ImageDataManager(
        root=root, sources='market1501', targets='market1501', height=HEIGHT, width=WIDTH,
        batch_size_train=4, batch_size_test=8, transforms=['random_flip', 'random_crop'], workers=0)
    model = torchreid.models.build_model(name=MODEL, num_classes=datamanager.num_train_pids, loss='softmax',
                                         pretrained=False)
    optimizer = torchreid.optim.build_optimizer(model, optim='adam', lr=0.0003)
    scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler='single_step', stepsize=20)
    engine = torchreid.engine.ImageSoftmaxEngine(datamanager, model, optimizer=optimizer, scheduler=scheduler,
                                                 label_smooth=True)
    engine.run(save_dir=save_dir, max_epoch=1, eval_freq=1, print_freq=10, test_only=False)
    weights = osp.join(save_dir, 'model', 'model.pth.tar-1')
    assert osp.isfile(weights)

    # user guide: "Visualize ranking results" (test_only + visrank)
    engine.run(save_dir=save_dir, test_only=True, visrank=True, visrank_topk=3)
    vis_dir = osp.join(save_dir, 'visrank_market1501')
    assert len([f for f in os.listdir(vis_dir) if f.endswith(('.png', '.jpg'))]) == 6   # one picture per query

    # README "Feature extraction" with the trained weights
    from torchreid.utils import FeatureExtractor

    extractor = FeatureExtractor(model_name=MODEL, model_path=weights, device='cpu', image_size=(HEIGHT, WIDTH))
    query_dir = osp.join(root, 'market1501', 'Market-1501-v15.09.15', 'query')
    image_list = [osp.join(query_dir, f) for f in sorted(os.listdir(query_dir))]
    features = extractor(image_list)
    assert features.shape == (6, 512)
    # the extractor reproduces the engine's model on the same weights
    model.eval()
    reference = torchreid.utils.FeatureExtractor(model=model, device='cpu', image_size=(HEIGHT, WIDTH))(image_list)
    torch.testing.assert_close(features, reference, atol=1e-5, rtol=1e-4)


class ConcatFlipEngine(torchreid.engine.ImageSoftmaxEngine):
    """Torchreid's extension point: a subclass overrides ``extract_features(self, input)``."""

    calls = 0

    def extract_features(self, input):
        type(self).calls += 1
        return torch.cat([self.model(input), self.model(input.flip(-1))], dim=1)


def test_engine_subclass_overrides_extract_features(tmp_path):
    root = str(tmp_path / 'reid-data')
    make_market_folder(root)
    datamanager = torchreid.data.ImageDataManager(root=root, sources='market1501', height=HEIGHT, width=WIDTH,
                                                  batch_size_train=4, batch_size_test=8, workers=0)
    model = torchreid.models.build_model(name=MODEL, num_classes=datamanager.num_train_pids, pretrained=False)
    optimizer = torchreid.optim.build_optimizer(model, optim='sgd', lr=0.01)
    engine = ConcatFlipEngine(datamanager, model, optimizer=optimizer)
    rank1 = engine.test()
    assert isinstance(rank1, float) and ConcatFlipEngine.calls >= 2   # query and gallery batches
    results = engine.last_test_results
    assert results is not None
