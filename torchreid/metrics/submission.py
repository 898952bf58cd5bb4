"""The challenge's ranking JSON: write it (validated, atomically) and score it against a ground truth.

A ranking file holds ``{"<query bbox_idx>": [gallery bbox_idx, ... best first], ...}``: keys in numeric order,
every gallery item of the query's action exactly once and nothing from another action
(:data:`torchreid.soccernet_format.RANKING_RULE`). It is written to
``<save_dir>/ranking_results_<dataset>_<YYYY-MM-DD_HH_MM_SS_mmm>.json``.

Scoring agrees with the official ``SoccerNet.Evaluation.ReIdentification.evaluate``: it refuses the same
submissions with the same exception types, found in the same order (:func:`~torchreid.soccernet_format.
find_ranking_violation`), and returns the same mAP and rank-1. ``rank-1`` is rounded to float32 as the official
script does (``num_rank1_hits`` gives the exact count). It also reports mINP and breakdowns by class group and
by thumbnail height.
"""
import datetime
import itertools
import logging
import os
import os.path as osp
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from torchreid.soccernet_format import (CLASS_GROUPS, HEIGHT_BUCKETS, RANKING_RULE, GroundTruthError,
                                        check_ground_truth, find_ranking_violation, read_ground_truth, read_json)
from torchreid.utils.io import atomic_write_json

from .rank import _csr_metrics_np, _joint_codes, _labels, _rankings_to_csr

__all__ = ['ranking_results_to_dict', 'export_ranking_results', 'ranking_filename', 'evaluate_ranking_file',
           'evaluate_ranking_dicts', 'GroundTruthError']

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------
def _int_ids(x, name: str) -> np.ndarray:
    x = _labels(x, name)
    if x.size and x.dtype.kind not in 'iu':
        if x.dtype.kind == 'f' and np.all(np.mod(x, 1) == 0):
            x = x.astype(np.int64)
        else:
            raise TypeError(f'{name} must hold integers, got dtype {x.dtype}')
    x = x.astype(np.int64, copy=False)
    uniq = np.unique(x)
    if uniq.size != x.size:
        s = np.sort(x)
        raise ValueError(f'{name} holds {x.size - uniq.size} duplicate id(s), e.g. '
                         f'{int(s[np.flatnonzero(np.diff(s) == 0)[0]])}')
    return x


def _as_csr(rankings, num_queries: int, num_gallery: int):
    """``(flat, offsets)`` of rankings given as a CSR-backed sequence or as one array per query."""
    if hasattr(rankings, 'flat') and hasattr(rankings, 'offsets'):
        if len(rankings) != num_queries:
            raise ValueError(f'rankings has {len(rankings)} entries but there are {num_queries} queries: every '
                             'query needs one')
        return rankings.flat, rankings.offsets
    if len(rankings) != num_queries:
        raise ValueError(f'rankings has {len(rankings)} entries but there are {num_queries} queries: every '
                         'query needs one')
    arrays = [np.asarray(r).reshape(-1) for r in rankings]
    if any(a.size and a.dtype.kind not in 'iu' for a in arrays):
        raise TypeError('rankings must hold integer gallery positions')
    flat, offsets = _rankings_to_csr(arrays, num_queries, num_gallery, check_range=False)
    return flat, offsets


