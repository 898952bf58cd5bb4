"""Accuracy on the synthetic demo set: what training and each part of the recipe buy, side by side.

    python benchmarks/perf/bench_accuracy.py [--root DIR] [--epochs N] [--seed S]

Every run goes through the baseline's ``main()`` (benchmarks/baseline/main.py) with the same seed, data,
network, image size and number of epochs; the synthetic 'demo' set is generated under ``--root`` when
missing. Scores are the same-action SoccerNet-v3 metric on the valid and test splits.

Comparisons (each printed with the ratio of test mAP):

1. the demo recipe (benchmarks/baseline/configs/demo.yaml) trained vs the same network untrained;
2. configs/strong.yaml vs the organisers' baseline_config.yaml, both adapted equally to the demo set:
   the demo's network and image size, trained from scratch, the same epochs and learning rate, the whole
   (small) synthetic train split, and only valid/test as targets -- everything else as each recipe says;
3. the demo recipe (plain P x K sampling, plain batch-hard triplet) vs the same recipe with the
   action-aware sampler (RandomActionSampler) and the action-aware triplet. The synthetic games reuse
   players across actions under new uids, as the real data does, so plain P x K may put the same player
   under two labels into one batch.

Results on the demo set are reported honestly, as measured; see the project README for the figures.
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
BASELINE = osp.join(REPO, 'benchmarks', 'baseline')
for path in (BASELINE, REPO):
    if path not in sys.path:
        sys.path.insert(0, path)

import main as baseline_main  # noqa: E402  (benchmarks/baseline/main.py)
from default_config import get_default_config, merge_from_file  # noqa: E402

DEMO = osp.join(BASELINE, 'configs', 'demo.yaml')
ORGANISERS = osp.join(BASELINE, 'configs', 'baseline_config.yaml')
STRONG = osp.join(REPO, 'configs', 'strong.yaml')
TARGETS = ['soccernetv3', 'soccernetv3_test']


def demo_settings():
    cfg = get_default_config()
    merge_from_file(cfg, DEMO)
    return cfg


def common_overrides(args, demo):
    """What every run shares: data, network, size, epochs, seed, threads; no exports or pictures."""
    return [
        '--root', args.root,
        'data.synthetic_preset', 'demo', 'data.synthetic_seed', str(demo.data.synthetic_seed),
        'data.targets', str(TARGETS),
        'model.name', demo.model.name, 'model.pretrained', 'False',
        'data.height', str(demo.data.height), 'data.width', str(demo.data.width),
        'data.workers', str(demo.data.workers),
        'train.max_epoch', str(args.epochs), 'train.seed', str(args.seed),
        'test.export_ranking_results', 'False', 'test.visrank', 'False', 'test.eval_freq', '-1',
        'test.ranks', '[1]', 'num_threads', str(args.threads), 'device', 'cpu',
    ]


def adapted_recipe_overrides(demo):
    """The same adaptation for both real-data recipes: from-scratch training on the small demo train split."""
    return ['soccernetv3.training_subset', '1.0', 'train.lr', str(demo.train.lr)]


def run(name, config_file, overrides, save_dir, quiet=True):
    argv = (['--config-file', config_file] if config_file else []) + overrides + ['data.save_dir', save_dir]
    t0 = time.time()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        out = baseline_main.main(argv)
    seconds = time.time() - t0
    row = {'run': name, 'seconds': seconds}
    for target, key in (('soccernetv3', 'valid'), ('soccernetv3_test', 'test')):
        res = out['targets'][target]
        row[f'{key}_mAP'] = 100 * res['mAP']
        row[f'{key}_R1'] = 100 * res['rank1']
        row[f'{key}_mINP'] = 100 * res['mINP']
    print(f"  {name}: valid mAP {row['valid_mAP']:.2f}  test mAP {row['test_mAP']:.2f}  ({seconds:.0f} s)",
          flush=True)
    return row


def main(argv=None):
    demo = demo_settings()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default=demo.data.root, help='data root (demo set generated when missing)')
    parser.add_argument('--epochs', type=int, default=demo.train.max_epoch)
    parser.add_argument('--seed', type=int, default=demo.train.seed)
    parser.add_argument('--threads', type=int, default=demo.num_threads or 1)
    parser.add_argument('--save-dir', default='log/bench_accuracy')
    parser.add_argument('--only', nargs='+', choices=['trained', 'recipes', 'action'],
                        default=['trained', 'recipes', 'action'], help='which comparisons to run')
    args = parser.parse_args(argv)

    common = common_overrides(args, demo)
    adapted = adapted_recipe_overrides(demo)
    print(f'Synthetic demo set at {args.root}; network {demo.model.name} {demo.data.height}x{demo.data.width}, '
          f'{args.epochs} epochs, seed {args.seed}', flush=True)
    rows, ratios = {}, []

    def get(key, *spec):
        if key not in rows:
            rows[key] = run(key, *spec)
        return rows[key]

    if 'trained' in args.only:
        untrained = get('demo network, untrained', DEMO, common + ['test.evaluate', 'True'],
                        osp.join(args.save_dir, 'untrained'))
        trained = get('demo recipe, trained', DEMO, common, osp.join(args.save_dir, 'demo'))
        ratios.append(('trained / untrained', trained, untrained))
    if 'recipes' in args.only:
        organisers = get("organisers' recipe (adapted)", ORGANISERS, common + adapted,
                         osp.join(args.save_dir, 'organisers'))
        strong = get('strong recipe (adapted)', STRONG, common + adapted, osp.join(args.save_dir, 'strong'))
        ratios.append(("strong / organisers'", strong, organisers))
    if 'action' in args.only:
        plain = get('demo recipe, trained', DEMO, common, osp.join(args.save_dir, 'demo'))  # plain P x K
        action = get('demo recipe + action sampler + action-aware triplet', DEMO,
                     common + ['sampler.train_sampler', 'RandomActionSampler', 'loss.triplet.action_aware', 'True'],
                     osp.join(args.save_dir, 'action_aware'))
        ratios.append(('action-aware / plain P x K', action, plain))

    print()
    print('| run | valid mAP | valid rank-1 | valid mINP | test mAP | test rank-1 | test mINP | time (s) |')
    print('|---|---|---|---|---|---|---|---|')
    for row in rows.values():
        print(f"| {row['run']} | {row['valid_mAP']:.2f} | {row['valid_R1']:.2f} | {row['valid_mINP']:.2f} | "
              f"{row['test_mAP']:.2f} | {row['test_R1']:.2f} | {row['test_mINP']:.2f} | {row['seconds']:.0f} |")
    print()
    print('| comparison | valid mAP | test mAP | ratio (test mAP) | difference (test mAP, points) |')
    print('|---|---|---|---|---|')
    for label, a, b in ratios:
        print(f"| {label} | {a['valid_mAP']:.2f} vs {b['valid_mAP']:.2f} | {a['test_mAP']:.2f} vs "
              f"{b['test_mAP']:.2f} | {a['test_mAP'] / b['test_mAP']:.2f}x | {a['test_mAP'] - b['test_mAP']:+.2f} |")
    return rows


if __name__ == '__main__':
    main()
