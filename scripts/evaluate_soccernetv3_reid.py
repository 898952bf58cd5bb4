#!/usr/bin/env python
"""Score a SoccerNet-v3 ReID ranking JSON against a ground-truth ``bbox_info.json``.

    python scripts/evaluate_soccernetv3_reid.py -rs ranking_results_<dataset>_<time>.json \\
        -gt <root>/soccernetv3/reid/valid/bbox_info.json

Same acceptance rules, mAP and rank-1 as the official ``SoccerNet.Evaluation.ReIdentification.evaluate``,
plus mINP and breakdowns by class group and thumbnail height. One line on stderr says what is refused and
why, naming the file (and the query) at fault: a refused submission exits with status 1, a ground truth that
is missing, broken, or that no ranking could satisfy with status 2.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))   # run from a checkout without install


def _table(title, rows):
    lines = [f'| {title} | queries | mAP | rank-1 | mINP |', '|---|---:|---:|---:|---:|']
    for name, r in rows.items():
        if r['num_queries']:
            lines.append(f"| {name} | {r['num_queries']} | {r['mAP']:.1%} | {r['rank-1']:.1%} | {r['mINP']:.1%} |")
        else:
            lines.append(f'| {name} | 0 | - | - | - |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-rs', '--ranking_results', required=True, help='ranking JSON to score')
    parser.add_argument('-gt', '--groundtruth', required=True, help='ground-truth bbox_info.json')
    parser.add_argument('--json', action='store_true', help='print the full result as JSON')
    args = parser.parse_args(argv)

    from torchreid.metrics.submission import GroundTruthError, evaluate_ranking_file

    for path, what, status in ((args.groundtruth, 'Ground truth', 2), (args.ranking_results, 'Submission', 1)):
        if not osp.isfile(path):
            print(f'{what} refused: file not found: {path}', file=sys.stderr)
            return status
    try:
        res = evaluate_ranking_file(args.ranking_results, args.groundtruth)
    except GroundTruthError as e:
        print(f'Ground truth refused ({type(e).__name__}): {e}', file=sys.stderr)
        return 2
    except OSError as e:  # unreadable: the error names the file
        gt_fault = e.filename is not None and osp.abspath(e.filename) == osp.abspath(args.groundtruth)
        print(f'{"Ground truth" if gt_fault else "Submission"} refused ({type(e).__name__}): {e}', file=sys.stderr)
        return 2 if gt_fault else 1
    except (ValueError, TypeError, KeyError) as e:  # JSONDecodeError is a ValueError; KeyError prints unquoted
        print(f'Submission refused ({type(e).__name__}): {e}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"** Results ** {res['filename']}")
    print(_table('all', {'all': {k: res[k] for k in ('num_queries', 'mAP', 'rank-1', 'mINP')}}))
    if 'by_class_group' in res:
        print()
        print(_table('class group', res['by_class_group']))
    if 'by_height' in res:
        print()
        print(_table('height (px)', res['by_height']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