def ranking_results_to_dict(rankings: Sequence[Any], q_bbox_idx: Any, g_bbox_idx: Any, q_actions: Any,
                            g_actions: Any) -> Dict[str, list]:
    """Validate rankings (gallery LIST POSITIONS per query, best first) and turn them into the challenge dict.

    Raises (naming the query's bbox_idx and the rule broken) when a ranking is not a permutation of its
    action's gallery: an item of another action (``ValueError``), a repeated item (``ValueError``), a position
    outside the gallery or an action without gallery (:class:`~torchreid.soccernet_format.
    UnknownGalleryItemError`, a ``KeyError`` and a ``ValueError``), a missing item (``ValueError``).
    """
    q_bbox = _int_ids(q_bbox_idx, 'q_bbox_idx')
    g_bbox = _int_ids(g_bbox_idx, 'g_bbox_idx')
    nq, ng = q_bbox.shape[0], g_bbox.shape[0]
    q_actions = _labels(q_actions, 'q_actions', nq)
    g_actions = _labels(g_actions, 'g_actions', ng)
    raw, offsets = _as_csr(rankings, nq, ng)
    qa, ga, _ = _joint_codes(q_actions, g_actions)
    flat = np.where((raw >= 0) & (raw < ng), raw, -1)
    violation = find_ranking_violation(offsets, flat, qa, ga)
    if violation is not None:
        q = violation.query

        def name(item):
            if violation.kind == 'incomplete':
                return f'gallery position {item}'
            value = int(raw[item])
            return f'gallery position {value}' + ('' if 0 <= value < ng else f' (outside [0, {ng}))')

        raise violation.error(f'bbox_idx {int(q_bbox[q])} (action {q_actions[q]!r})', name,
                              length=int(offsets[q + 1] - offsets[q]),
                              expected=int(np.count_nonzero(ga == qa[q])))
    values = g_bbox[flat].tolist()  # python ints, not numpy
    bounds = offsets.tolist()
    return {str(int(q_bbox[i])): values[bounds[i]:bounds[i + 1]] for i in np.argsort(q_bbox, kind='stable').tolist()}


def ranking_filename(dataset_name: str, now: Optional[datetime.datetime] = None) -> str:
    """``ranking_results_<dataset>_<YYYY-MM-DD_HH_MM_SS_mmm>.json`` (milliseconds = %f cut to 3 digits)."""
    now = now or datetime.datetime.now()
    return f'ranking_results_{dataset_name}_{now.strftime("%Y-%m-%d_%H_%M_%S_%f")[:-3]}.json'


def export_ranking_results(rankings: Sequence[Any], q_bbox_idx: Any, g_bbox_idx: Any, q_actions: Any,
                           g_actions: Any, save_dir: str, dataset_name: str) -> str:
    """Validate ``rankings`` and write them as a challenge JSON in ``save_dir``.

    Args:
        rankings: per query, gallery LIST POSITIONS best first (the rankings of an evaluator or of
            :func:`~torchreid.metrics.rank_by_action`).
        q_bbox_idx, g_bbox_idx: bbox_idx of every query / gallery item (list order).
        q_actions, g_actions: action index of every query / gallery item.
        save_dir: output folder (created if needed).
        dataset_name: goes into the file name.

    Returns:
        The path written. An existing file is never overwritten (the timestamp is taken again).
    """
    if not isinstance(dataset_name, str) or not dataset_name or any(c in dataset_name for c in '/\\:'):
        raise ValueError(f'dataset_name must be a non-empty name without path separators, got {dataset_name!r}')
    obj = ranking_results_to_dict(rankings, q_bbox_idx, g_bbox_idx, q_actions, g_actions)
    os.makedirs(save_dir, exist_ok=True)
    path = osp.join(save_dir, ranking_filename(dataset_name))
    while osp.exists(path):  # same millisecond as an earlier export: wait for the next one
        time.sleep(0.001)
        path = osp.join(save_dir, ranking_filename(dataset_name))
    atomic_write_json(path, obj)
    logger.info('Ranking results of %d queries written to %s', len(obj), path)
    return path


# ----------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------
class _NotAList:
    """A ranking value that cannot be iterated (the official evaluator fails there with a TypeError)."""

    def __init__(self, value: Any):
        self.value = value


def _as_items(value: Any) -> Sequence[Any]:
    """The items the official evaluator iterates: a non-list is iterated too; one that cannot be iterated
    becomes one entry that is not an integer (the TypeError it meets there)."""
    if type(value) in (list, tuple):
        return value
    try:
        return list(value)
    except TypeError:
        return [_NotAList(value)]


