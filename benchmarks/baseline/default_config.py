"""Configuration of the baseline (yacs), compatible with the configuration files of sn-reid / Torchreid.

Every key of the sn-reid baseline's configuration exists here with the same name, nesting and default, so a
YAML file written for sn-reid runs unchanged. Our additions (device, mixed precision, warm-up, the
action-aware sampler and triplet, per-action re-ranking options, synthetic data, ...) have defaults that keep
the organisers' behaviour.

The library itself takes plain keyword arguments; this module only translates a config into them
(``imagedata_kwargs``, ``optimizer_kwargs``, ``lr_scheduler_kwargs``, ``engine_run_kwargs``), as Torchreid's
``default_config.py`` does.

Loading is stricter than plain yacs: :func:`merge_from_file` and :func:`merge_from_list` raise a
:class:`ConfigError` that names the unknown key (and the file, with the closest valid names), and
:func:`check_cfg` rejects values outside their allowed set naming the key and the allowed values.

Notes on compatibility keys:

- ``data.eval_metric`` is accepted but every dataset declares how it is evaluated (``dataset.eval_metric``:
  SoccerNet-v3 targets use the same-action metric, Market-1501 the Market one); the engine asks the dataset,
  so this key no longer has to match the target. A value that disagrees with a target's declaration is
  logged and ignored.
- ``data.type: video`` trains and tests on Torchreid's video datasets (MARS, iLIDS-VID, PRID2011,
  DukeMTMC-VideoReID) with ``video.*`` (``seq_len``, ``sample_method``, ``pooling_method``), as in Torchreid.
- ``cuhk03.use_metric_cuhk03`` (Torchreid's key, removed by sn-reid) is accepted and keeps its Torchreid
  meaning: targets whose declared metric is ``'default'`` are scored with the CUHK03 protocol.
"""
import ast
import difflib
import math
import os.path as osp
import re

from yacs.config import CfgNode as CN

from torchreid.data.datasets.dataset import VERIFY_IMAGES_MODES
from torchreid.data.datasets.video import SAMPLE_METHODS as VIDEO_SAMPLE_METHODS
from torchreid.data.samplers import AVAILABLE_SAMPLERS
from torchreid.data.samplers import EPOCH_LENGTHS as SAMPLER_EPOCH_LENGTHS
from torchreid.engine.options import CHECKPOINT_METRICS as _LIB_CHECKPOINT_METRICS
from torchreid.engine.options import EvalOptions, TrainOptions
from torchreid.metrics import DIST_METRICS, EVAL_METRICS, OptionError, RankingOptions
from torchreid.models.registry import SUPPORTED_LOSSES
from torchreid.optim import AVAILABLE_LR_SCHEDULERS, AVAILABLE_OPTIMIZERS
from torchreid.synthetic import PRESETS

__all__ = [
    'ConfigError', 'get_default_config', 'merge_from_file', 'merge_from_list', 'check_cfg', 'check_registered_names',
    'ranking_options', 'apply_checkpoint_description',
    'imagedata_kwargs', 'videodata_kwargs', 'optimizer_kwargs', 'lr_scheduler_kwargs', 'engine_run_kwargs',
    'model_kwargs', 'engine_kwargs', 'metric_engine_kwargs', 'margin_classifier_kwargs', 'resolve_normalization',
    'SAMPLERS', 'LOSSES', 'DIST_METRICS', 'OPTIMIZERS',
    'LR_SCHEDULERS', 'EVAL_METRICS', 'SYNTHETIC_PRESETS', 'CHECKPOINT_METRICS', 'PRECISIONS',
]

# Allowed values (checked by check_cfg; the library re-checks its own arguments as well).
# The library's own lists where it has them, so the config cannot drift from what the library accepts.
SAMPLERS = AVAILABLE_SAMPLERS
EPOCH_LENGTHS = SAMPLER_EPOCH_LENGTHS
#: loss.name: the model's losses, and 'metric' (ImageMetricEngine: loss.metric.*; the model returns features)
LOSSES = (*SUPPORTED_LOSSES, 'metric')
ENSEMBLE_MODES = ('concat', 'mean')
OPTIMIZERS = AVAILABLE_OPTIMIZERS
LR_SCHEDULERS = AVAILABLE_LR_SCHEDULERS
SYNTHETIC_PRESETS = ('', *PRESETS)
CHECKPOINT_METRICS = (*_LIB_CHECKPOINT_METRICS, 'rank-1')
PRECISIONS = ('', 'auto', 'fp16', 'bf16')
DATA_TYPES = ('image', 'video')
#: The largest train.lr accepted: ReID recipes use 1e-5 .. 0.1; a larger value is a typo (an exponent lost).
MAX_LR = 10.0
_DEVICE = re.compile(r'^(auto|cpu|mps|cuda(:\d+)?)$')


class ConfigError(ValueError):
    """A configuration key or value that is not valid; the message names the key (and the file)."""


