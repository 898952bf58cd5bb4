"""Score a SoccerNet-v3 ranking JSON against a ground-truth ``bbox_info.json``.

Agrees with the official ``SoccerNet.Evaluation.ReIdentification.evaluate``: it refuses the same submissions
with the same exception types (checked in the same order: per ground-truth query, a missing ranking →
ValueError; per ranked item a non-int → TypeError, a duplicate → ValueError, an unknown gallery id →
KeyError, another action → ValueError; then a missing gallery item of the action → ValueError; then a query
without a match → ValueError) and returns the same mAP and rank-1. ``rank-1`` is rounded to float32 exactly
as the official script does (``num_rank1_hits`` gives the exact count). It also reports mINP and breakdowns by
class group and by thumbnail height.

The common case is checked and scored fully vectorised; only a submission that fails a check is re-walked in
the official order to name the first error.
"""
import itertools
import json
import os.path as osp

import numpy as np

from .rank import _csr_metrics_np

__all__ = ['evaluate_ranking_file', 'evaluate_ranking_dicts', 'CLASS_GROUPS', 'HEIGHT_BUCKETS']

# Local copy of the class -> group mapping (metrics may not import torchreid.data).
CLASS_GROUPS = {
    'Player_team_left': 'players', 'Player_team_right': 'players',
    'Goalkeeper_team_left': 'goalkeepers', 'Goalkeeper_team_right': 'goalkeepers',
    'Main_referee': 'referees', 'Side_referee': 'referees',
    'Staff_members': 'staff',
}
# (label, low inclusive, high exclusive) in pixels of thumbnail height.
HEIGHT_BUCKETS = (('<50', 0, 50), ('50-100', 50, 100), ('100-200', 100, 200), ('>=200', 200, float('inf')))


def _read_json(path, what):
    try:
        with open(path, 'r', encoding='utf-8') as f:
            return json.load(f)
    except UnicodeDecodeError:
        with open(path, 'r', encoding='latin-1') as f:  # the original release files were latin-1
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'{what} file not found: {path}') from None


def _check_official_order(rankings, queries, galleries, action2gidx):
    """Walk the submission as the official evaluator does and raise its exception type at the first error."""
    for q_key, q_rec in queries.items():
        if q_key not in rankings:
            raise ValueError(f'No ranking for query {q_key!r}: every query of the ground truth needs one')
        q_action = q_rec['action_idx']
        ranked = rankings[q_key]
        seen = set()
        pids = []
        for g_idx in ranked:
            if not isinstance(g_idx, int):
                raise TypeError(f'Ranking of query {q_key!r} holds {g_idx!r} of type {type(g_idx).__name__}; '
                                'gallery ids must be integers')
            if g_idx in seen:
                raise ValueError(f'Ranking of query {q_key!r} lists gallery item {g_idx} more than once')
            seen.add(g_idx)
            if str(g_idx) not in galleries:
                raise KeyError(f'Ranking of query {q_key!r} holds gallery id {g_idx}, which is not in the '
                               'ground-truth gallery')
            g_rec = galleries[str(g_idx)]
            if g_rec['action_idx'] != q_action:
                raise ValueError(f'Ranking of query {q_key!r} (action {q_action!r}) holds gallery item {g_idx} '
                                 f"of another action ({g_rec['action_idx']!r}); only the query's action counts")
            pids.append(g_rec['person_uid'])
        if q_action not in action2gidx:
            raise KeyError(f'Query {q_key!r} belongs to action {q_action!r}, which has no gallery item')
        listed = set(ranked)
        for g_idx in action2gidx[q_action]:
            if g_idx not in listed:
                raise ValueError(f'Ranking of query {q_key!r} misses gallery item {g_idx} of its action '
                                 f'{q_action!r}; every gallery item of the action must be ranked')
        if not any(p == q_rec['person_uid'] for p in pids):
            raise ValueError(f"Person id of query {q_key!r} does not appear in its action's gallery; the "
                             'ground truth is not a valid evaluation set')


def _group_scores(mask, ap, inp, first):
    n = int(mask.sum())
    if n == 0:
        return {'num_queries': 0, 'mAP': float('nan'), 'rank-1': float('nan'), 'mINP': float('nan')}
    return {'num_queries': n, 'mAP': float(np.mean(ap[mask])), 'rank-1': float(np.mean(first[mask] == 0)),
            'mINP': float(np.mean(inp[mask]))}


