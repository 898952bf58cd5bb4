"""SoccerNet-v3 evaluation at the real valid-split scale: full matrix (the sn-reid way) vs per action (ours).

Synthetic features shaped like the valid split: 11,638 queries, 34,355 gallery items, 1,751 actions (mean
6.65 queries / 19.6 gallery items per action, min 1, max ~81 queries), 512-d float32, per-identity centres +
noise. Each method runs in a fresh subprocess; peak memory = the rise of ru_maxrss over the process's level
after loading the features (torch and numpy allocations both count there).

    python benchmarks/perf/bench_eval.py [--quick]

(a) ``full-matrix (sn-reid)``: torch addmm distance over the whole gallery, np.argsort of every row of the
    11638 x 34355 matrix, then per query keep the same-action items and compute CMC/AP in a Python loop
    (re-implemented here as sn-reid's rank.py does it, for the comparison only).
(b) ours: ``torchreid.metrics.evaluate_soccernetv3`` (per action): the compiled one-pass kernel and the NumPy
    reference side by side, with and without k-reciprocal re-ranking (within each action), and with the
    per-action inverted softmax.
(c) the engine's evaluation path (``Engine._evaluate_target`` with the features given, no extraction): the
    evaluator object the engine builds from the target's protocol, compared with the function (b) it wraps.
Also: the ranking-file evaluator on the exported valid-scale JSON, ours vs the official SoccerNet one.
"""
import argparse
import gc
import importlib
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

NUM_Q, NUM_G, NUM_A, DIM = 11638, 34355, 1751, 512


def _counts(rng, total, n, lo, hi, shape):
    """n positive counts in [lo, hi] summing to total, skewed like the real per-action counts."""
    x = rng.gamma(shape, 1.0, n)
    c = np.clip(np.round(lo + x / x.sum() * (total - lo * n)), lo, hi).astype(np.int64)
    while c.sum() != total:
        i = rng.integers(n)
        if c.sum() < total and c[i] < hi:
            c[i] += 1
        elif c.sum() > total and c[i] > lo:
            c[i] -= 1
    return c


def make_data(seed=0, num_q=NUM_Q, num_g=NUM_G, num_a=NUM_A, dim=DIM):
    rng = np.random.default_rng(seed)
    qc = _counts(rng, num_q, num_a, 1, 81, 0.55)
    extra = _counts(rng, num_g - num_q, num_a, 0, 400, 1.2)   # gallery = one per query person + extra
    qf, gf, qp, gp, qa, ga = [], [], [], [], [], []
    next_pid = 0
    for a in range(num_a):
        n_ids = int(qc[a] + rng.integers(0, 4))                 # query persons + a few gallery-only ones
        pids = np.arange(next_pid, next_pid + n_ids)
        next_pid += n_ids
        centres = rng.standard_normal((n_ids, dim)).astype(np.float32) * 0.28
        q_ids = pids[:qc[a]]
        g_ids = np.concatenate([q_ids, rng.choice(pids, extra[a])])
        rng.shuffle(g_ids)
        for ids, feats, plist, alist in ((q_ids, qf, qp, qa), (g_ids, gf, gp, ga)):
            f = centres[ids - pids[0]] + rng.standard_normal((ids.size, dim)).astype(np.float32)
            feats.append(f)
            plist.append(ids)
            alist.append(np.full(ids.size, a))
    return {'qf': np.concatenate(qf), 'gf': np.concatenate(gf), 'q_pids': np.concatenate(qp),
            'g_pids': np.concatenate(gp), 'q_actions': np.concatenate(qa), 'g_actions': np.concatenate(ga)}


# ----------------------------------------------------------------------------------------------------------
def full_matrix_snreid(d):
    """The sn-reid path: full distance matrix, argsort of every row, per-query same-action filtering."""
    import torch

    qf, gf = torch.from_numpy(d['qf']), torch.from_numpy(d['gf'])
    m, n = qf.size(0), gf.size(0)
    distmat = torch.pow(qf, 2).sum(dim=1, keepdim=True).expand(m, n) + \
        torch.pow(gf, 2).sum(dim=1, keepdim=True).expand(n, m).t()
    distmat.addmm_(qf, gf.t(), beta=1, alpha=-2)
    distmat = distmat.numpy()
    q_pids, g_pids, q_act, g_act = d['q_pids'], d['g_pids'], d['q_actions'], d['g_actions']
    max_rank = 50
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, smallest = [], [], max_rank
    for q_idx in range(m):
        order = indices[q_idx]
        keep = g_act[order] == q_act[q_idx]
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        smallest = min(smallest, len(cmc[:max_rank]))
        num_rel = raw_cmc.sum()
        tmp = raw_cmc.cumsum()
        tmp = [x / (i + 1.) for i, x in enumerate(tmp)]
        tmp = np.asarray(tmp) * raw_cmc
        all_ap.append(tmp.sum() / num_rel)
    all_cmc = np.asarray([c[:smallest] for c in all_cmc]).astype(np.float32).sum(0) / len(all_cmc)
    return float(np.mean(all_ap)), float(all_cmc[0])


