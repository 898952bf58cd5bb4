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
                            imagedata_kwargs, lr_scheduler_kwargs, merge_from_file, merge_from_list, model_kwargs,
                            optimizer_kwargs)

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
    parser.add_argument('opts', default=None, nargs=argparse.REMAINDER,
                        help='modify config options with KEY VALUE pairs (e.g. train.max_epoch 5)')
    return parser


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
    merge_from_list(cfg, args.opts or [])
    check_cfg(cfg)
    check_registered_names(cfg)
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


def _console_handler():
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter('%(message)s'))
    handler.setLevel(logging.INFO)
    return handler


def build_engine(cfg, datamanager, model, optimizer, scheduler):
    import torchreid

    kwargs = engine_kwargs(cfg)
    if cfg.loss.name == 'softmax':
        return torchreid.engine.ImageSoftmaxEngine(datamanager, model, optimizer=optimizer, scheduler=scheduler,
                                                   **kwargs)
    return torchreid.engine.ImageTripletEngine(datamanager, model, optimizer=optimizer, scheduler=scheduler,
                                               **kwargs)


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
            logger.info('%s: exported ranking scored by the evaluator: mAP %.2f%%  rank-1 %.2f%%', name,
                        100 * scored['mAP'], 100 * scored['rank-1'])
            continue
        agree = (abs(scored['mAP'] - res['mAP']) <= AGREEMENT_TOL
                 and abs(scored['rank-1'] - res['rank1']) <= AGREEMENT_TOL)
        res['agree'] = agree
        logger.log(logging.INFO if agree else logging.WARNING,
                   '%s: engine mAP %.4f%% rank-1 %.4f%% | evaluator (%s) mAP %.4f%% rank-1 %.4f%% -> %s', name,
                   100 * res['mAP'], 100 * res['rank1'], osp.basename(path), 100 * scored['mAP'],
                   100 * scored['rank-1'], 'agree' if agree else 'DISAGREE')
    return results


def format_table(results):
    def pct(v):
        return '-' if v is None else f'{100 * v:.2f}'

    lines = ['| target | metric | mAP | rank-1 | mINP | evaluator mAP | evaluator rank-1 |',
             '|---|---|---|---|---|---|---|']
    for name, res in results.items():
        ev = res.get('evaluator') or {}
        metric = res.get('eval_metric', '?') + (' (hidden labels)' if res.get('hidden_labels') else '')
        lines.append(f"| {name} | {metric} | {pct(res.get('mAP'))} | {pct(res.get('rank1'))} | "
                     f"{pct(res.get('mINP'))} | {pct(ev.get('mAP'))} | {pct(ev.get('rank-1'))} |")
    return '\n'.join(lines)


def _check_eval_metric_compat(cfg, datamanager):
    for name, loaders in datamanager.test_loader.items():
        declared = getattr(loaders['query'].dataset, 'eval_metric', 'default')
        if declared != cfg.data.eval_metric:
            logger.info('data.eval_metric=%r is kept for compatibility only: %s declares %r, which is used',
                        cfg.data.eval_metric, name, declared)


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

    try:
        checkpoint = load_checkpoint(path)
    except RuntimeError as exc:
        logger.info('%s is not a self-describing checkpoint (%s): the model is built from the configuration',
                    path, exc)
        return path, None
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

    import torch
    import torchreid
    from torchreid.utils import (count_num_param, list_checkpoints, load_pretrained_weights, remove_logging,
                                 set_random_seed, setup_logging)

    t_start = time.time()
    stamp = datetime.datetime.now().strftime('%Y-%m-%d-%H-%M-%S')
    log_name = ('test.log-' if cfg.test.evaluate else 'train.log-') + stamp
    lib_logger = logging.getLogger('torchreid')
    file_handler = setup_logging(cfg.data.save_dir, log_name)
    console = _console_handler()
    lib_logger.addHandler(console)
    threads_before = torch.get_num_threads()
    try:
        logger.info('Show configuration\n%s', cfg)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        prepare_synthetic_data(cfg)
        weights_path, checkpoint = tested_checkpoint(cfg)
        if checkpoint is not None:
            # Test only: the checkpoint says which model it holds and how its inputs were prepared.
            cfg, overridden = apply_checkpoint_description(cfg, checkpoint, source=weights_path)
            for key, given, recorded in overridden:
                logger.warning('%s: the configuration says %r, the checkpoint %s was trained with %r: using %r',
                               key, given, weights_path, recorded, recorded)
        # Seeded after the data generation, so a run that generates the data and one that finds it
        # on disk train identically.
        set_random_seed(cfg.train.seed)

        datamanager = torchreid.data.ImageDataManager(**imagedata_kwargs(cfg))
        _check_eval_metric_compat(cfg, datamanager)

        if checkpoint is not None:
            logger.info('Rebuilding the model recorded in %s: %s %s', weights_path, checkpoint['model_spec']['name'],
                        checkpoint['model_spec']['kwargs'])
            model = torchreid.models.build_model_from_checkpoint(checkpoint, source=weights_path)
        else:
            logger.info('Building model: %s', cfg.model.name)
            model = torchreid.models.build_model(**model_kwargs(cfg, datamanager.num_train_pids))
            if cfg.model.load_weights:
                load_pretrained_weights(model, cfg.model.load_weights)
        logger.info('Model size: %.3f M parameters', count_num_param(model) / 1e6)
        optimizer = torchreid.optim.build_optimizer(model, **optimizer_kwargs(cfg))
        scheduler = torchreid.optim.build_lr_scheduler(optimizer, **lr_scheduler_kwargs(cfg))
        engine = build_engine(cfg, datamanager, model, optimizer, scheduler)
        logger.info('Building %s (device %s)', type(engine).__name__, engine.device)

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
        score_exported_rankings(results, _targets_ground_truth(datamanager))

        table = format_table(results)
        logger.info('Final results (%s)\n%s', 'test only' if cfg.test.evaluate else
                    f'{cfg.train.max_epoch} epochs', table)
        disagree = [n for n, r in results.items() if r.get('agree') is False]
        if disagree:
            logger.warning('The engine and the evaluator disagree on %s', ', '.join(disagree))
        elapsed = time.time() - t_start
        logger.info('Total time %s', datetime.timedelta(seconds=round(elapsed)))
        return {
            'targets': results,
            'save_dir': cfg.data.save_dir,
            'log_file': file_handler.baseFilename,
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


def cli(argv=None):
    try:
        main(argv)
    except ConfigError as exc:
        print(f'Configuration error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(cli())
