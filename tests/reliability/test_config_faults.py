"""Bad configuration values are refused at the start, naming the key and the rule (never hours later)."""
import importlib
import os.path as osp
import sys

import pytest

BASELINE_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'benchmarks', 'baseline')


def load_default_config():
    if BASELINE_DIR not in sys.path:
        sys.path.insert(0, BASELINE_DIR)
    return importlib.import_module('default_config')


def build(tmp_path, yaml_text=None, opts=()):
    dc = load_default_config()
    cfg = dc.get_default_config()
    if yaml_text is not None:
        path = tmp_path / 'cfg.yaml'
        path.write_text(yaml_text)
        dc.merge_from_file(cfg, str(path))
    dc.merge_from_list(cfg, list(opts))
    dc.check_cfg(cfg)
    return cfg


def refused(tmp_path, *needles, yaml_text=None, opts=()):
    with pytest.raises(load_default_config().ConfigError) as info:
        build(tmp_path, yaml_text, opts)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    return str(info.value)


@pytest.mark.parametrize('value', ['inf', '-inf', 'nan', '1e10'])
def test_learning_rate_not_finite_or_absurd(tmp_path, value):
    """fault: train.lr inf / nan / 1e10 -> expected: refused naming train.lr."""
    refused(tmp_path, 'train.lr', opts=['train.lr', value])


def test_non_finite_value_in_a_yaml_file(tmp_path):
    """fault: `.inf` for a float key in YAML -> expected: refused naming the key and the file."""
    message = refused(tmp_path, 'train.weight_decay', yaml_text='train:\n  weight_decay: .inf\n')
    assert 'cfg.yaml' in message


def test_duplicate_yaml_block(tmp_path):
    """fault: two `train:` blocks in one file (YAML keeps the last) -> expected: refused naming both lines."""
    text = 'train:\n  lr: 0.1\nloss:\n  name: triplet\ntrain:\n  max_epoch: 3\n'
    message = refused(tmp_path, "'train'", 'line 1', 'line 5', yaml_text=text)
    assert 'cfg.yaml' in message


def test_batch_size_one(tmp_path):
    """fault: train.batch_size 1 (BatchNorm cannot train on one sample) -> expected: refused."""
    refused(tmp_path, 'train.batch_size', opts=['train.batch_size', '1', 'sampler.train_sampler', 'RandomSampler'])


def test_one_instance_with_the_triplet_loss(tmp_path):
    """fault: sampler.num_instances 1 with the triplet loss (loss exactly 0) -> expected: refused."""
    refused(tmp_path, 'sampler.num_instances', opts=['loss.name', 'triplet', 'sampler.num_instances', '1'])


def test_valid_values_still_pass(tmp_path):
    cfg = build(tmp_path, 'train:\n  lr: 0.1\n', ['loss.name', 'triplet', 'sampler.num_instances', '2'])
    assert cfg.train.lr == 0.1


def test_a_rank_past_max_rank_is_reported(tmp_path):
    """fault: test.ranks [1, 100] with the default max_rank 50 -> expected: rank 100 computed and reported."""
    import numpy as np

    from torchreid.engine import EvalOptions
    from torchreid.metrics import build_evaluator
    from torchreid.metrics.evaluator import FeatureSet

    cfg = build(tmp_path, opts=['test.ranks', '[1, 100]'])
    options = EvalOptions(ranks=list(cfg.test.ranks))
    assert options.max_rank == 100
    # 120 gallery items, the true match of the one query ranked 80th: CMC@50 = 0, CMC@100 = 1.
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(120, 8)).astype(np.float32)
    query = np.zeros((1, 8), np.float32)
    order = np.argsort(((gallery - query) ** 2).sum(1), kind='stable')
    g_pids = np.arange(1, 121)
    g_pids[order[79]] = 0
    evaluator = build_evaluator('default', options.ranking, max_rank=options.max_rank)
    evaluation = evaluator.evaluate(FeatureSet(query, np.array([0]), np.array([0])),
                                    FeatureSet(gallery, g_pids, np.ones(120, dtype=int)))
    assert evaluation.summary(options.ranks)['ranks'] == {1: 0.0, 100: 1.0}