def get_default_config():
    cfg = CN()

    # --- model
    cfg.model = CN()
    cfg.model.name = 'resnet50'
    cfg.model.pretrained = True  # ImageNet weights for the backbone (torchvision cache; needs them offline)
    cfg.model.load_weights = ''  # path to weights to load before training / testing
    cfg.model.resume = ''  # path to a checkpoint to resume training from
    cfg.model.bnneck = False  # ours: BNNeck head (features before BN for the triplet, after BN for testing)
    # ours: read weight files that need full unpickling (legacy Torchreid checkpoints). Unpickling can run code
    # from the file: only for files you trust (or convert them once: scripts/convert_weights.py).
    cfg.model.allow_unsafe_pickle = False
    # ours, transformers (timm/... models): input size of a ViT as [height, width] ([]: the model's own; set it
    # to [data.height, data.width] for non-square inputs), and gradient checkpointing (memory for compute)
    cfg.model.img_size = []
    cfg.model.grad_checkpointing = False
    # ours, test only: evaluate (and export) an ensemble of self-describing checkpoints at once, possibly of
    # different architectures, input sizes and normalisations: each member's features are L2-normalised, then
    # concatenated ('concat') or averaged ('mean', same dimension); the data follow the first member
    cfg.model.ensemble = []
    cfg.model.ensemble_mode = 'concat'

    # --- data
    cfg.data = CN()
    cfg.data.type = 'image'
    cfg.data.root = 'reid-data'
    cfg.data.sources = ['soccernetv3']
    cfg.data.targets = ['soccernetv3']
    cfg.data.workers = 4
    cfg.data.split_id = 0
    cfg.data.height = 256
    cfg.data.width = 128
    cfg.data.combineall = False
    cfg.data.transforms = ['random_flip']
    cfg.data.k_tfm = 1
    # ours: both empty ([]) = 'auto': the normalisation the model's pretrained weights expect (a timm model's
    # pretrained config, e.g. CLIP's; ImageNet's for the others); the checkpoint records what was used
    cfg.data.norm_mean = [0.485, 0.456, 0.406]
    cfg.data.norm_std = [0.229, 0.224, 0.225]
    cfg.data.save_dir = 'log'
    cfg.data.load_train_targets = False
    cfg.data.eval_metric = 'soccernetv3'  # compat only: each dataset declares its metric (see module doc)
    # ours: generate the synthetic SoccerNet-v3 set under data.root when it is missing ('' = never)
    cfg.data.synthetic_preset = ''
    cfg.data.synthetic_seed = 0
    # ours: checks made when the datasets are read, before any training (a bad file is found at once)
    cfg.data.check_ground_truth = True  # SoccerNet-v3: the thumbnails on disk against the ground truth
    cfg.data.verify_images = 'off'  # 'header': open every image file; 'full': decode every image

    # --- dataset-specific
    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False  # Torchreid: evaluate 'default'-metric targets with the CUHK03 protocol
    cfg.soccernetv3 = CN()
    cfg.soccernetv3.training_subset = 1.0  # fraction of the training actions used (first ones)

    # --- sampler
    cfg.sampler = CN()
    cfg.sampler.train_sampler = 'RandomIdentitySampler'
    cfg.sampler.train_sampler_t = 'RandomIdentitySampler'
    cfg.sampler.num_instances = 4  # K in P x K
    # RandomActionSampler: identities taken from each action of a batch (0: whole actions, fewest actions)
    cfg.sampler.num_pids_per_action = 4
    cfg.sampler.num_cams = 1
    # ours: one epoch of the identity / action samplers: 'identities' (Torchreid's: every identity once, with
    # num_instances images each) or 'images' (as many images as the training set holds)
    cfg.sampler.epoch_length = 'identities'
    cfg.sampler.num_datasets = 1

    # --- video (data.type 'video')
    cfg.video = CN()
    cfg.video.seq_len = 15
    cfg.video.sample_method = 'evenly'
    cfg.video.pooling_method = 'avg'

    # --- train
    cfg.train = CN()
    cfg.train.optim = 'adam'
    cfg.train.lr = 0.0003
    cfg.train.weight_decay = 5e-4
    cfg.train.max_epoch = 60
    cfg.train.start_epoch = 0
    # images per batch and per process: under torchrun the global batch is batch_size x the number of processes
    # (the log states both; scale train.lr with it if the recipe asks for the single-process global batch)
    cfg.train.batch_size = 32
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
    # ours: a new training run into a data.save_dir holding an earlier run writes to <save_dir>-2, -3, ...;
    # True replaces the earlier run's checkpoints and TensorBoard curves instead
    cfg.train.overwrite = False
    # ours
    cfg.train.warmup_epochs = 0  # linear warm-up from lr * warmup_factor
    cfg.train.warmup_factor = 0.1
    cfg.train.min_lr = 0.0  # floor of the cosine schedule
    cfg.train.cosine_delay_epochs = 0  # cosine: epochs at the full lr after the warm-up, before the decay
    # '' (fp32), 'fp16' (CUDA, with gradient scaling), 'bf16' (autocast), or 'auto': bf16 where the device runs it
    # natively (CPU with AVX512-BF16/AMX, CUDA with bf16 support), else fp32
    cfg.train.mixed_precision = ''
    cfg.train.channels_last = False
    cfg.train.grad_clip = 0.0  # max gradient L2 norm; 0 = off
    # ours, transformer fine-tuning: layer-wise lr decay (0 = off; e.g. 0.65 for ViT-B: each block below the head
    # trains at that factor of the one above it; implies no_decay_norm_bias), and no weight decay on norms,
    # biases, position embeddings and tokens
    cfg.train.layer_decay = 0.0
    cfg.train.no_decay_norm_bias = False
    # ours: exponential moving average of the weights (0 = off; e.g. 0.9998), updated after each optimizer step,
    # its decay warmed up over ema_warmup_updates steps; tests and exports use the averaged weights and the
    # checkpoints hold it (a test-only run and FeatureExtractor.from_checkpoint load the averaged weights)
    cfg.train.ema_decay = 0.0
    cfg.train.ema_warmup_updates = 2000
    # ours, data-parallel runs (torchrun; docs/distributed.md)
    cfg.train.sync_bn = False  # BatchNorm statistics over the global batch (SyncBatchNorm; CUDA only)
    cfg.train.grad_accum_steps = 1  # batches whose gradients are summed before each optimizer step
    # resume from the newest checkpoint of data.save_dir (or the newest of its numbered siblings) when there is
    # one; a torchrun elastic restart (--max-restarts) always does
    cfg.train.auto_resume = False
    # 'mAP' | 'rank1' | 'mINP' of the first labelled target -> model-best.pth.tar
    cfg.train.checkpoint_metric = TrainOptions.checkpoint_metric
    cfg.train.save_freq = TrainOptions.save_freq  # write a checkpoint every N epochs (and always after the last)
    # keep only the newest N epoch checkpoints (and model-best.pth.tar); 0 keeps all
    cfg.train.keep_last = TrainOptions.keep_last

    # --- optimizers
    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999

    # --- loss
    cfg.loss = CN()
    cfg.loss.name = 'softmax'  # 'softmax' | 'triplet' (sn-reid's meanings) | 'metric' (ours: loss.metric.* below)
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.0
    cfg.loss.triplet.weight_x = 0.0
    cfg.loss.triplet.action_aware = False  # ours: positives/negatives only within the anchor's action
    # ours: loss.name 'metric' trains any weighted sum of metric losses on the features (ImageMetricEngine):
    #   loss = sum_i weights[i] * losses[i] + weight_x * identity cross entropy
    # losses: 'infonce' / 'supcon' (in-batch supervised contrastive), 'triplet' (batch-hard, margin
    # loss.triplet.margin), 'centroid', 'circle'; weights: one per loss ([]: 1 each). With action_aware every
    # loss sees the batch's actions (camid): identities of other actions are neither positives nor negatives.
    cfg.loss.metric = CN()
    cfg.loss.metric.losses = ['infonce']
    cfg.loss.metric.weights = []
    cfg.loss.metric.weight_x = 0.0
    cfg.loss.metric.action_aware = True
    cfg.loss.metric.temperature = 0.07  # infonce / supcon: softmax temperature (the scale is 1 / temperature)
    cfg.loss.metric.learnable_scale = False  # infonce / supcon: learn the scale (CLIP's logit scale)
    cfg.loss.metric.label_smoothing = 0.0  # infonce / supcon
    cfg.loss.metric.centroid_mode = 'centroid'  # or 'triplet_centroid' (margin loss.triplet.margin)
    cfg.loss.metric.circle_margin = 0.25
    cfg.loss.metric.circle_gamma = 128.0
    # ours, loss.name 'metric': the identity classifier: the model's 'linear' layer, or a 'cosface' / 'arcface'
    # margin head in its place (scale and margin; 0 = the head's default: 64 and 0.35 / 0.5)
    cfg.loss.classifier = 'linear'
    cfg.loss.classifier_scale = 0.0
    cfg.loss.classifier_margin = 0.0
    # ours, data-parallel runs: the triplet loss mines over the embeddings of every process's batch
    cfg.loss.gather_embeddings = False

    # --- test (the ranking options and their defaults come from the library: torchreid.metrics.RankingOptions)
    eval_defaults = EvalOptions.defaults()
    cfg.test = CN()
    cfg.test.batch_size = 100
    cfg.test.ranks = list(eval_defaults['ranks'])
    cfg.test.evaluate = False  # test only
    cfg.test.eval_freq = TrainOptions.eval_freq  # -1: evaluate only after the last epoch
    cfg.test.start_eval = TrainOptions.start_eval
    cfg.test.visrank = eval_defaults['visrank']
    cfg.test.visrank_topk = eval_defaults['visrank_topk']
    cfg.test.export_ranking_results = eval_defaults['export_ranking_results']
    # dist_metric, normalize_feature, rerank (+ rerank_k1/_k2/_lambda), query_expansion (+ qe_k, qe_alpha),
    # inverted_softmax (+ inverted_softmax_temperature), and any registered ranking step
    for key, value in RankingOptions.flat_defaults().items():
        cfg.test[key] = value
    cfg.test.visrank_max_queries = 100  # ranked-result pictures drawn per target
    # ours: flip test-time averaging: the features of each image and of its mirror, averaged (before the
    # normalisation of test.normalize_feature)
    cfg.test.flip_test = eval_defaults['flip_test']

    # --- ours: where to run ('auto' = CUDA when available, else CPU)
    cfg.device = 'auto'
    # ours: CPU threads for torch's intra-op parallelism. 0 = the CPU cores the loader workers leave free
    # (at least 1, at most torch's default): compute threads fighting the workers for cores slow a run down.
    cfg.num_threads = 0
    return cfg