def _flatten_submission(rankings: Mapping[str, Any], q_keys: Sequence[str], g_ids: np.ndarray):
    """``(present, offsets, positions, not_integer, bools, raw)`` of a submission in ground-truth query order.

    ``positions`` are gallery list positions (-1: not a gallery id). Values are read as the official evaluator
    reads them: anything but an ``int`` fails its integer check; a ``bool`` passes it and equals 0 or 1 in its
    repeat check, but names no gallery item (``bools`` marks them; their position is that of id 0 or 1).
    """
    present = np.fromiter((k in rankings for k in q_keys), dtype=bool, count=len(q_keys))
    lists = [_as_items(rankings[k]) if p else () for k, p in zip(q_keys, present)]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    raw = list(itertools.chain.from_iterable(lists))
    not_integer = bools = None
    values = None
    if not raw or set(map(type, raw)) == {int}:
        try:
            values = np.array(raw, dtype=np.int64)
        except OverflowError:
            values = None
    if values is None:                                       # the rare, broken case: entry by entry
        not_integer = np.array([not isinstance(x, int) for x in raw], dtype=bool)
        bools = np.array([type(x) is bool for x in raw], dtype=bool)
        fits = [isinstance(x, int) and -2 ** 63 <= x < 2 ** 63 for x in raw]
        values = np.array([int(x) if ok else 0 for x, ok in zip(raw, fits)], dtype=np.int64)
        unknown = ~np.array(fits, dtype=bool)
    else:
        unknown = np.zeros(values.size, dtype=bool)
    return present, offsets, _gallery_positions(values, unknown, g_ids), not_integer, bools, raw


def _gallery_positions(values: np.ndarray, unknown: np.ndarray, g_ids: np.ndarray) -> np.ndarray:
    """The gallery list position of every ranked id, -1 for an id that is no gallery item."""
    positions = np.full(values.size, -1, dtype=np.int64)
    if not g_ids.size:
        return positions
    if g_ids.min() >= 0 and g_ids.max() < 4 * g_ids.size + 1024:     # dense ids (bbox_idx 0..N-1): a table
        table = np.full(int(g_ids.max()) + 1, -1, dtype=np.int64)
        table[g_ids] = np.arange(g_ids.size)
        inside = ~unknown & (values >= 0) & (values < table.size)
        positions[inside] = table[values[inside]]
        return positions
    # any other int ids (sparse, negative): a binary search
    sorter = np.argsort(g_ids, kind='stable')
    g_sorted = g_ids[sorter]
    at = np.minimum(np.searchsorted(g_sorted, values), g_ids.size - 1)
    found = ~unknown & (g_sorted[at] == values)
    positions[found] = sorter[at[found]]
    return positions


def _group_scores(mask, ap, inp, first) -> Dict[str, float]:
    n = int(mask.sum())
    if n == 0:
        return {'num_queries': 0, 'mAP': float('nan'), 'rank-1': float('nan'), 'mINP': float('nan')}
    return {'num_queries': n, 'mAP': float(np.mean(ap[mask])), 'rank-1': float(np.mean(first[mask] == 0)),
            'mINP': float(np.mean(inp[mask]))}


