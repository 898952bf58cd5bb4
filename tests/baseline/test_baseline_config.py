"""The baseline's configuration: sn-reid files load unchanged; bad keys and values give clear errors."""
import os.path as osp
import textwrap

import pytest

from .helpers import CONFIG_DIR, load_default_config, load_main

dc = load_default_config()

# Every key of sn-reid's default configuration, written as an sn-reid user would (values changed from the
# defaults so the test sees them arrive).
SNREID_YAML = """
model:
  name: 'resnet50_fc512'
  pretrained: True
  load_weights: ''
  resume: ''
data:
  type: 'image'
  root: 'datasets'
  sources: ['soccernetv3']
  targets: ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge']
  workers: 2
  split_id: 0
  height: 256
  width: 128
  combineall: False
  transforms: ['random_flip']
  k_tfm: 1
  norm_mean: [0.485, 0.456, 0.406]
  norm_std: [0.229, 0.224, 0.225]
  save_dir: 'log/snreid'
  load_train_targets: False
  eval_metric: 'soccernetv3'
market1501:
  use_500k_distractors: False
cuhk03:
  labeled_images: False
  classic_split: False
soccernetv3:
  training_subset: 0.01
sampler:
  train_sampler: 'RandomIdentitySampler'
  train_sampler_t: 'RandomIdentitySampler'
  num_instances: 4
  num_cams: 1
  num_datasets: 1
video:
  seq_len: 15
  sample_method: 'evenly'
  pooling_method: 'avg'
train:
  optim: 'adam'
  lr: 0.0003
  weight_decay: 5e-4
  max_epoch: 10
  start_epoch: 0
  batch_size: 32
  fixbase_epoch: 0
  open_layers: ['classifier']
  staged_lr: False
  new_layers: ['classifier']
  base_lr_mult: 0.1
  lr_scheduler: 'single_step'
  stepsize: [20]
  gamma: 0.1
  print_freq: 10
  seed: 1
sgd:
  momentum: 0.9
  dampening: 0.
  nesterov: False
rmsprop:
  alpha: 0.99
adam:
  beta1: 0.9
  beta2: 0.999
loss:
  name: 'triplet'
  softmax:
    label_smooth: True
  triplet:
    margin: 0.3
    weight_t: 0.5
    weight_x: 0.5
test:
  batch_size: 100
  dist_metric: 'euclidean'
  normalize_feature: False
  ranks: [1]
  evaluate: False
  eval_freq: -1
  start_eval: 0
  rerank: False
  visrank: False
  visrank_topk: 10
  export_ranking_results: True
"""


def build(argv):
    main = load_main()
    return main.build_config(main.build_parser().parse_args(argv))


def write(tmp_path, text, name='cfg.yaml'):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_snreid_config_file_loads_unchanged(tmp_path):
    path = write(tmp_path, SNREID_YAML)
    cfg = build(['--config-file', path])
    assert cfg.model.name == 'resnet50_fc512'
    assert cfg.data.targets == ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge']
    assert cfg.soccernetv3.training_subset == 0.01
    assert cfg.loss.triplet.weight_t == 0.5 and cfg.loss.triplet.weight_x == 0.5
    assert cfg.train.weight_decay == 5e-4 and isinstance(cfg.train.weight_decay, float)  # YAML reads 5e-4 as str
    assert cfg.sgd.dampening == 0.0
    assert cfg.test.ranks == [1] and cfg.test.export_ranking_results is True
    assert cfg.data.workers == 2 and cfg.train.print_freq == 10
    # The translated kwargs carry what the library needs.
    data_kw = dc.imagedata_kwargs(cfg)
    assert data_kw['soccernetv3_training_subset'] == 0.01
    assert data_kw['train_sampler'] == 'RandomIdentitySampler' and data_kw['num_instances'] == 4
    assert data_kw['num_pids_per_action'] == 4  # our key, absent from the sn-reid file: its default
    assert dc.imagedata_kwargs(build(['sampler.num_pids_per_action', '0']))['num_pids_per_action'] is None
    assert dc.optimizer_kwargs(cfg)['adam_beta2'] == 0.999
    assert dc.lr_scheduler_kwargs(cfg)['stepsize'] == [20]
    run_kw = dc.engine_run_kwargs(cfg)
    assert run_kw['export_ranking_results'] is True and run_kw['ranks'] == [1]
    assert run_kw['test_only'] is False and run_kw['save_dir'] == 'log/snreid'


def test_shipped_configs_load():
    for name in ('baseline_config.yaml', 'demo.yaml'):
        cfg = build(['--config-file', osp.join(CONFIG_DIR, name)])
        assert cfg.data.targets == ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'], name
        assert cfg.test.export_ranking_results, name
    strong = build(['--config-file', osp.join(osp.dirname(osp.dirname(CONFIG_DIR)), '..', 'configs',
                                              'strong.yaml')])
    assert strong.model.bnneck and strong.loss.triplet.action_aware
    assert strong.sampler.train_sampler == 'RandomActionSampler'
    assert strong.test.inverted_softmax and not strong.test.rerank
    run_kwargs = dc.engine_run_kwargs(strong)
    assert (run_kwargs['inverted_softmax'], run_kwargs['inverted_softmax_temperature']) == (True, 0.3)
    baseline = build(['--config-file', osp.join(CONFIG_DIR, 'baseline_config.yaml')])
    assert baseline.model.name == 'resnet50_fc512' and baseline.soccernetv3.training_subset == 0.01
    assert (baseline.loss.name, baseline.loss.triplet.margin) == ('triplet', 0.3)
    assert (baseline.train.batch_size, baseline.train.max_epoch, baseline.train.lr) == (32, 10, 0.0003)