# ----------------------------------------------------------------------------------------------------------
# Loading with clear errors

def _suggest(key, node, prefix=''):
    names = list(node.keys())
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    hint = f'; did you mean {", ".join(prefix + c for c in close)}?' if close else '.'
    return f'{hint} Valid keys {"under " + prefix.rstrip(".") if prefix else "at the top level"}: ' \
           f'{", ".join(sorted(names))}'


def _coerce(value, default, full_key, where):
    """Coerce a value read from a file/command line to the type of the default (yacs is stricter).

    Text is read as a Python literal where the default is not text (as yacs does: ``5e-4``, which YAML
    leaves as a string, becomes a float); ints become floats where the default is a float, and a scalar
    becomes a one-item list where the default is a list.
    """
    if isinstance(value, str) and not isinstance(default, str):
        value = _decode(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f'{where}: {full_key} must be true or false, got {value!r}')
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f'{where}: {full_key} must be a finite number, got {value!r}')
            return float(value)
        raise ConfigError(f'{where}: {full_key} must be a number, got {value!r}')
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f'{where}: {full_key} must be an integer, got {value!r}')
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if value is None:
            return ''
        raise ConfigError(f'{where}: {full_key} must be a string, got {value!r}')
    if isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            value = list(value)
        elif value is None:
            value = []
        else:  # `sources: soccernetv3` or `stepsize: 20` mean a one-item list
            value = [value]
        if default:  # the items take the type of the default's items
            return [_coerce(v, default[0], f'{full_key}[{i}]', where) for i, v in enumerate(value)]
        return value
    return value


