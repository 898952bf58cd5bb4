"""Train and / or evaluate a ReID model from a configuration file (sn-reid's baseline entry point).

    python benchmarks/baseline/main.py --config-file benchmarks/baseline/configs/baseline_config.yaml \
        --root datasets [KEY VALUE ...]

The configuration is built as in Torchreid / sn-reid: defaults (``default_config.py``), then the YAML file,
then ``-s/-t/--transforms/--root``, then trailing ``KEY VALUE`` pairs (``train.max_epoch 5``). Unknown keys
and invalid values stop the run with a message naming the key (and the file).

The run builds the data manager, model, optimizer, scheduler and engine; trains (or, with ``test.evaluate
True``, only tests the weights of ``model.load_weights`` / ``model.resume``); evaluates every target with
the metric its dataset declares; writes the log (``<save_dir>/train.log-<time>`` or ``test.log-<time>``),
checkpoints, TensorBoard events, ranked-result pictures (``test.visrank``) and, with
``test.export_ranking_results``, ``ranking_results_<target>_<time>.json`` per target. Every exported
ranking whose ground truth is on disk is scored again with the stand-alone evaluator
(:func:`torchreid.metrics.evaluate_ranking_file`) and both numbers are printed: they must agree.

``main(argv=[...])`` can be called from Python; it returns the results (see :func:`main`).
"""
import argparse
import datetime
import logging
import os
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
if HERE not in sys.path:  # default_config sits beside this file (sn-reid's layout)
    sys.path.insert(0, HERE)
_REPO = osp.dirname(osp.dirname(HERE))
if osp.isdir(osp.join(_REPO, 'torchreid')) and _REPO not in sys.path:  # run from a checkout, not installed
    sys.path.insert(1, _REPO)

from default_config import (ConfigError, apply_checkpoint_description, check_cfg,  # noqa: E402
                            check_registered_names, engine_kwargs, engine_run_kwargs, get_default_config,
                            imagedata_kwargs, lr_scheduler_kwargs, margin_classifier_kwargs, merge_from_file,
                            merge_from_list, model_kwargs, optimizer_kwargs, resolve_normalization,
                            videodata_kwargs)

logger = logging.getLogger('torchreid.baseline')

# Tolerance for "the engine's numbers and the evaluator's agree" (both are exact float64 averages).
AGREEMENT_TOL = 1e-6


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config-file', type=str, default='', help='path to the YAML config file')
    parser.add_argument('-s', '--sources', type=str, nargs='+', help='source datasets (delimited by space)')
    parser.add_argument('-t', '--targets', type=str, nargs='+', help='target datasets (delimited by space)')
    parser.add_argument('--transforms', type=str, nargs='+', help='data augmentation')
    parser.add_argument('--root', type=str, default='', help='path to the data root')
    parser.add_argument('--allow-unsafe-pickle', action='store_true',
                        help='read weight files that need full unpickling (legacy Torchreid checkpoints; '
                             'unpickling can run code from the file: only for files you trust); the same as '
                             'model.allow_unsafe_pickle True')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error (by default one message is printed)')
    parser.add_argument('opts', default=None, nargs=argparse.REMAINDER,
                        help='modify config options with KEY VALUE pairs (e.g. train.max_epoch 5)')
    return parser


#: Keys holding paths; ``{repo}`` in them is the repository root, so a config can name paths that resolve the
#: same from any working directory (the shipped configs do). Other relative paths are relative to the working
#: directory, as in Torchreid.
PATH_KEYS = (('data', 'root'), ('data', 'save_dir'), ('model', 'load_weights'), ('model', 'resume'))
REPO_PLACEHOLDER = '{repo}'


def expand_paths(cfg):
    """Replace ``{repo}`` in the path keys by the repository root and expand ``~``."""
    for group, key in PATH_KEYS:
        value = cfg[group][key]
        if value:
            cfg[group][key] = osp.expanduser(value.replace(REPO_PLACEHOLDER, _REPO))