def evaluate_ranking_dicts(rankings, ground_truth, class_groups=None):
    """Score an in-memory submission (the dict a ranking JSON holds) against a ground-truth dict.

    Integer keys in ``rankings`` are read as their string form (what writing the dict to JSON would do).

    Returns:
        dict: ``mAP``, ``rank-1`` (float32-rounded like the official script), ``mINP``, ``num_queries``,
        ``num_rank1_hits``, ``by_class_group`` and ``by_height`` (each ``{name: {num_queries, mAP, rank-1,
        mINP}}``).
    """
    if not isinstance(rankings, dict):  # the official check then finds no ranking for the first query
        raise ValueError(f'rankings must be a dict {{query key: [gallery ids]}}, got {type(rankings).__name__}')
    if any(not isinstance(k, str) for k in rankings):
        rankings = {str(k): v for k, v in rankings.items()}
    queries = ground_truth['query']
    galleries = ground_truth['gallery']
    class_groups = CLASS_GROUPS if class_groups is None else class_groups
    nq = len(queries)
    if nq == 0:
        raise ValueError('The ground truth has no query')

    g_keys = list(galleries.keys())
    g_recs = list(galleries.values())
    g_bbox = [r['bbox_idx'] for r in g_recs]
    if any(type(b) is not int or k != str(b) for k, b in zip(g_keys, g_bbox)):
        raise ValueError('Ground truth: every gallery bbox_idx must be an int and its key the string of it')
    action2gidx = {}
    for r in g_recs:
        action2gidx.setdefault(r['action_idx'], []).append(r['bbox_idx'])
    q_keys = list(queries.keys())
    q_recs = list(queries.values())

    ok = _fast_checks(rankings, q_keys, q_recs, g_bbox, g_recs)
    if ok is None:
        _check_official_order(rankings, queries, galleries, action2gidx)
        raise RuntimeError('internal error: the vectorised checks refused a submission the official-order '
                           'walk accepts')  # cannot happen: both implement the same rules
    ap, inp, first = ok
    hits = int(np.sum(first == 0))
    out = {
        'mAP': float(np.mean(ap)),
        # the official script averages a float32 CMC: the same rounding here
        'rank-1': float((np.array([hits], dtype=np.float32) / nq)[0]),
        'mINP': float(np.mean(inp)),
        'num_queries': nq,
        'num_rank1_hits': hits,
    }
    if all('clazz' in r for r in q_recs):
        groups = np.array([class_groups.get(r['clazz'], 'other') for r in q_recs])
        names = dict.fromkeys(list(class_groups.values()) + ['other'])
        out['by_class_group'] = {g: _group_scores(groups == g, ap, inp, first) for g in names
                                 if g != 'other' or np.any(groups == 'other')}
    if all('height' in r for r in q_recs):
        heights = np.array([r['height'] for r in q_recs], dtype=np.float64)
        out['by_height'] = {label: _group_scores((heights >= lo) & (heights < hi), ap, inp, first)
                            for label, lo, hi in HEIGHT_BUCKETS}
    return out


def _fast_checks(rankings, q_keys, q_recs, g_bbox, g_recs):
    """Vectorised validation + scoring; None when anything is off (then the official-order walk raises)."""
    try:
        lists = [rankings[k] for k in q_keys]
    except KeyError:
        return None
    if any(type(v) not in (list, tuple) for v in lists):
        return None
    nq = len(q_keys)
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=nq)
    flat_list = list(itertools.chain.from_iterable(lists))
    if flat_list and set(map(type, flat_list)) != {int}:
        return None  # non-int, or bool (an int subclass the official check lets through): walk it
    try:
        flat = np.array(flat_list, dtype=np.int64)
        g_ids = np.array(g_bbox, dtype=np.int64)
    except OverflowError:
        return None
    # gallery list position of every ranked id (any int ids: sparse or negative ones too)
    g_sorter = np.argsort(g_ids, kind='stable')
    g_sorted = g_ids[g_sorter]
    at = np.minimum(np.searchsorted(g_sorted, flat), max(g_ids.size - 1, 0))
    if flat.size and (g_ids.size == 0 or np.any(g_sorted[at] != flat)):
        return None
    pos = g_sorter[at]
    uniq, inv = np.unique(np.array([r['action_idx'] for r in q_recs] + [r['action_idx'] for r in g_recs]),
                          return_inverse=True)
    inv = inv.reshape(-1)
    q_act, g_act = inv[:nq], inv[nq:]
    seg = np.repeat(np.arange(nq, dtype=np.int64), lengths)
    if np.any(g_act[pos] != q_act[seg]):
        return None
    g_count = np.bincount(g_act, minlength=uniq.size)
    if np.any(lengths != g_count[q_act]) or np.any(g_count[q_act] == 0):
        return None
    key = np.sort(seg * len(g_bbox) + pos)
    if key.size > 1 and np.any(np.diff(key) == 0):
        return None
    q_pid = np.array([r['person_uid'] for r in q_recs])
    g_pid = np.array([r['person_uid'] for r in g_recs])
    if q_pid.dtype.kind not in 'iu' or g_pid.dtype.kind not in 'iu':
        _, inv_p = np.unique(np.concatenate([q_pid.astype(str), g_pid.astype(str)]), return_inverse=True)
        q_pid, g_pid = inv_p[:nq], inv_p[nq:]
    matches = g_pid[pos] == q_pid[seg]
    offsets = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ap_sum, first, last, num_rel = _csr_metrics_np(matches, offsets)
    if np.any(num_rel == 0):
        return None
    return ap_sum / num_rel, num_rel / (last + 1.0), first


def evaluate_ranking_file(ranking_path, gt_path, class_groups=None):
    """Score the ranking JSON ``ranking_path`` against the ground truth ``gt_path`` (``bbox_info.json``).

    Raises where the official SoccerNet evaluator raises (same exception types). See
    :func:`evaluate_ranking_dicts` for the returned dict (plus ``filename``).
    """
    ground_truth = _read_json(gt_path, 'ground-truth')
    rankings = _read_json(ranking_path, 'ranking')
    out = evaluate_ranking_dicts(rankings, ground_truth, class_groups=class_groups)
    out['filename'] = osp.basename(ranking_path)
    return out