def _merge_dict(cfg, data, where, prefix=''):
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: {prefix or "the top level"} must be a mapping of keys, got {data!r}')
    for key, value in data.items():
        full_key = f'{prefix}{key}'
        if not isinstance(key, str) or key not in cfg:
            raise ConfigError(f'{where}: unknown config key {full_key!r}{_suggest(str(key), cfg, prefix)}')
        if isinstance(cfg[key], CN):
            if value is None:
                continue
            _merge_dict(cfg[key], value, where, full_key + '.')
        else:
            cfg[key] = _coerce(value, cfg[key], full_key, where)


def _unique_key_loader():
    """A ``yaml.SafeLoader`` that refuses a mapping with the same key twice (plain YAML keeps the last one, so
    a second ``train:`` block would silently drop the first)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f'key {key!r} appears twice in one block (first at line '
                        f'{seen[key].start_mark.line + 1}, again at line {key_node.start_mark.line + 1}): merge the '
                        f'two blocks, YAML would silently keep only the last', key_node.start_mark)
                seen[key] = key_node
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def merge_from_file(cfg, path):
    """Merge a YAML file into ``cfg``; unknown keys and wrong types raise ConfigError naming key and file."""
    import yaml

    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            loader = _unique_key_loader()(f)  # a yaml.SafeLoader: plain data only, never Python objects
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
        except yaml.YAMLError as exc:
            raise ConfigError(f'{path}: not valid YAML: {exc}') from None
    if data is None:
        return cfg
    _merge_dict(cfg, data, where=path)
    return cfg


def _decode(text):
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        # bare words (`adam`), yacs-style booleans written as lower case
        lowered = text.strip().lower()
        if lowered in ('true', 'false'):
            return lowered == 'true'
        return text


def merge_from_list(cfg, opts, where='command line'):
    """Merge ``KEY VALUE`` pairs (yacs style, values as Python literals) into ``cfg``."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f'{where}: options must come in KEY VALUE pairs, got an odd list: {opts}')
    for full_key, raw in zip(opts[0::2], opts[1::2]):
        node = cfg
        parts = full_key.split('.')
        for i, part in enumerate(parts):
            if part not in node:
                prefix = '.'.join(parts[:i]) + '.' if i else ''
                raise ConfigError(
                    f'{where}: unknown config key {full_key!r}{_suggest(part, node, prefix)}')
            if i < len(parts) - 1:
                node = node[part]
                if not isinstance(node, CN):
                    raise ConfigError(f'{where}: {".".join(parts[:i + 1])} is a value, not a group')
        if isinstance(node[parts[-1]], CN):
            raise ConfigError(f'{where}: {full_key} is a group of keys, set its members instead')
        node[parts[-1]] = _coerce(raw, node[parts[-1]], full_key, where)
    return cfg


# ----------------------------------------------------------------------------------------------------------
# Value checks

def _one_of(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f'{key} must be one of {", ".join(repr(a) for a in allowed)}; got {value!r}')


def _positive(key, value, allow_zero=False):
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f'{key} must be {"non-negative" if allow_zero else "positive"}; got {value!r}')