def build_config(args):
    """Defaults <- YAML file <- command-line switches <- KEY VALUE pairs; then checked and frozen."""
    cfg = get_default_config()
    if args.config_file:
        merge_from_file(cfg, args.config_file)
    if args.root:
        cfg.data.root = args.root
    if args.sources:
        cfg.data.sources = list(args.sources)
    if args.targets:
        cfg.data.targets = list(args.targets)
    if args.transforms:
        cfg.data.transforms = list(args.transforms)
    if args.allow_unsafe_pickle:
        cfg.model.allow_unsafe_pickle = True
    merge_from_list(cfg, args.opts or [])
    expand_paths(cfg)
    check_cfg(cfg)
    check_registered_names(cfg)
    resolve_normalization(cfg)  # data.norm_mean / norm_std [] = 'auto': the model's pretrained normalisation
    cfg.freeze()
    return cfg


def prepare_synthetic_data(cfg):
    """Generate the synthetic SoccerNet-v3 set under ``data.root`` when ``data.synthetic_preset`` asks."""
    if not cfg.data.synthetic_preset:
        return None
    from torchreid.synthetic import generate_dataset

    t0 = time.time()
    # A complete set of the same preset and seed returns at once; a different or partial one raises.
    path = generate_dataset(cfg.data.root, preset=cfg.data.synthetic_preset, seed=cfg.data.synthetic_seed)
    logger.info('Synthetic data (%s, seed %d) ready at %s (%.1f s)', cfg.data.synthetic_preset,
                cfg.data.synthetic_seed, path, time.time() - t0)
    return path


def _holds_a_run(save_dir):
    """True when ``save_dir`` holds the checkpoints or TensorBoard events of an earlier training run."""
    from torchreid.utils import list_checkpoints

    if list_checkpoints(osp.join(save_dir, 'model')) or osp.isfile(osp.join(save_dir, 'model', 'model-best.pth.tar')):
        return True
    return osp.isdir(save_dir) and any(n.startswith('events.out.tfevents') for n in os.listdir(save_dir))


def _remove_earlier_run(save_dir):
    """``train.overwrite True``: remove what an earlier run wrote that a new one would mix with (checkpoints,
    TensorBoard events); logs, rankings and pictures carry time stamps and stay."""
    removed = []
    model_dir = osp.join(save_dir, 'model')
    for folder, prefixes in ((model_dir, ('model.pth.tar-', 'model-best.pth.tar')),
                             (save_dir, ('events.out.tfevents',))):
        if osp.isdir(folder):
            for name in sorted(os.listdir(folder)):
                path = osp.join(folder, name)
                if name.startswith(prefixes) and osp.isfile(path):
                    os.remove(path)
                    removed.append(path)
    return removed


def choose_save_dir(cfg):
    """The folder this run writes to: ``data.save_dir``, unless it holds an earlier training run and this is a
    new one (not a resume, not test-only): then the first free ``<save_dir>-2``, ``-3``, ... so runs never mix
    checkpoints or curves. ``train.overwrite True`` replaces the earlier run's checkpoints and curves instead."""
    save_dir = cfg.data.save_dir
    if cfg.test.evaluate or cfg.model.resume or not _holds_a_run(save_dir):
        return save_dir, None
    if cfg.train.overwrite:
        removed = _remove_earlier_run(save_dir)
        return save_dir, (f'train.overwrite True: removed the {len(removed)} checkpoint / TensorBoard files of '
                          f'the earlier run in {save_dir}')
    base = save_dir.rstrip('/\\')
    n = 2
    while _holds_a_run(f'{base}-{n}'):
        n += 1
    new = f'{base}-{n}'
    return new, (f'{save_dir} holds an earlier run: this run writes to {new} (resume the earlier one with '
                 f'model.resume, or replace it with train.overwrite True)')