def ours(d, use_cython, **ranking_options):
    from torchreid.metrics import evaluate_soccernetv3

    res, _ = evaluate_soccernetv3(d['qf'], d['gf'], d['q_pids'], d['g_pids'], d['q_actions'], d['g_actions'],
                                  use_cython=use_cython, **ranking_options)
    return res.mAP, float(res.cmc[0])


def engine_path(d, use_cython=True):
    """What ``Engine.test`` does for one SoccerNet target once the features are extracted."""
    import types

    import torch

    from torchreid.engine import Engine, EvalOptions

    class GivenFeatures(Engine):
        def extract_features_from_loader(self, loader, desc=''):
            side = loader.side
            return torch.from_numpy(d[side + 'f']), d[side + '_pids'], d[side + '_actions']

    target = types.SimpleNamespace(eval_metric='soccernetv3', hidden_labels=False, data=None)
    engine = GivenFeatures(types.SimpleNamespace(), device='cpu', progress=False, tensorboard=False)
    engine.register_model('model', torch.nn.Identity())
    q_loader = types.SimpleNamespace(dataset=target, side='q')
    g_loader = types.SimpleNamespace(dataset=target, side='g')
    res = engine._evaluate_target('valid-scale', q_loader, g_loader, EvalOptions(use_cython=use_cython),
                                  final=False)
    return res['mAP'], res['rank1']


METHODS = {
    'full-matrix (sn-reid)': (lambda d: full_matrix_snreid(d), 1),
    'ours per-action, compiled': (lambda d: ours(d, True), 10),
    'ours per-action, NumPy': (lambda d: ours(d, False), 10),
    'engine evaluation path, compiled': (lambda d: engine_path(d, True), 10),
    'ours per-action + re-rank, compiled': (lambda d: ours(d, True, rerank=True), 2),
    'ours per-action + re-rank, NumPy': (lambda d: ours(d, False, rerank=True), 2),
    'ours per-action + inverted softmax': (lambda d: ours(d, True, inverted_softmax=True), 3),
}


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method, data_path, out_path):
    # imported before the baseline so their footprint is not counted
    importlib.import_module('torch')
    importlib.import_module('torchreid.metrics')
    importlib.import_module('torchreid.engine')

    with np.load(data_path) as z:
        d = {k: z[k] for k in z.files}
    gc.collect()
    base = _maxrss_mib()
    fn, repeats = METHODS[method]
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        mAP, r1 = fn(d)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    with open(out_path, 'w') as f:
        json.dump({'wall': min(times), 'cpu': min(cpu), 'peak_mib': _maxrss_mib() - base, 'mAP': mAP, 'rank1': r1,
                   'repeats': repeats}, f)