def test_command_line_overrides(tmp_path):
    path = write(tmp_path, SNREID_YAML)
    # As in Torchreid, the list switches take every word up to the next switch.
    cfg = build(['--config-file', path, '-s', 'soccernetv3', '-t', 'soccernetv3_test', '--transforms',
                 'random_flip', 'random_erase', '--root', '/data', 'train.max_epoch', '3', 'train.lr', '1e-3',
                 'test.ranks', '[1, 5]', 'model.pretrained', 'False', 'train.stepsize', '5'])
    assert cfg.data.root == '/data' and cfg.data.targets == ['soccernetv3_test']
    assert cfg.data.transforms == ['random_flip', 'random_erase']
    assert cfg.train.max_epoch == 3 and cfg.train.lr == 1e-3 and cfg.test.ranks == [1, 5]
    assert cfg.model.pretrained is False
    assert cfg.train.stepsize == [5]  # a scalar where sn-reid has a list is read as a one-item list


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path, """
    train:
      max_epochs: 5
    """)
    with pytest.raises(dc.ConfigError) as err:
        build(['--config-file', path])
    msg = str(err.value)
    assert 'train.max_epochs' in msg and path in msg and 'did you mean train.max_epoch' in msg


def test_unknown_section_and_command_line_key(tmp_path):
    path = write(tmp_path, "optimizer:\n  lr: 0.1\n")
    with pytest.raises(dc.ConfigError, match=r"'optimizer'"):
        build(['--config-file', path])
    with pytest.raises(dc.ConfigError, match=r"command line: unknown config key 'test\.rerank_k3'.*test\.rerank_k2"):
        build(['test.rerank_k3', '5'])
    with pytest.raises(dc.ConfigError, match='pairs'):
        build(['train.lr'])


@pytest.mark.parametrize('key, value, words', [
    ('loss.name', 'arcface', ['loss.name', "'softmax'", "'triplet'", 'arcface']),
    ('sampler.train_sampler', 'RandomCameraSampler', ['sampler.train_sampler', 'RandomActionSampler']),
    ('test.dist_metric', 'manhattan', ['test.dist_metric', "'cosine'"]),
    ('device', 'gpu0', ['device', "'cuda:N'"]),
    ('train.optim', 'lamb', ['train.optim', "'sgd'"]),
    ('train.lr_scheduler', 'poly', ['train.lr_scheduler', "'cosine'"]),
    ('data.height', '-8', ['data.height', 'positive']),
    ('train.batch_size', '0', ['train.batch_size', 'positive']),
    ('soccernetv3.training_subset', '1.5', ['soccernetv3.training_subset', '(0, 1]']),
    ('data.synthetic_preset', 'huge', ['data.synthetic_preset', "'demo'"]),
    ('train.mixed_precision', 'int8', ['train.mixed_precision', "'bf16'"]),
    ('train.checkpoint_metric', 'rank5', ['train.checkpoint_metric', "'mAP'"]),
    ('model.name', 'resnet5O', ['model.name', 'resnet50']),
    ('data.sources', 'soccernet', ['data.sources', 'soccernetv3_test']),
    ('data.targets', "['soccernetv3', 'market']", ['data.targets', "'market'", 'market1501']),
    ('data.transforms', "['random_flip', 'random_erasing']", ['data.transforms', 'random_erase']),
    ('train.cosine_delay_epochs', '-1', ['train.cosine_delay_epochs', 'non-negative']),
    ('sampler.num_pids_per_action', '1', ['sampler.num_pids_per_action', '0 (whole actions) or >= 2']),
    ('test.inverted_softmax_temperature', '0.0', ['test.inverted_softmax_temperature', '> 0']),
    ('test.inverted_softmax_temperature', '1e999', ['test.inverted_softmax_temperature', 'finite']),
])
def test_bad_values_name_key_and_allowed_values(key, value, words):
    with pytest.raises(dc.ConfigError) as err:
        build([key, value])
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_wrong_types_name_key(tmp_path):
    path = write(tmp_path, "train:\n  max_epoch: ten\n")
    with pytest.raises(dc.ConfigError, match=r'train\.max_epoch must be an integer'):
        build(['--config-file', path])
    with pytest.raises(dc.ConfigError, match=r'model\.pretrained must be true or false'):
        build(['model.pretrained', '3'])


def test_cross_key_rules():
    with pytest.raises(dc.ConfigError, match='fixbase_epoch'):
        build(['loss.name', 'triplet', 'loss.triplet.weight_x', '0.0', 'train.fixbase_epoch', '2'])
    with pytest.raises(dc.ConfigError, match='num_instances'):
        build(['train.batch_size', '2', 'sampler.num_instances', '4'])
    with pytest.raises(dc.ConfigError, match='action_aware'):
        build(['loss.name', 'softmax', 'loss.triplet.action_aware', 'True'])
    with pytest.raises(dc.ConfigError, match='video'):
        build(['data.type', 'video'])
    with pytest.raises(dc.ConfigError, match=r'train\.warmup_epochs \(2\) \+ train\.cosine_delay_epochs \(8\).*'
                                             r'train\.max_epoch \(10\)'):
        build(['train.lr_scheduler', 'cosine', 'train.max_epoch', '10', 'train.warmup_epochs', '2',
               'train.cosine_delay_epochs', '8'])
    # The delay only shapes the cosine: a step schedule accepts any value.
    build(['train.max_epoch', '10', 'train.warmup_epochs', '2', 'train.cosine_delay_epochs', '8'])


def test_missing_config_file_and_cli_exit_code(tmp_path, capsys):
    with pytest.raises(dc.ConfigError, match='not found'):
        build(['--config-file', str(tmp_path / 'nope.yaml')])
    main = load_main()
    assert main.cli(['loss.name', 'arcface']) == 2
    assert 'loss.name' in capsys.readouterr().err