def auto_resume_checkpoint(cfg, restarted=False):
    """``train.auto_resume True`` or a torchrun elastic restart (``restarted``): ``(save_dir, checkpoint)`` of
    the newest epoch checkpoint among ``data.save_dir`` and its numbered siblings (``<save_dir>-2``, ...: the
    folder an earlier attempt of this run chose), or None (nothing to resume: a fresh run). Never for test-only
    runs or with ``model.resume`` set."""
    if cfg.test.evaluate or cfg.model.resume or not (cfg.train.auto_resume or restarted):
        return None
    from torchreid.utils import list_checkpoints

    base = cfg.data.save_dir.rstrip('/\\')
    folders, n = [cfg.data.save_dir], 2
    while osp.isdir(f'{base}-{n}'):
        folders.append(f'{base}-{n}')
        n += 1
    found = []
    for folder in folders:
        checkpoints = list_checkpoints(osp.join(folder, 'model'))
        if checkpoints:
            found.append((osp.getmtime(checkpoints[-1][1]), folder, checkpoints[-1][1]))
    if not found:
        return None
    _, folder, path = max(found)
    return folder, path


def non_default_settings(cfg):
    """``[(key, value)]`` of the settings that differ from the defaults, in the config's order."""
    defaults = get_default_config()
    changed = []

    def walk(node, default, prefix):
        for key, value in node.items():
            full = prefix + key
            if isinstance(value, dict):
                walk(value, default.get(key, {}) if isinstance(default, dict) else {}, full + '.')
            elif not isinstance(default, dict) or key not in default or default[key] != value:
                changed.append((full, value))

    walk(cfg, defaults, '')
    return changed


def write_config(cfg, save_dir):
    """The full configuration of the run, as YAML loadable with --config-file, written atomically."""
    from torchreid.utils.io import atomic_write

    path = osp.join(save_dir, 'config.yaml')
    with atomic_write(path) as f:
        f.write(cfg.dump())
    return path


def compute_threads(cfg):
    """Torch's compute threads: ``num_threads``, or with 0 (the default) the cores the loader workers leave
    free (at least one): on a small CPU, compute threads that fight the workers for cores make a run slower."""
    if cfg.num_threads:
        return cfg.num_threads
    import torch

    from torchreid.data.datamanager import available_cpus, usable_workers

    return max(1, min(torch.get_num_threads(), available_cpus() - usable_workers(cfg.data.workers)))


def _console_handler():
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter('%(message)s'))
    handler.setLevel(logging.INFO)
    return handler


def build_engine(cfg, datamanager, model, optimizer, scheduler):
    import torchreid

    kwargs = engine_kwargs(cfg)
    if cfg.data.type == 'video':
        kwargs['pooling_method'] = cfg.video.pooling_method
        kwargs.pop('action_aware', None)  # one action per image: not defined for tracklets
        engine_class = (torchreid.engine.VideoSoftmaxEngine if cfg.loss.name == 'softmax'
                        else torchreid.engine.VideoTripletEngine)
    elif cfg.loss.name == 'metric':
        from torchreid.engine.metric import ImageMetricEngine

        engine_class = ImageMetricEngine
    else:
        engine_class = (torchreid.engine.ImageSoftmaxEngine if cfg.loss.name == 'softmax'
                        else torchreid.engine.ImageTripletEngine)
    return engine_class(datamanager, model, optimizer=optimizer, scheduler=scheduler, **kwargs)


def _targets_ground_truth(datamanager):
    """``{target: ground-truth JSON path or None}`` as each dataset found it on disk."""
    found = {}
    for name, loaders in datamanager.test_loader.items():
        found[name] = getattr(loaders['query'].dataset, 'ground_truth_path', None)
    return found