def bench_file_evaluator(d, tmp):
    """Export the ranking of the valid-scale set and score it with our evaluator and the official one."""
    import contextlib
    import io

    from torchreid.metrics import evaluate_ranking_dicts, evaluate_ranking_file, export_ranking_results, \
        rank_by_action

    rankings = rank_by_action(d['qf'], d['gf'], d['q_actions'], d['g_actions'])
    q_bbox, g_bbox = np.arange(len(d['qf'])), np.arange(len(d['gf']))
    path = export_ranking_results(rankings, q_bbox, g_bbox, d['q_actions'], d['g_actions'], tmp, 'bench')
    gt = {'query': {str(i): {'bbox_idx': int(i), 'action_idx': int(a), 'person_uid': int(p), 'clazz':
                             'Player_team_left', 'height': 120}
                    for i, a, p in zip(q_bbox, d['q_actions'], d['q_pids'])},
          'gallery': {str(i): {'bbox_idx': int(i), 'action_idx': int(a), 'person_uid': int(p)}
                      for i, a, p in zip(g_bbox, d['g_actions'], d['g_pids'])}}
    gt_path = osp.join(tmp, 'gt.json')
    with open(gt_path, 'w') as f:
        json.dump(gt, f)
    with open(path) as f:
        sub = json.load(f)
    t0 = time.perf_counter()
    ours_mem = evaluate_ranking_dicts(sub, gt)
    t_mem = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours_file = evaluate_ranking_file(path, gt_path)
    t_file = time.perf_counter() - t0
    from SoccerNet.Evaluation.ReIdentification import evaluate

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        official = evaluate(gt_path, path)
    t_off = time.perf_counter() - t0
    return t_mem, t_file, t_off, ours_file, official, ours_mem


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--data', help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    parser.add_argument('--quick', action='store_true', help='skip the full-matrix baseline (slow, ~10 GB)')
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out)
        return
    d = make_data()
    per_q = np.bincount(d['q_actions'])
    per_g = np.bincount(d['g_actions'])
    print(f'data: {len(d["qf"])} queries, {len(d["gf"])} gallery, {len(per_q)} actions, '
          f'queries/action mean {per_q.mean():.2f} max {per_q.max()}, gallery/action mean {per_g.mean():.2f} '
          f'max {per_g.max()}, {d["qf"].shape[1]}-d float32\n')
    with tempfile.TemporaryDirectory() as tmp:
        data_path = osp.join(tmp, 'data.npz')
        np.savez(data_path, **d)
        results = {}
        for name in METHODS:
            if args.quick and name.startswith('full'):
                continue
            out = osp.join(tmp, 'out.json')
            subprocess.run([sys.executable, osp.abspath(__file__), '--worker', name, '--data', data_path,
                            '--out', out], check=True)
            with open(out) as f:
                results[name] = json.load(f)
            r = results[name]
            print(f'  done: {name}: {r["wall"]:.3f} s', file=sys.stderr)
        ref = results.get('full-matrix (sn-reid)')
        print(f'load average before the table: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores '
              '(wall/CPU = best of the runs shown; each method in a fresh process)\n')
        print('| method | runs | wall s | CPU s | peak MiB | mAP | rank-1 | speed-up vs (a) (wall) | '
              'memory ratio vs (a) |')
        print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
        for name, r in results.items():
            sp = f'{ref["wall"] / r["wall"]:.0f}x' if ref else '-'
            mem = f'{ref["peak_mib"] / max(r["peak_mib"], 1e-3):.0f}x' if ref else '-'
            print(f'| {name} | {r["repeats"]} | {r["wall"]:.3f} | {r["cpu"]:.3f} | {r["peak_mib"]:.1f} | '
                  f'{r["mAP"]:.6f} | {r["rank1"]:.6f} | {sp} | {mem} |')
        a = results['ours per-action, compiled']
        b = results['ours per-action, NumPy']
        e = results['engine evaluation path, compiled']
        print(f'\ncompiled vs NumPy (plain per-action ranking + scoring): {b["wall"] / a["wall"]:.1f}x faster '
              f'({a["wall"] * 1e3:.1f} ms vs {b["wall"] * 1e3:.1f} ms), same mAP: '
              f'{"yes" if abs(a["mAP"] - b["mAP"]) < 1e-9 else "NO"}')
        print(f'engine evaluation path vs the function it wraps: {e["wall"] / a["wall"]:.2f}x the time, '
              f'{e["peak_mib"]:.1f} vs {a["peak_mib"]:.1f} MiB extra, same mAP: '
              f'{"yes" if abs(e["mAP"] - a["mAP"]) < 1e-12 else "NO"}')
        if ref:
            same = abs(a['mAP'] - ref['mAP']) < 1e-12 and abs(a['rank1'] - ref['rank1']) < 1e-7 and \
                abs(a['mAP'] - b['mAP']) < 1e-9
            print(f'\nsame mAP/rank-1 as the full-matrix way: {"yes" if same else "NO"} '
                  f'(|dmAP| = {abs(a["mAP"] - ref["mAP"]):.1e}; rank-1 of (a) is float32 as in sn-reid)')
        t_mem, t_file, t_off, mine, official, _ = bench_file_evaluator(d, tmp)
        print('\n| ranking-file evaluator (valid scale) | wall s | mAP | rank-1 |')
        print('|---|---:|---:|---:|')
        print(f'| ours, in memory (no JSON parsing) | {t_mem:.3f} | {mine["mAP"]:.9f} | {mine["rank-1"]:.9f} |')
        print(f'| ours, from files | {t_file:.3f} | {mine["mAP"]:.9f} | {mine["rank-1"]:.9f} |')
        print(f'| official SoccerNet evaluate (files) | {t_off:.3f} | {official["mAP"]:.9f} | '
              f'{float(official["rank-1"]):.9f} |')
        print(f'\nfile evaluator speed-up vs official: {t_off / t_file:.0f}x (files), '
              f'{t_off / t_mem:.0f}x (in memory)')


if __name__ == '__main__':
    main()