def check_cfg(cfg):
    """Reject values outside their allowed set; each error names the key and what is allowed."""
    _one_of('data.type', cfg.data.type, DATA_TYPES)
    if not cfg.data.sources:
        raise ConfigError('data.sources must name at least one dataset')
    if not cfg.data.targets:
        raise ConfigError('data.targets must name at least one dataset')
    _one_of('data.eval_metric', cfg.data.eval_metric, EVAL_METRICS)
    # checked by the library (each value once, where it is declared), errors naming the config key
    ranking_options(cfg)
    _checked_by(TrainOptions, TRAIN_OPTION_KEYS, _library_values(cfg, TRAIN_OPTION_KEYS))
    _checked_by(EvalOptions, EVAL_OPTION_KEYS, _library_values(cfg, EVAL_OPTION_KEYS))
    _one_of('data.synthetic_preset', cfg.data.synthetic_preset, SYNTHETIC_PRESETS)
    for key in ('data.height', 'data.width', 'data.k_tfm', 'train.batch_size', 'test.batch_size',
                'sampler.num_instances', 'sampler.num_cams', 'sampler.num_datasets', 'train.grad_accum_steps'):
        _positive(key, _value(cfg, key))
    for key in ('data.workers', 'train.warmup_epochs', 'train.cosine_delay_epochs', 'train.weight_decay',
                'train.grad_clip', 'train.min_lr', 'loss.triplet.margin', 'loss.triplet.weight_t',
                'loss.triplet.weight_x'):
        _positive(key, _value(cfg, key), allow_zero=True)
    _positive('train.lr', cfg.train.lr)
    if cfg.train.lr > MAX_LR:
        raise ConfigError(f'train.lr must be at most {MAX_LR:g} (a larger step diverges at once); got {cfg.train.lr!r}')
    if cfg.train.batch_size < 2 and not cfg.test.evaluate:
        raise ConfigError(f'train.batch_size must be at least 2 (BatchNorm needs two samples per batch in '
                          f'training); got {cfg.train.batch_size}')
    _positive('num_threads', cfg.num_threads, allow_zero=True)
    if not 0.0 < cfg.soccernetv3.training_subset <= 1.0:
        raise ConfigError(f'soccernetv3.training_subset must be in (0, 1]; got {cfg.soccernetv3.training_subset}')
    if cfg.train.lr_scheduler == 'cosine' and \
            cfg.train.warmup_epochs + cfg.train.cosine_delay_epochs >= cfg.train.max_epoch:
        raise ConfigError(
            f'train.warmup_epochs ({cfg.train.warmup_epochs}) + train.cosine_delay_epochs '
            f'({cfg.train.cosine_delay_epochs}) must be smaller than train.max_epoch ({cfg.train.max_epoch}) '
            'with the cosine schedule (it needs at least one epoch to decay)'
        )
    if not 0.0 < cfg.train.warmup_factor <= 1.0:
        raise ConfigError(f'train.warmup_factor must be in (0, 1]; got {cfg.train.warmup_factor}')
    if (cfg.data.norm_mean or cfg.data.norm_std) and (len(cfg.data.norm_mean) != 3 or len(cfg.data.norm_std) != 3):
        raise ConfigError("data.norm_mean and data.norm_std must have 3 values (RGB), or both be empty ('auto')")
    if any(s <= 0 for s in cfg.data.norm_std):
        raise ConfigError(f'data.norm_std must be positive; got {list(cfg.data.norm_std)}')
    _one_of('sampler.train_sampler', cfg.sampler.train_sampler, SAMPLERS)
    if cfg.sampler.num_pids_per_action == 1 or cfg.sampler.num_pids_per_action < 0:
        raise ConfigError(f'sampler.num_pids_per_action must be 0 (whole actions) or >= 2 (an identity needs a '
                          f'same-action negative); got {cfg.sampler.num_pids_per_action}')
    _one_of('sampler.train_sampler_t', cfg.sampler.train_sampler_t, SAMPLERS)
    _one_of('sampler.epoch_length', cfg.sampler.epoch_length, EPOCH_LENGTHS)
    _one_of('data.verify_images', cfg.data.verify_images, VERIFY_IMAGES_MODES)
    if cfg.data.type == 'video':
        _one_of('video.sample_method', cfg.video.sample_method, VIDEO_SAMPLE_METHODS)
        _one_of('video.pooling_method', cfg.video.pooling_method, ('avg', 'max'))
        _positive('video.seq_len', cfg.video.seq_len)
    if cfg.sampler.train_sampler in ('RandomIdentitySampler', 'RandomActionSampler') \
            and cfg.train.batch_size < cfg.sampler.num_instances:
        raise ConfigError(
            f'train.batch_size ({cfg.train.batch_size}) must be at least sampler.num_instances '
            f'({cfg.sampler.num_instances}) for {cfg.sampler.train_sampler}')
    if (cfg.loss.name == 'triplet' and cfg.loss.triplet.weight_t > 0 and cfg.sampler.num_instances < 2
            and cfg.sampler.train_sampler in ('RandomIdentitySampler', 'RandomActionSampler')):
        raise ConfigError(
            f'sampler.num_instances must be at least 2 with the triplet loss (a batch needs two images of an '
            f'identity to form a positive pair; with 1 the triplet loss is exactly 0); got '
            f'{cfg.sampler.num_instances}')
    _one_of('train.optim', cfg.train.optim, OPTIMIZERS)
    _one_of('train.lr_scheduler', cfg.train.lr_scheduler, LR_SCHEDULERS)
    if not cfg.train.stepsize or any(int(s) <= 0 for s in cfg.train.stepsize):
        raise ConfigError(f'train.stepsize must be a non-empty list of positive epochs; got {cfg.train.stepsize}')
    if cfg.train.gamma <= 0:
        raise ConfigError(f'train.gamma must be positive; got {cfg.train.gamma}')
    _one_of('train.mixed_precision', cfg.train.mixed_precision, PRECISIONS)
    _one_of('loss.name', cfg.loss.name, LOSSES)
    if not _DEVICE.match(cfg.device):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {cfg.device!r}")
    if cfg.loss.name == 'triplet' and cfg.loss.triplet.weight_x == 0 and cfg.train.fixbase_epoch > 0:
        # with no ID loss the classifier (the only open layer in fixbase) gets no gradient
        raise ConfigError('train.fixbase_epoch must be 0 when loss.name is triplet and loss.triplet.weight_x '
                          f'is 0 (got fixbase_epoch={cfg.train.fixbase_epoch})')
    if cfg.loss.name == 'triplet' and cfg.loss.triplet.weight_t == 0 and cfg.loss.triplet.weight_x == 0:
        raise ConfigError('loss.triplet.weight_t and loss.triplet.weight_x cannot both be 0')
    if cfg.loss.triplet.action_aware and cfg.loss.name != 'triplet':
        raise ConfigError("loss.triplet.action_aware needs loss.name 'triplet'")
    _check_sota_keys(cfg)
    return cfg