def score_exported_rankings(results, ground_truth):
    """Score each exported ranking with the stand-alone evaluator; compare with the engine's numbers."""
    from torchreid.metrics import evaluate_ranking_file

    for name, res in results.items():
        res['evaluator'] = None
        res['agree'] = None
        path, gt = res.get('ranking_path'), ground_truth.get(name)
        if not path:
            continue
        if not gt:
            logger.info('%s: ranking exported to %s (no ground truth on disk to score it)', name, path)
            continue
        scored = evaluate_ranking_file(path, gt)
        res['evaluator'] = {k: scored[k] for k in ('mAP', 'rank-1', 'mINP', 'num_queries') if k in scored}
        res['ground_truth_path'] = gt
        if res.get('mAP') is None:  # hidden labels: only the evaluator (synthetic challenge labels) scores it
            logger.info('%s: the engine does not see this split\'s labels (hidden, as on the challenge server), '
                        'but ground truth is on disk (the synthetic challenge split ships it): the evaluator '
                        'scores the exported ranking: mAP %.2f%%  rank-1 %.2f%%', name, 100 * scored['mAP'],
                        100 * scored['rank-1'])
            continue
        agree = (abs(scored['mAP'] - res['mAP']) <= AGREEMENT_TOL
                 and abs(scored['rank-1'] - res['rank1']) <= AGREEMENT_TOL)
        res['agree'] = agree
        logger.log(logging.DEBUG if agree else logging.WARNING,  # agreement is in the final table
                   '%s: engine mAP %.4f%% rank-1 %.4f%% | evaluator (%s) mAP %.4f%% rank-1 %.4f%% -> %s', name,
                   100 * res['mAP'], 100 * res['rank1'], osp.basename(path), 100 * scored['mAP'],
                   100 * scored['rank-1'], 'agree' if agree else 'DISAGREE')
    return results


def format_table(results):
    """The exported rankings scored again by the stand-alone evaluator, beside the engine's numbers (the
    engine has already printed its own results table; this one is the check that both agree)."""
    def pct(v):
        return '-' if v is None else f'{100 * v:.2f}'

    lines = ['| target | engine mAP | evaluator mAP | engine rank-1 | evaluator rank-1 | check |',
             '|---|---|---|---|---|---|']
    for name, res in results.items():
        ev = res.get('evaluator') or {}
        if not ev:
            check = 'not exported' if not res.get('ranking_path') else 'no ground truth on disk'
        elif res.get('agree') is None:
            check = 'labels hidden from the engine: evaluator only'
        else:
            check = 'agree' if res['agree'] else 'DISAGREE'
        lines.append(f"| {name} | {pct(res.get('mAP'))} | {pct(ev.get('mAP'))} | {pct(res.get('rank1'))} | "
                     f"{pct(ev.get('rank-1'))} | {check} |")
    return '\n'.join(lines)


def _check_eval_metric_compat(cfg, datamanager):
    for name, loaders in datamanager.test_loader.items():
        declared = getattr(loaders['query'].dataset, 'eval_metric', 'default')
        if declared != cfg.data.eval_metric:
            logger.info('data.eval_metric=%r is kept for compatibility only: %s declares %r, which is used',
                        cfg.data.eval_metric, name, declared)


class WeightsNotLoadedError(RuntimeError):
    """A test-only run whose weights are missing or did not load: its scores would be a random network's."""


def check_weights_to_test(cfg):
    """Refuse a test-only run without weights to test (it would score a random network), unless the ImageNet
    weights are what the user wants scored (``model.pretrained True``: said loudly)."""
    if not cfg.test.evaluate or cfg.model.load_weights or cfg.model.resume or cfg.model.ensemble:
        return
    if not cfg.model.pretrained:
        raise WeightsNotLoadedError(
            'test.evaluate True without model.load_weights or model.resume would score a randomly initialised '
            'network: give the weights to test (model.load_weights <file>), or set model.pretrained True to '
            'score ImageNet features')
    logger.warning('test.evaluate True without model.load_weights / model.resume: scoring %s with its ImageNet '
                   'weights, NOT trained for re-identification', cfg.model.name)


