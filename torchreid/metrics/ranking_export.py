"""Write rankings in the SoccerNet-v3 challenge format, validated and atomically.

File ``<save_dir>/ranking_results_<dataset>_<YYYY-MM-DD_HH_MM_SS_mmm>.json`` holding
``{"<query bbox_idx>": [gallery bbox_idx, ... best first], ...}``: keys in numeric order, every gallery item
of the query's action exactly once and nothing from another action (what the official evaluator demands).
"""
import datetime
import logging
import os
import os.path as osp
import time

import numpy as np

from torchreid.utils.io import atomic_write_json

from .rank import _joint_codes, _labels

__all__ = ['ranking_results_to_dict', 'export_ranking_results', 'ranking_filename']

logger = logging.getLogger(__name__)


def _int_ids(x, name):
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


def ranking_results_to_dict(rankings, q_bbox_idx, g_bbox_idx, q_actions, g_actions):
    """Validate rankings (gallery list positions per query) and turn them into the challenge dict.

    Raises ``ValueError`` naming the first query whose ranking is not a permutation of its action's gallery
    (missing, duplicated or foreign items, or an action without gallery items).
    """
    q_bbox = _int_ids(q_bbox_idx, 'q_bbox_idx')
    g_bbox = _int_ids(g_bbox_idx, 'g_bbox_idx')
    nq, ng = q_bbox.shape[0], g_bbox.shape[0]
    q_actions = _labels(q_actions, 'q_actions', nq)
    g_actions = _labels(g_actions, 'g_actions', ng)
    if len(rankings) != nq:
        raise ValueError(f'rankings has {len(rankings)} entries but there are {nq} queries: every query needs one')
    qa, ga, num_actions = _joint_codes(q_actions, g_actions)
    g_count = np.bincount(ga, minlength=num_actions)
    lengths = np.fromiter((len(r) for r in rankings), dtype=np.int64, count=nq)
    flat = np.concatenate([np.asarray(r).reshape(-1) for r in rankings]) if nq else np.zeros(0, np.int64)
    if flat.size and flat.dtype.kind not in 'iu':
        raise TypeError(f'rankings must hold integer gallery positions, got dtype {flat.dtype}')
    flat = flat.astype(np.int64, copy=False)
    seg = np.repeat(np.arange(nq), lengths)

    def fail(bad_query_mask, rule):
        i = int(np.flatnonzero(bad_query_mask)[0])
        raise ValueError(f'ranking of query bbox_idx {int(q_bbox[i])} (action {q_actions[i]!r}) {rule}; each '
                         "ranking must list every gallery item of the query's action exactly once")

    fail_empty = g_count[qa] == 0
    if fail_empty.any():
        fail(fail_empty, 'cannot be exported: its action has no gallery item')
    out_of_range = (flat < 0) | (flat >= ng)
    if out_of_range.any():
        fail(np.bincount(seg[out_of_range], minlength=nq) > 0, f'holds gallery positions outside [0, {ng})')
    foreign = ga[flat] != qa[seg]
    if foreign.any():
        fail(np.bincount(seg[foreign], minlength=nq) > 0, 'holds gallery items of another action')
    key = np.sort(seg * max(ng, 1) + flat)
    dup = np.zeros(flat.size, dtype=bool)
    dup[1:] = np.diff(key) == 0
    if dup.any():
        fail(np.bincount(key[dup] // max(ng, 1), minlength=nq) > 0, 'lists a gallery item twice')
    short = lengths != g_count[qa]
    if short.any():
        fail(short, f'has the wrong length (e.g. {int(lengths[short][0])} instead of {int(g_count[qa][short][0])})')

    values = g_bbox[flat].tolist()  # python ints, not numpy
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    result = {}
    for i in np.argsort(q_bbox, kind='stable').tolist():
        result[str(int(q_bbox[i]))] = values[offsets[i]:offsets[i + 1]]
    return result


def ranking_filename(dataset_name, now=None):
    """``ranking_results_<dataset>_<YYYY-MM-DD_HH_MM_SS_mmm>.json`` (milliseconds = %f cut to 3 digits)."""
    now = now or datetime.datetime.now()
    return f'ranking_results_{dataset_name}_{now.strftime("%Y-%m-%d_%H_%M_%S_%f")[:-3]}.json'


def export_ranking_results(rankings, q_bbox_idx, g_bbox_idx, q_actions, g_actions, save_dir, dataset_name):
    """Validate ``rankings`` and write them as a challenge JSON in ``save_dir``.

    Args:
        rankings (list of int arrays): per query, gallery LIST POSITIONS best first (:func:`rank_by_action`).
        q_bbox_idx, g_bbox_idx: bbox_idx of every query / gallery item (list order).
        q_actions, g_actions: action index of every query / gallery item.
        save_dir (str): output folder (created if needed).
        dataset_name (str): goes into the file name.

    Returns:
        str: the path written. An existing file is never overwritten (the timestamp is taken again).
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