def evaluate_ranking_dicts(rankings: Mapping, ground_truth: Mapping,
                           class_groups: Optional[Mapping[str, str]] = None, ranking_source: str = '',
                           ground_truth_source: str = '') -> Dict[str, Any]:
    """Score an in-memory submission (the dict a ranking JSON holds) against a ground-truth dict.

    Integer keys in ``rankings`` are read as their string form (what writing the dict to JSON would do).
    ``ranking_source`` / ``ground_truth_source`` (e.g. file paths) lead the message of a refusal, so that it names
    the file at fault: a broken ground truth (or one no ranking could satisfy: a query without a match in its
    action) raises :class:`~torchreid.soccernet_format.GroundTruthError`, never blamed on the submission.

    Returns:
        dict: ``mAP``, ``rank-1`` (float32-rounded like the official script), ``mINP``, ``num_queries``,
        ``num_rank1_hits``, ``by_class_group`` and ``by_height`` (each ``{name: {num_queries, mAP, rank-1,
        mINP}}``).
    """
    ranking_where = f'{ranking_source}: ' if ranking_source else ''
    gt_where = ground_truth_source or '<ground truth>'
    if not isinstance(rankings, dict):
        # the official check then finds no ranking for the first query (a list, a string), or cannot look
        # (null, a number): a TypeError there
        container = hasattr(rankings, '__contains__') or hasattr(rankings, '__iter__')
        raise (ValueError if container else TypeError)(
            f'{ranking_where}rankings must be a dict {{query key: [gallery ids]}}, got {type(rankings).__name__}')
    if any(not isinstance(k, str) for k in rankings):
        rankings = {str(k): v for k, v in rankings.items()}
    ground_truth = check_ground_truth(ground_truth, where=gt_where, strict=False)
    queries, galleries = ground_truth['query'], ground_truth['gallery']
    class_groups = CLASS_GROUPS if class_groups is None else class_groups
    nq = len(queries)
    if nq == 0:
        raise GroundTruthError(f'{gt_where}: the ground truth has no query')
    q_keys, q_recs = list(queries), list(queries.values())
    g_recs = list(galleries.values())
    g_ids = np.array([r['bbox_idx'] for r in g_recs], dtype=np.int64)

    present, offsets, flat, not_integer, bools, raw = _flatten_submission(rankings, q_keys, g_ids)
    qa, ga, _ = _joint_codes(np.array([r['action_idx'] for r in q_recs]), np.array([r['action_idx'] for r in g_recs]))
    qp, gp, _ = _joint_codes(np.array([r['person_uid'] for r in q_recs]), np.array([r['person_uid'] for r in g_recs]))
    violation = find_ranking_violation(offsets, flat, qa, ga, present=present, not_integer=not_integer,
                                       bools=bools, q_pids=qp, g_pids=gp)
    if violation is not None:
        q = violation.query
        query_name = f'{q_keys[q]!r} (action {q_recs[q]["action_idx"]!r})'
        if violation.ground_truth_fault:
            error = violation.error(query_name, str)
            raise type(error)(f'{gt_where}: {error}')
        if violation.entry is not None and isinstance(raw[violation.entry], _NotAList):
            # the official evaluator iterates the value: a TypeError, here naming the query
            raise TypeError(f'{ranking_where}the ranking of query {query_name} is {raw[violation.entry].value!r}, '
                            f'not a list of gallery ids; {RANKING_RULE}')

        def name(item):
            if violation.kind == 'incomplete':
                return f'gallery item {int(g_ids[item])}'
            value = raw[item]
            return f'gallery id {value!r}' + ('' if type(value) is int else f' of type {type(value).__name__}')

        error = violation.error(query_name, name, length=int(offsets[q + 1] - offsets[q]),
                                expected=int(np.count_nonzero(ga == qa[q])))
        raise type(error)(f'{ranking_where}{error}')

    ap_sum, first, last, num_rel = _csr_metrics_np(gp[flat] == np.repeat(qp, np.diff(offsets)), offsets)
    ap, inp = ap_sum / num_rel, num_rel / (last + 1.0)
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


def evaluate_ranking_file(ranking_path: str, gt_path: str,
                          class_groups: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Score the ranking JSON ``ranking_path`` against the ground truth ``gt_path`` (``bbox_info.json``).

    Refuses what the official SoccerNet evaluator refuses, with the same exception types, each message naming
    the file at fault and the query: the ground truth is read and checked first, and any fault of it raises
    :class:`~torchreid.soccernet_format.GroundTruthError` (a ``ValueError``; ``FileNotFoundError`` when missing),
    so a broken ground truth is never blamed on the submission. See :func:`evaluate_ranking_dicts` for the
    returned dict (plus ``filename``).
    """
    ground_truth = read_ground_truth(gt_path, strict=False)
    rankings = read_json(ranking_path, 'ranking')
    out = evaluate_ranking_dicts(rankings, ground_truth, class_groups=class_groups, ranking_source=ranking_path,
                                 ground_truth_source=gt_path)
    out['filename'] = osp.basename(ranking_path)
    return out