def tested_checkpoint(cfg):
    """``(path, checkpoint)`` of a test-only run's self-describing checkpoint, or ``(path or '', None)``.

    A file that does not describe its model (a Torchreid checkpoint, a bare state dict, one the safe loader
    refuses) is loaded the way it always was: into the model the configuration names.
    """
    path = cfg.model.load_weights or (cfg.model.resume if cfg.test.evaluate else '')
    if not cfg.test.evaluate or not path:
        return path, None
    from torchreid.models import CheckpointError, ModelSpec
    from torchreid.utils import load_checkpoint

    from torchreid.models.weights import is_safetensors_file

    if is_safetensors_file(path):  # tensors only: weights for the model the configuration names
        return path, None
    try:
        checkpoint = load_checkpoint(path, weights_only=not cfg.model.allow_unsafe_pickle)
    except RuntimeError as exc:
        if 'weights_only' not in str(exc):
            raise
        from torchreid.models.weights import UNSAFE_PICKLE_OPT_IN, UnsafeWeightsFileError

        raise UnsafeWeightsFileError(
            f'{path}: refused: the file holds Python objects beyond tensors, and unpickling them can run code. '
            f'If you trust the file, allow it with {UNSAFE_PICKLE_OPT_IN}; better, convert it once to '
            f'safetensors (python scripts/convert_weights.py {path} --allow-unsafe-pickle).') from None
    if not isinstance(checkpoint, dict) or not checkpoint.get('model_spec'):
        logger.info('%s does not describe its model: the model is built from the configuration (%s)', path,
                    cfg.model.name)
        return path, None
    try:
        ModelSpec.from_dict(checkpoint['model_spec'])
    except ValueError as exc:
        raise CheckpointError(f'checkpoint "{path}": invalid model_spec: {exc}') from None
    return path, checkpoint


def main(argv=None):
    """Run the baseline; returns a dict.

    ``{'targets': {target: {'mAP', 'rank1', 'mINP', 'cmc', 'ranks', 'eval_metric', 'hidden_labels',
    'num_queries', 'ranking_path', 'evaluator' (the stand-alone evaluator's numbers or None), 'agree'}},
    'save_dir', 'log_file', 'checkpoints' ([(epoch, path)]), 'start_epoch', 'max_epoch', 'test_only',
    'history' (per-epoch training averages), 'elapsed_s', 'config' (the frozen CfgNode)}``.
    """
    args = build_parser().parse_args(argv)
    cfg = build_config(args)

    from torchreid.utils import distributed as tdist

    # Under torchrun (WORLD_SIZE > 1) join the process group: one process per GPU (NCCL) or CPU worker (gloo).
    joined_here, device = tdist.init_distributed(cfg.device)
    try:
        if tdist.is_distributed():
            cfg.defrost()
            cfg.device = str(device)
            cfg.freeze()
        decision = None
        if tdist.is_main_process():  # rank 0 decides the folder (and what to resume); every rank follows
            resumed = auto_resume_checkpoint(cfg, restarted=tdist.elastic_restart_count() > 0)
            if resumed is not None:
                cfg.defrost()
                cfg.data.save_dir, cfg.model.resume = resumed
                cfg.freeze()
            decision = (cfg.data.save_dir, cfg.model.resume, choose_save_dir(cfg), resumed)
        saved_in, resume_from, (save_dir, save_dir_note), resumed = tdist.broadcast_object(decision)
        cfg.defrost()
        cfg.data.save_dir, cfg.model.resume = saved_in, resume_from
        if save_dir != cfg.data.save_dir:
            cfg.data.save_dir = save_dir
        cfg.freeze()
        try:
            return _run(cfg, save_dir_note, resumed)
        except KeyboardInterrupt as exc:
            exc.save_dir = cfg.data.save_dir  # the folder this run chose, for the resume hint
            raise
    finally:
        if joined_here:
            tdist.destroy_distributed()


