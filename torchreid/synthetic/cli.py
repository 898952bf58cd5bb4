"""Command line: ``python -m torchreid.synthetic --root DIR --preset demo --seed 0``."""
import argparse
import json
import logging
import time
from typing import Optional, Sequence

from .generator import generate_dataset
from .plan import plan_dataset, plan_statistics
from .presets import PRESETS, get_preset

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m torchreid.synthetic',
        description='Generate a synthetic SoccerNet-v3 ReID set (real layout, names and ground truth) '
                    'under <root>/soccernetv3/reid.')
    parser.add_argument('--root', required=True, help='data root; the set goes to <root>/soccernetv3/reid')
    parser.add_argument('--preset', default='demo', choices=sorted(PRESETS), help='size preset (default: demo)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='multiply the games and actions of the preset (e.g. 0.01 to try "full" quickly)')
    parser.add_argument('--workers', type=int, default=None, help='drawing processes (default: CPU count)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a set this generator made with another preset or seed (a folder without its '
                             'marker, real data included, is never deleted)')
    parser.add_argument('--dry-run', action='store_true', help='only print the planned statistics')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    preset = get_preset(args.preset)
    if args.scale != 1.0:
        preset = preset.scaled(args.scale)
    if args.dry_run:
        stats = plan_statistics(plan_dataset(preset, args.seed))
        print(json.dumps(stats, indent=1))  # the command's output, not a log line
        return 0
    start = time.time()
    try:
        path = generate_dataset(args.root, preset=preset, seed=args.seed, overwrite=args.overwrite,
                                workers=args.workers)
    except FileExistsError as err:
        logger.error('refused: %s', err)
        return 1
    except KeyboardInterrupt:
        logger.error('interrupted: nothing was written (the unfinished folder was removed)')
        return 130     # the shell's code for a stop by SIGINT
    logger.info('done: %s (%.1f s)', path, time.time() - start)
    return 0