def _check_sota_keys(cfg):
    """The keys of the metric losses, margin heads, EMA, layer decay, ViT input and ensembles."""
    from torchreid.engine.metric import MARGIN_CLASSIFIERS, METRIC_LOSSES
    from torchreid.losses import CENTROID_MODES

    if bool(cfg.data.norm_mean) != bool(cfg.data.norm_std):  # both empty: 'auto' (resolve_normalization)
        raise ConfigError('data.norm_mean and data.norm_std: set both (3 values each) or leave both empty '
                          "([]: 'auto', the model's pretrained normalisation)")
    metric = cfg.loss.metric
    if cfg.loss.name == 'metric' and cfg.data.type == 'video':
        raise ConfigError("loss.name 'metric' trains image models (data.type 'image')")
    if cfg.loss.name == 'metric':
        if not metric.losses:
            raise ConfigError(f'loss.metric.losses must name at least one loss of {", ".join(METRIC_LOSSES)}')
        for name in metric.losses:
            _one_of('loss.metric.losses[]', name, METRIC_LOSSES)
        if len(set(metric.losses)) != len(metric.losses):
            raise ConfigError(f'loss.metric.losses lists a loss twice: {list(metric.losses)}')
        if metric.weights and len(metric.weights) != len(metric.losses):
            raise ConfigError(f'loss.metric.weights has {len(metric.weights)} values for {len(metric.losses)} '
                              f'losses {list(metric.losses)} (one weight per loss, or [] for 1 each)')
        if any(w < 0 for w in metric.weights) or metric.weight_x < 0:
            raise ConfigError('loss.metric.weights and loss.metric.weight_x must be >= 0')
        if sum(metric.weights or [1.0]) + metric.weight_x <= 0:
            raise ConfigError('loss.metric.weights and loss.metric.weight_x are all 0: nothing to train')
        if cfg.sampler.num_instances < 2 and cfg.sampler.train_sampler in ('RandomIdentitySampler',
                                                                          'RandomActionSampler',
                                                                          'RandomActionGameSampler'):
            raise ConfigError('sampler.num_instances must be at least 2 with loss.name metric (a positive pair '
                              f'per identity); got {cfg.sampler.num_instances}')
    _positive('loss.metric.temperature', metric.temperature)
    _one_of('loss.metric.centroid_mode', metric.centroid_mode, CENTROID_MODES)
    _one_of('loss.classifier', cfg.loss.classifier, MARGIN_CLASSIFIERS)
    if cfg.loss.classifier != 'linear' and (cfg.loss.name != 'metric' or metric.weight_x <= 0):
        raise ConfigError(f"loss.classifier {cfg.loss.classifier!r} needs loss.name 'metric' and "
                          'loss.metric.weight_x > 0 (the margin head is trained by the identity loss)')
    _positive('loss.classifier_scale', cfg.loss.classifier_scale, allow_zero=True)
    if not 0.0 <= cfg.loss.classifier_margin < 1.0:
        raise ConfigError(f'loss.classifier_margin must be in [0, 1); got {cfg.loss.classifier_margin}')
    if cfg.train.layer_decay and not 0.0 < cfg.train.layer_decay <= 1.0:
        raise ConfigError(f'train.layer_decay must be 0 (off) or in (0, 1]; got {cfg.train.layer_decay}')
    if cfg.train.layer_decay and cfg.train.staged_lr:
        raise ConfigError('train.layer_decay and train.staged_lr both set the lr of the pretrained layers: use one')
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f'train.ema_decay must be in [0, 1) (0: off); got {cfg.train.ema_decay}')
    _positive('train.ema_warmup_updates', cfg.train.ema_warmup_updates, allow_zero=True)
    if cfg.model.img_size and (len(cfg.model.img_size) != 2 or any(int(v) < 1 for v in cfg.model.img_size)):
        raise ConfigError(f'model.img_size must be [] or [height, width]; got {list(cfg.model.img_size)}')
    _one_of('model.ensemble_mode', cfg.model.ensemble_mode, ENSEMBLE_MODES)
    if cfg.model.ensemble:
        if not cfg.test.evaluate:
            raise ConfigError('model.ensemble is for test-only runs (test.evaluate True): train each member '
                              'on its own, then evaluate them together')
        if cfg.model.load_weights or cfg.model.resume:
            raise ConfigError('model.ensemble names the weights to test: leave model.load_weights and '
                              'model.resume empty')
        missing = [p for p in cfg.model.ensemble if not osp.isfile(p)]
        if missing:
            raise ConfigError(f'model.ensemble: no such file(s) {missing}')