def _run(cfg, save_dir_note, resumed):
    """The run of :func:`main` once the configuration, the folder and the process group are settled."""
    import torch
    import torchreid
    from torchreid.utils import (count_num_param, list_checkpoints, load_pretrained_weights, remove_logging,
                                 set_random_seed, setup_logging)
    from torchreid.utils import distributed as tdist

    main_rank = tdist.is_main_process()  # only rank 0 writes the log and the configuration
    t_start = time.time()
    stamp = datetime.datetime.now().strftime('%Y-%m-%d-%H-%M-%S')
    log_name = ('test.log-' if cfg.test.evaluate else 'train.log-') + stamp
    lib_logger = logging.getLogger('torchreid')
    file_handler = setup_logging(cfg.data.save_dir, log_name) if main_rank else None
    console = _console_handler()
    if main_rank:
        lib_logger.addHandler(console)
    threads_before = torch.get_num_threads()
    try:
        if save_dir_note:
            logger.warning(save_dir_note)
        if resumed is not None:
            logger.info('Resuming this run automatically (train.auto_resume or a torchrun restart) from %s',
                        resumed[1])
        settings = non_default_settings(cfg)
        logger.info('Configuration (%d settings differ from the defaults; all of them are in %s):\n%s',
                    len(settings), write_config(cfg, cfg.data.save_dir) if main_rank else '-',
                    '\n'.join(f'  {key}: {value!r}' for key, value in settings) or '  (none)')
        torch.set_num_threads(compute_threads(cfg))
        check_weights_to_test(cfg)
        if main_rank:
            prepare_synthetic_data(cfg)
        tdist.barrier()  # rank 0 has generated the data the others read
        weights_path, checkpoint = tested_checkpoint(cfg)
        ensemble = None
        if cfg.model.ensemble:
            # Test only, several checkpoints at once: the data are prepared as the first member's.
            from torchreid.engine.ensemble import build_ensemble_from_checkpoints

            ensemble, checkpoint = build_ensemble_from_checkpoints(list(cfg.model.ensemble), cfg.model.ensemble_mode)
            weights_path = cfg.model.ensemble[0]
        if checkpoint is not None:
            # Test only: the checkpoint says which model it holds and how its inputs were prepared.
            cfg, overridden = apply_checkpoint_description(cfg, checkpoint, source=weights_path)
            for key, given, recorded in overridden:
                logger.warning('%s: the configuration says %r, the checkpoint %s was trained with %r: using %r',
                               key, given, weights_path, recorded, recorded)
        # Seeded after the data generation, so a run that generates the data and one that finds it
        # on disk train identically.
        set_random_seed(cfg.train.seed)

        if cfg.data.type == 'video':
            datamanager = torchreid.data.VideoDataManager(**videodata_kwargs(cfg))
        else:
            datamanager = torchreid.data.ImageDataManager(**imagedata_kwargs(cfg))
        _check_eval_metric_compat(cfg, datamanager)

        if ensemble is not None:
            logger.info('Evaluating an ensemble of %d checkpoints (features L2-normalised, %s)', len(ensemble.members),
                        'concatenated' if cfg.model.ensemble_mode == 'concat' else 'averaged')
            model = ensemble
        elif checkpoint is not None:
            from torchreid.optim.ema import evaluation_checkpoint

            logger.info('Rebuilding the model recorded in %s: %s %s', weights_path, checkpoint['model_spec']['name'],
                        checkpoint['model_spec']['kwargs'])
            model = torchreid.models.build_model_from_checkpoint(evaluation_checkpoint(checkpoint),
                                                                 source=weights_path)
        else:
            logger.info('Building model: %s', cfg.model.name)
            model = torchreid.models.build_model(**model_kwargs(cfg, datamanager.num_train_pids))
            if cfg.model.load_weights:
                report = load_pretrained_weights(model, cfg.model.load_weights,
                                                 allow_unsafe_pickle=cfg.model.allow_unsafe_pickle)
                if cfg.test.evaluate and not report.complete:
                    raise WeightsNotLoadedError(
                        f'model.load_weights {cfg.model.load_weights}: the file does not hold the weights of '
                        f'{cfg.model.name} ({report}); testing it would score a partly random network. Check '
                        f'model.name (and the architecture keys) against the model the file was trained with.')
            if cfg.loss.classifier != 'linear':  # a CosFace / ArcFace head, before the optimizer sees the model
                from torchreid.engine.metric import use_margin_classifier

                use_margin_classifier(model, num_classes=datamanager.num_train_pids, **margin_classifier_kwargs(cfg))
        logger.info('Model size: %.3f M parameters', count_num_param(model) / 1e6)
        optimizer = torchreid.optim.build_optimizer(model, **optimizer_kwargs(cfg))
        scheduler = torchreid.optim.build_lr_scheduler(optimizer, **lr_scheduler_kwargs(cfg))
        engine = build_engine(cfg, datamanager, model, optimizer, scheduler)
        logger.info('Building %s (device %s)', type(engine).__name__, engine.device)
        if cfg.train.ema_decay and not cfg.test.evaluate:  # before a resume, which restores it
            engine.use_ema(cfg.train.ema_decay, cfg.train.ema_warmup_updates)

        run_kwargs = engine_run_kwargs(cfg)
        start_epoch = cfg.train.start_epoch
        if cfg.model.resume:
            # weights, optimizer, scheduler, RNG states and best metric; in test-only mode the weights
            # are what is tested
            start_epoch = engine.resume(cfg.model.resume)
            run_kwargs['start_epoch'] = start_epoch
            logger.info('Resumed from "%s" (%d epochs done)', cfg.model.resume, start_epoch)
        results = engine.run(**run_kwargs)
        if results is None:
            results = {}
        results = {name: dict(res) for name, res in results.items()}
        if main_rank:
            score_exported_rankings(results, _targets_ground_truth(datamanager))

        if any(res.get('evaluator') for res in results.values()):
            logger.info('Exported rankings scored again by the stand-alone evaluator (%s)\n%s',
                        'test only' if cfg.test.evaluate else f'{cfg.train.max_epoch} epochs', format_table(results))
        disagree = [n for n, r in results.items() if r.get('agree') is False]
        if disagree:
            logger.warning('The engine and the evaluator disagree on %s', ', '.join(disagree))
        elapsed = time.time() - t_start
        logger.info('Total time %s', datetime.timedelta(seconds=round(elapsed)))
        return {
            'targets': results,
            'save_dir': cfg.data.save_dir,
            'log_file': file_handler.baseFilename if file_handler is not None else None,
            'checkpoints': list_checkpoints(osp.join(cfg.data.save_dir, 'model')),
            'start_epoch': start_epoch,
            'max_epoch': cfg.train.max_epoch,
            'test_only': cfg.test.evaluate,
            'history': list(engine.history),
            'elapsed_s': elapsed,
            'config': cfg,
        }
    finally:
        torch.set_num_threads(threads_before)
        lib_logger.removeHandler(console)
        remove_logging(file_handler)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def resume_hint(argv, save_dir=None):
    """What to type to resume the run ``argv`` describes, from the last checkpoint in ``save_dir`` (the folder
    the run chose: ``data.save_dir`` or a numbered sibling of it)."""
    import shlex

    from torchreid.utils import list_checkpoints

    if save_dir is None:
        try:
            save_dir = build_config(build_parser().parse_args(argv)).data.save_dir
        except (ConfigError, SystemExit):
            return ''
    found = list_checkpoints(osp.join(save_dir, 'model'))
    if not found:
        return 'No checkpoint was written yet: run the same command again to start over.'
    epoch, path = found[-1]
    args = list(argv)
    for key in ('model.resume', 'data.save_dir'):  # replaced below; everything else stays as typed
        if key in args[:-1]:
            i = args.index(key)
            del args[i:i + 2]
    command = shlex.join([sys.executable, osp.relpath(osp.abspath(__file__)), *args, 'data.save_dir', save_dir,
                          'model.resume', path])
    return f'The last checkpoint is epoch {epoch} ({path}). To resume from it:\n  {command}'


def cli(argv=None):
    """The command line: the run's errors are one message on stderr and a non-zero exit code (2: the
    configuration, 1: anything else, 130: interrupted), the traceback only with ``--debug``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = '--debug' in argv
    try:
        main(argv)
    except ConfigError as exc:
        if debug:
            raise
        print(f'Configuration error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if debug:
            raise
        print(f'\nInterrupted. {resume_hint(argv, getattr(exc, "save_dir", None))}', file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line's one place to turn errors into messages
        if debug:
            raise
        from torchreid.utils.cli import error_message

        print(f'Error: {error_message(exc)}\n(run again with --debug to see the traceback)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    from torchreid.utils.distributed import exit_process

    exit_process(cli())  # sys.exit, or, under torchrun, an exit that a lingering gloo thread cannot abort
