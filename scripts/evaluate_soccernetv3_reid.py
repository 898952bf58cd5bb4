#!/usr/bin/env python
"""Score a SoccerNet-v3 ReID ranking JSON against a ground-truth ``bbox_info.json``.

    python scripts/evaluate_soccernetv3_reid.py -rs ranking_results_<dataset>_<time>.json \\
        -gt <root>/soccernetv3/reid/valid/bbox_info.json

Same acceptance rules, mAP and rank-1 as the official ``SoccerNet.Evaluation.ReIdentification.evaluate``,
plus mINP and breakdowns by class group and thumbnail height. A refused submission exits with status 1 and
the reason on stderr.
"""
import argparse
import json
import sys


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

    from torchreid.metrics.submission import evaluate_ranking_file

    try:
        res = evaluate_ranking_file(args.ranking_results, args.groundtruth)
    except (ValueError, TypeError, KeyError, OSError) as e:  # JSONDecodeError is a ValueError
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f'Submission refused ({type(e).__name__}): {msg}', file=sys.stderr)
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