def resolve_normalization(cfg):
    """Fill in ``data.norm_mean`` / ``data.norm_std`` (in place) when both are empty ('auto'): the
    normalisation of a timm model's pretrained config (CLIP's for CLIP towers), ImageNet's otherwise."""
    if cfg.data.norm_mean or cfg.data.norm_std:
        return cfg
    from torchreid.models.timm_backbone import timm_normalization

    norm = timm_normalization(cfg.model.name) or {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
    frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.data.norm_mean, cfg.data.norm_std = list(norm['mean']), list(norm['std'])
    if frozen:
        cfg.freeze()
    return cfg


def check_registered_names(cfg):
    """Dataset, model and transform names must be registered in the library (imports torchreid)."""
    from torchreid.data import AVAILABLE_TRANSFORMS, list_image_datasets, list_video_datasets
    from torchreid.models import is_model, list_models

    datasets = list_video_datasets() if cfg.data.type == 'video' else list_image_datasets()
    for key in ('sources', 'targets'):
        unknown = [n for n in cfg.data[key] if n not in datasets]
        if unknown:
            raise ConfigError(f'data.{key}: unknown {cfg.data.type} dataset(s) {unknown}; registered: '
                              f'{", ".join(datasets)}')
    models = list_models()
    if not is_model(cfg.model.name):
        close = difflib.get_close_matches(cfg.model.name, models, n=3)
        hint = f' (did you mean {", ".join(close)}?)' if close else ''
        raise ConfigError(f'model.name: unknown model {cfg.model.name!r}{hint}; available: {", ".join(models)}')
    unknown = [t for t in cfg.data.transforms if t not in AVAILABLE_TRANSFORMS]
    if unknown:
        raise ConfigError(f'data.transforms: unknown transform(s) {unknown}; '
                          f'available: {", ".join(AVAILABLE_TRANSFORMS)}')
    return cfg


# Engine.run keyword (a TrainOptions / EvalOptions field) -> config key. The library checks the values; the
# errors are reported under the config key.
TRAIN_OPTION_KEYS = {
    'max_epoch': 'train.max_epoch', 'start_epoch': 'train.start_epoch', 'print_freq': 'train.print_freq',
    'fixbase_epoch': 'train.fixbase_epoch', 'open_layers': 'train.open_layers', 'start_eval': 'test.start_eval',
    'eval_freq': 'test.eval_freq', 'save_freq': 'train.save_freq', 'keep_last': 'train.keep_last',
    'checkpoint_metric': 'train.checkpoint_metric',
}
EVAL_OPTION_KEYS = {
    'ranks': 'test.ranks', 'visrank': 'test.visrank', 'visrank_topk': 'test.visrank_topk',
    'visrank_max_queries': 'test.visrank_max_queries', 'export_ranking_results': 'test.export_ranking_results',
    'use_metric_cuhk03': 'cuhk03.use_metric_cuhk03', 'flip_test': 'test.flip_test',
}


def _value(cfg, key):
    node = cfg
    for part in key.split('.'):
        node = node[part]
    return node


def _library_values(cfg, keys):
    values = {option: _value(cfg, key) for option, key in keys.items()}
    if 'keep_last' in values:
        values['keep_last'] = values['keep_last'] or None       # the config's 0 = keep every checkpoint
    if 'open_layers' in values:
        values['open_layers'] = list(values['open_layers'])
    if 'ranks' in values:
        values['ranks'] = list(values['ranks'])
    return values


def _checked_by(build, keys, values):
    """``build(**values)``, its ValueError reported under the config key of the option it names."""
    try:
        return build(**values)
    except ValueError as exc:
        message = str(exc)
        for option, key in keys.items():
            for owner in ('TrainOptions', 'EvalOptions'):
                message = message.replace(f'{owner}.{option} ', f'{key} ')
        if message.startswith('checkpoint_metric '):
            message = 'train.' + message
        raise ConfigError(message) from None


def ranking_options(cfg):
    """The library's :class:`~torchreid.metrics.RankingOptions` of ``test.*`` (checked there, once)."""
    try:
        return RankingOptions.from_flat({key: cfg.test[key] for key in RankingOptions.flat_defaults()})
    except OptionError as exc:
        raise ConfigError(f'test.{exc}') from None


def apply_checkpoint_description(cfg, checkpoint, source=''):
    """A copy of ``cfg`` whose model and input settings are those a self-describing checkpoint records.

    A test-only run rebuilds the exact model it tests: architecture (``model.name``, ``model.bnneck``), input
    size (``data.height``, ``data.width``) and normalisation (``data.norm_mean``, ``data.norm_std``) come from
    the checkpoint. Returns ``(cfg, overridden)`` where ``overridden`` lists ``(key, config value, checkpoint
    value)`` for the keys the configuration had set to something else than both its default and the checkpoint.
    """
    from torchreid.models import checkpoint_input_size, checkpoint_normalization

    spec = checkpoint['model_spec']
    values = {'model.name': spec['name'], 'model.bnneck': bool(spec['kwargs'].get('bnneck', False))}
    size = checkpoint_input_size(checkpoint, source=source)
    if size is not None:
        values['data.height'], values['data.width'] = int(size[0]), int(size[1])
    norm = checkpoint_normalization(checkpoint, source=source)
    if norm is not None:
        values['data.norm_mean'], values['data.norm_std'] = list(norm['mean']), list(norm['std'])
    defaults = get_default_config()
    out = cfg.clone()
    out.defrost()
    overridden = []
    for key, value in values.items():
        group, name = key.split('.')
        current = out[group][name]
        if current != value and current != defaults[group][name]:
            overridden.append((key, current, value))
        out[group][name] = value
    out.freeze()
    return out, overridden


# ----------------------------------------------------------------------------------------------------------
# Config -> library keyword arguments

def _data_kwargs(cfg):
    """The keyword arguments ImageDataManager and VideoDataManager share (Torchreid's names)."""
    return {
        'root': cfg.data.root,
        'sources': list(cfg.data.sources),
        'targets': list(cfg.data.targets),
        'height': cfg.data.height,
        'width': cfg.data.width,
        'transforms': list(cfg.data.transforms),
        'norm_mean': list(cfg.data.norm_mean),
        'norm_std': list(cfg.data.norm_std),
        'device': cfg.device,
        'split_id': cfg.data.split_id,
        'combineall': cfg.data.combineall,
        'batch_size_train': cfg.train.batch_size,
        'batch_size_test': cfg.test.batch_size,
        'workers': cfg.data.workers,
        'num_instances': cfg.sampler.num_instances,
        'num_cams': cfg.sampler.num_cams,
        'num_datasets': cfg.sampler.num_datasets,
        'train_sampler': cfg.sampler.train_sampler,
        'seed': cfg.train.seed,
    }


def imagedata_kwargs(cfg):
    return {
        **_data_kwargs(cfg),
        'k_tfm': cfg.data.k_tfm,
        'load_train_targets': cfg.data.load_train_targets,
        'num_pids_per_action': cfg.sampler.num_pids_per_action or None,
        'train_sampler_t': cfg.sampler.train_sampler_t,
        'cuhk03_labeled': cfg.cuhk03.labeled_images,
        'cuhk03_classic_split': cfg.cuhk03.classic_split,
        'market1501_500k': cfg.market1501.use_500k_distractors,
        'soccernetv3_training_subset': cfg.soccernetv3.training_subset,
        'epoch_length': cfg.sampler.epoch_length,
        'check_ground_truth': cfg.data.check_ground_truth,
        'verify_images': cfg.data.verify_images,
    }


def videodata_kwargs(cfg):
    return {
        **_data_kwargs(cfg),
        'seq_len': cfg.video.seq_len,
        'sample_method': cfg.video.sample_method,
    }


def model_kwargs(cfg, num_classes):
    kwargs = {
        'name': cfg.model.name,
        'num_classes': num_classes,
        'loss': cfg.loss.name,
        'pretrained': cfg.model.pretrained,
    }
    if cfg.model.bnneck:  # only passed when on, so models without the option still build by default
        kwargs['bnneck'] = True
    if cfg.model.allow_unsafe_pickle:  # idem: only factories that read local weight files know it
        kwargs['allow_unsafe_pickle'] = True
    if cfg.loss.name == 'metric':  # the model returns (logits, features) in training
        kwargs['loss'] = 'triplet'
    if cfg.model.img_size:  # timm ViTs (idem: only passed when set)
        kwargs['img_size'] = tuple(int(v) for v in cfg.model.img_size)
    if cfg.model.grad_checkpointing:
        kwargs['grad_checkpointing'] = True
    return kwargs


def optimizer_kwargs(cfg):
    return {
        'optim': cfg.train.optim,
        'lr': cfg.train.lr,
        'weight_decay': cfg.train.weight_decay,
        'momentum': cfg.sgd.momentum,
        'sgd_dampening': cfg.sgd.dampening,
        'sgd_nesterov': cfg.sgd.nesterov,
        'rmsprop_alpha': cfg.rmsprop.alpha,
        'adam_beta1': cfg.adam.beta1,
        'adam_beta2': cfg.adam.beta2,
        'staged_lr': cfg.train.staged_lr,
        'new_layers': list(cfg.train.new_layers),
        'base_lr_mult': cfg.train.base_lr_mult,
        'layer_decay': cfg.train.layer_decay or None,
        'no_decay_norm_bias': cfg.train.no_decay_norm_bias,
    }


def lr_scheduler_kwargs(cfg):
    return {
        'lr_scheduler': cfg.train.lr_scheduler,
        'stepsize': list(cfg.train.stepsize),
        'gamma': cfg.train.gamma,
        'max_epoch': cfg.train.max_epoch,
        'warmup_epochs': cfg.train.warmup_epochs,
        'warmup_factor': cfg.train.warmup_factor,
        'min_lr': cfg.train.min_lr,
        'cosine_delay_epochs': cfg.train.cosine_delay_epochs,
    }


def engine_kwargs(cfg):
    """Keyword arguments of the engine's constructor beyond data manager, model, optimizer, scheduler."""
    kwargs = {
        'device': cfg.device,
        'label_smooth': cfg.loss.softmax.label_smooth,
        'mixed_precision': cfg.train.mixed_precision or None,
        'channels_last': cfg.train.channels_last,
        'grad_clip': cfg.train.grad_clip or None,
        'sync_bn': cfg.train.sync_bn,
        'grad_accum_steps': cfg.train.grad_accum_steps,
        'gather_embeddings': cfg.loss.gather_embeddings,
    }
    if cfg.loss.name == 'metric':
        kwargs.update(metric_engine_kwargs(cfg))
    if cfg.loss.name == 'triplet':
        kwargs.update(margin=cfg.loss.triplet.margin, weight_t=cfg.loss.triplet.weight_t,
                      weight_x=cfg.loss.triplet.weight_x, action_aware=cfg.loss.triplet.action_aware)
    return kwargs


def metric_engine_kwargs(cfg):
    """``ImageMetricEngine`` keywords of ``loss.metric.*``: each loss gets the options it takes."""
    metric = cfg.loss.metric
    per_loss = {
        'triplet': {'margin': cfg.loss.triplet.margin},
        'supcon': {'temperature': metric.temperature, 'learnable_scale': metric.learnable_scale,
                   'label_smoothing': metric.label_smoothing},
        'centroid': {'mode': metric.centroid_mode, 'margin': cfg.loss.triplet.margin},
        'circle': {'margin': metric.circle_margin, 'gamma': metric.circle_gamma},
    }
    per_loss['infonce'] = per_loss['supcon']
    return {'metric_losses': list(metric.losses), 'metric_weights': list(metric.weights) or None,
            'metric_options': {name: per_loss[name] for name in metric.losses}, 'weight_x': metric.weight_x,
            'action_aware': metric.action_aware}


def margin_classifier_kwargs(cfg):
    """``use_margin_classifier`` keywords of ``loss.classifier*`` (0 = the head's default)."""
    return {'kind': cfg.loss.classifier, 'scale': cfg.loss.classifier_scale or None,
            'margin': cfg.loss.classifier_margin or None}


def engine_run_kwargs(cfg):
    return {
        'save_dir': cfg.data.save_dir,
        'test_only': cfg.test.evaluate,
        **_library_values(cfg, TRAIN_OPTION_KEYS),
        **_library_values(cfg, EVAL_OPTION_KEYS),
        **{key: cfg.test[key] for key in RankingOptions.flat_defaults()},
        'config': cfg,
    }
