"""CMC, mAP and mINP (Torchreid's ``evaluate_rank``) plus the metric core shared by every evaluation path.

Protocols (``eval_metric``):

* ``'default'`` (Market-1501 style): gallery items with the same pid AND the same camera as the query are
  dropped, the rest is ranked.
* ``'cuhk03'``: same removal; AP over the whole remaining list; CMC is single-shot: for each repeat one gallery
  sample per identity is kept at random and the CMC of that reduced list is averaged over ``cuhk03_repeats``
  repeats (10, as Torchreid). The random choice is deterministic and shared by the NumPy and Cython code: for
  repeat ``r`` gallery item ``g`` gets the key ``keys[r, g]`` (a random permutation of the gallery drawn from
  ``np.random.default_rng(seed)``) and each identity keeps its kept item with the largest key, i.e. a uniformly
  random one. (Unlike Torchreid the draw is shared by all queries of a repeat; each query's choice is still
  uniform, so the expected CMC is the same.)
* ``'soccernetv3'``: only gallery items of the query's action (passed in the camid slot) count; nothing else is
  removed.

Common rules: rankings use a stable argsort (ties keep gallery order), so every path ranks identically. A query
whose list holds no positive is left out and all such queries are reported in ONE warning; if no query is
valid, ``ValueError``. CMC is never truncated to the shortest list: it has ``max_rank`` entries and a query
whose list is shorter than ``k`` keeps its hit at rank ``k``. AP = mean of precision@hit over the hits; INP =
``num_hits / (position of the last hit + 1)`` (the AGW mINP).
"""
import logging
import warnings
from typing import Any, Optional, Sequence, Tuple, Union
from dataclasses import dataclass

import numpy as np

try:
    from torchreid.metrics.rank_cylib import rank_cy as _rank_cy

    IS_CYTHON_AVAI = True
except ImportError:  # the extension is built by `pip install -e .`; without it the NumPy code runs
    _rank_cy = None
    IS_CYTHON_AVAI = False

__all__ = ['RankResult', 'evaluate_rank', 'evaluate_rankings', 'EVAL_METRICS', 'IS_CYTHON_AVAI']

logger = logging.getLogger(__name__)

EVAL_METRICS = ('default', 'cuhk03', 'soccernetv3')
CUHK03_REPEATS = 10

# Rows of the distance matrix argsorted at once: bounds the int64 order matrix to ~64 MiB.
_SORT_BLOCK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class RankResult:
    """Everything an evaluation computes.

    Attributes:
        cmc (np.ndarray): float64 ``[max_rank]``, ``cmc[k]`` = fraction of valid queries with a hit in the
            top ``k + 1``.
        mAP (float): mean AP over valid queries.
        mINP (float): mean INP over valid queries.
        all_AP (np.ndarray): float64 ``[num_queries]`` AP per query, NaN for queries left out.
        all_INP (np.ndarray): float64 ``[num_queries]`` INP per query, NaN for queries left out.
        valid_query_mask (np.ndarray): bool ``[num_queries]``, True where the query was evaluated.
        num_valid_queries (int): number of evaluated queries.
    """
    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    all_INP: np.ndarray
    valid_query_mask: np.ndarray
    num_valid_queries: int

    @property
    def num_queries(self) -> int:
        return int(self.valid_query_mask.shape[0])


def _use_cython(use_cython):
    """True when the compiled loops should run; warns when they were asked for but are not built."""
    if not use_cython:
        return False
    if IS_CYTHON_AVAI:
        return True
    # Python's warning filters show it once per calling line, not at every evaluation.
    warnings.warn('The compiled rank extension torchreid.metrics.rank_cylib.rank_cy is not built; using the '
                  'NumPy implementation (same results, slower). It needs a C compiler at install time: '
                  '`pip install -e . --no-deps` builds it.', RuntimeWarning, stacklevel=3)
    return False


# ----------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------
def _to_numpy(x):
    if hasattr(x, 'detach'):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(x, name, expected_len=None):
    x = _to_numpy(x)
    if x.ndim != 1:
        raise ValueError(f'{name} must be 1-D, got shape {x.shape}')
    if expected_len is not None and x.shape[0] != expected_len:
        raise ValueError(f'{name} has {x.shape[0]} entries but {expected_len} were expected')
    return x


def _numeric_labels(a, b, names):
    """Bring two numeric label arrays to one dtype so that equal numbers are equal labels.

    Float labels holding whole numbers (``camid`` loaded as 1.0) become int64 and so match int labels
    (1); other floats are compared as float64. NaN is refused: it equals nothing, not even itself.
    """
    floats = [x for x in (a, b) if x.dtype.kind == 'f']
    for x, name in zip((a, b), names):
        if x.dtype.kind == 'f' and np.isnan(x).any():
            raise ValueError(f'{name} holds NaN; labels must be numbers (or strings) equal to themselves')
    if not floats:
        return a, b
    if all(np.array_equal(x, np.round(x)) and (x.size == 0 or np.abs(x).max() < 2 ** 62) for x in floats):
        return a.astype(np.int64), b.astype(np.int64)
    return a.astype(np.float64), b.astype(np.float64)


def _joint_codes(a, b, names=('query labels', 'gallery labels')):
    """Map two label arrays onto shared int64 codes 0..K-1.

    Labels may be ints, floats or strings. Numbers are compared as numbers (1 == 1.0 == True), strings as
    text; a numeric array against a string array is compared as text.
    """
    if a.dtype.kind in 'iubf' and b.dtype.kind in 'iubf':
        a, b = _numeric_labels(a, b, names)
    elif a.dtype != b.dtype:
        a, b = a.astype(str), b.astype(str)   # mixed kinds: compare as text
    uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.astype(np.int64, copy=False).reshape(-1)
    return inv[:a.shape[0]].copy(), inv[a.shape[0]:].copy(), int(uniq.shape[0])


def _resolve_metric(eval_metric, use_metric_cuhk03):
    if use_metric_cuhk03 is not None:  # Torchreid's older boolean flag
        warnings.warn("use_metric_cuhk03 is deprecated; pass eval_metric='cuhk03'", DeprecationWarning,
                      stacklevel=3)
        return 'cuhk03' if use_metric_cuhk03 else 'default'
    if isinstance(eval_metric, (bool, np.bool_)):  # Torchreid's positional use_metric_cuhk03
        return 'cuhk03' if eval_metric else 'default'
    if eval_metric not in EVAL_METRICS:
        raise ValueError(f'Unknown eval_metric {eval_metric!r}; expected one of {EVAL_METRICS}')
    return eval_metric


# ----------------------------------------------------------------------------------------------------------
# NumPy reference of the per-query loops (rank_cy.pyx mirrors these)
# ----------------------------------------------------------------------------------------------------------
def _csr_metrics_np(matches, offsets):
    """Per-segment ``(ap_sum, first_hit, last_hit, num_hits)`` of a flat 0/1 match vector.

    Segment ``i`` = ``matches[offsets[i]:offsets[i+1]]`` is one query's ranked list, best first.
    ``ap_sum`` = sum over hits of ``hits_so_far / (position + 1)``; bincount adds the terms in list order,
    which is the order the Cython loop uses.
    """
    n = offsets.shape[0] - 1
    lengths = np.diff(offsets)
    seg = np.repeat(np.arange(n, dtype=np.int64), lengths)
    hit_idx = np.flatnonzero(matches)
    hit_seg = seg[hit_idx]
    pos = hit_idx - offsets[hit_seg]                       # position of each hit inside its own list
    num_rel = np.bincount(hit_seg, minlength=n).astype(np.int64)
    first_hit_of_seg = np.cumsum(num_rel) - num_rel         # index (into hit arrays) of each list's 1st hit
    hits_so_far = np.arange(hit_idx.shape[0], dtype=np.int64) - first_hit_of_seg[hit_seg] + 1
    ap_sum = np.bincount(hit_seg, weights=hits_so_far.astype(np.float64) / (pos + 1).astype(np.float64),
                         minlength=n)
    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    has = num_rel > 0
    first[has] = pos[first_hit_of_seg[has]]
    last[has] = pos[first_hit_of_seg[has] + num_rel[has] - 1]
    return ap_sum, first, last, num_rel


def _keep_mask(order, q_pids, g_pids, q_camids, g_camids, mode):
    """Boolean ``[rows, ng]`` mask of the gallery items each query's list keeps (in sorted order)."""
    if mode == 0:  # default / cuhk03: drop same pid AND same camera
        return ~((g_pids[order] == q_pids[:, None]) & (g_camids[order] == q_camids[:, None]))
    return g_camids[order] == q_camids[:, None]  # soccernetv3: same action only


def _distmat_metrics_np(order, q_pids, g_pids, q_camids, g_camids, mode):
    keep = _keep_mask(order, q_pids, g_pids, q_camids, g_camids, mode)
    # Row-major boolean indexing lays the kept lists out one after the other: a CSR structure.
    matches = (g_pids[order] == q_pids[:, None])[keep]
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
    return _csr_metrics_np(matches, offsets)


def _cuhk03_sampled_ranks_np(order, q_pids, g_pids, q_camids, g_camids, keys):
    """Rank (0-based) of the query identity among one-sample-per-identity lists, per query and repeat."""
    nq = order.shape[0]
    nrep = keys.shape[0]
    ranks = np.full((nq, nrep), -1, dtype=np.int64)
    keep = _keep_mask(order, q_pids, g_pids, q_camids, g_camids, 0)
    for i in range(nq):
        g = order[i][keep[i]]                     # kept gallery items in distance order
        pid = g_pids[g]
        is_pos = pid == q_pids[i]
        if not is_pos.any():
            continue
        uniq, inv = np.unique(pid, return_inverse=True)
        k = keys[:, g]                            # [nrep, n_kept]
        best = np.full((nrep, uniq.shape[0]), -1, dtype=np.int64)
        np.maximum.at(best, (np.arange(nrep)[:, None], inv[None, :]), k)
        chosen = k == best[:, inv]                # exactly one chosen item per identity and repeat
        before = np.cumsum(chosen, axis=1) - chosen
        ranks[i] = before[chosen & is_pos[None, :]]
    return ranks


def _cuhk03_keys(num_gallery, repeats, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(num_gallery) for _ in range(repeats)]).astype(np.int64) \
        if num_gallery else np.zeros((repeats, 0), dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# Aggregation (shared by every path so they can only differ in the per-query numbers)
# ----------------------------------------------------------------------------------------------------------
def _aggregate(ap_sum, first, last, num_rel, max_rank, sampled_ranks=None, what='queries'):
    if max_rank < 1:
        raise ValueError(f'max_rank must be >= 1, got {max_rank}')
    nq = num_rel.shape[0]
    valid = num_rel > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(f'No valid query: none of the {nq} {what} has a matching gallery item '
                         '(check pids and camids/actions)')
    if n_valid < nq:
        logger.warning('%d of %d queries have no matching gallery item in their list and are left out of '
                       'CMC/mAP/mINP', nq - n_valid, nq)
    all_ap = np.full(nq, np.nan)
    all_inp = np.full(nq, np.nan)
    all_ap[valid] = ap_sum[valid] / num_rel[valid]
    all_inp[valid] = num_rel[valid] / (last[valid] + 1.0)
    if sampled_ranks is None:
        r = first[valid]
    else:
        r = sampled_ranks[valid].reshape(-1)
    counts = np.bincount(np.minimum(r, max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(counts) / float(r.shape[0])
    return RankResult(cmc=cmc, mAP=float(np.mean(all_ap[valid])), mINP=float(np.mean(all_inp[valid])),
                      all_AP=all_ap, all_INP=all_inp, valid_query_mask=valid, num_valid_queries=n_valid)


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------
def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, max_rank: int = 50,
                  eval_metric: Union[str, bool] = 'default', use_cython: bool = True, return_result: bool = False,
                  use_metric_cuhk03: Optional[bool] = None, cuhk03_repeats: int = CUHK03_REPEATS,
                  seed: int = 0) -> Union[Tuple[np.ndarray, float], RankResult]:
    """Evaluate a query x gallery distance matrix (Torchreid's call shape).

    Args:
        distmat (np.ndarray | torch.Tensor): ``[num_query, num_gallery]`` distances (smaller = closer).
        q_pids, g_pids: identities (ints or strings).
        q_camids, g_camids: camera ids; for ``'soccernetv3'`` the action index.
        max_rank (int): length of the returned CMC.
        eval_metric (str): ``'default'``, ``'cuhk03'`` or ``'soccernetv3'`` (a bool is read as Torchreid's
            positional ``use_metric_cuhk03``).
        use_cython (bool): use the compiled loops when built (same numbers either way).
        return_result (bool): return a :class:`RankResult` instead of ``(cmc, mAP)``.
        use_metric_cuhk03 (bool): deprecated Torchreid flag.
        cuhk03_repeats (int), seed (int): the CUHK03 single-shot sampling (see the module docstring).

    Returns:
        ``(cmc, mAP)`` (cmc: float64 ``[max_rank]``) or a :class:`RankResult`.
    """
    eval_metric = _resolve_metric(eval_metric, use_metric_cuhk03)
    distmat = _to_numpy(distmat)
    if distmat.ndim != 2:
        raise ValueError(f'distmat must be 2-D [num_query, num_gallery], got shape {distmat.shape}')
    if distmat.dtype.kind not in 'fiu':
        raise ValueError(f'distmat must be numeric, got dtype {distmat.dtype}')
    if distmat.dtype.kind == 'f' and not np.isfinite(distmat).all():
        raise ValueError('distmat contains NaN or inf')
    nq, ng = distmat.shape
    q_pids = _labels(q_pids, 'q_pids', nq)
    g_pids = _labels(g_pids, 'g_pids', ng)
    q_camids = _labels(q_camids, 'q_camids', nq)
    g_camids = _labels(g_camids, 'g_camids', ng)
    if nq == 0:
        raise ValueError('No query to evaluate (distmat has 0 rows)')
    qp, gp, num_pids = _joint_codes(q_pids, g_pids, ('q_pids', 'g_pids'))
    qc, gc, _ = _joint_codes(q_camids, g_camids, ('q_camids', 'g_camids'))
    mode = 1 if eval_metric == 'soccernetv3' else 0
    fast = _use_cython(use_cython)
    keys = _cuhk03_keys(ng, int(cuhk03_repeats), seed) if eval_metric == 'cuhk03' else None

    parts = []
    step = max(1, _SORT_BLOCK_ELEMENTS // max(1, ng))
    for i in range(0, nq, step):
        order = np.argsort(distmat[i:i + step], axis=1, kind='stable').astype(np.int64, copy=False)
        order = np.ascontiguousarray(order)
        args = (order, qp[i:i + step], gp, qc[i:i + step], gc)
        if fast:
            ap_sum, first, last, num_rel = _rank_cy.distmat_metrics(*args, mode)
            sampled = _rank_cy.cuhk03_sampled_ranks(*args, keys, num_pids) if keys is not None else None
        else:
            ap_sum, first, last, num_rel = _distmat_metrics_np(*args, mode)
            sampled = _cuhk03_sampled_ranks_np(*args, keys) if keys is not None else None
        parts.append((ap_sum, first, last, num_rel, sampled))
    ap_sum, first, last, num_rel = (np.concatenate([p[j] for p in parts]) for j in range(4))
    sampled = np.concatenate([p[4] for p in parts]) if keys is not None else None
    result = _aggregate(ap_sum, first, last, num_rel, int(max_rank), sampled)
    return result if return_result else (result.cmc, result.mAP)


def _rankings_to_csr(rankings, num_queries, num_gallery, check_range=True):
    if len(rankings) != num_queries:
        raise ValueError(f'rankings has {len(rankings)} entries but there are {num_queries} queries')
    lengths = np.fromiter((len(r) for r in rankings), dtype=np.int64, count=num_queries)
    offsets = np.zeros(num_queries + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(r, dtype=np.int64).reshape(-1) for r in rankings]) if num_queries \
        else np.zeros(0, dtype=np.int64)
    if check_range and flat.size and (flat.min() < 0 or flat.max() >= num_gallery):
        raise ValueError(f'rankings hold gallery positions outside [0, {num_gallery})')
    return flat, offsets


def _metrics_from_csr(flat, offsets, q_codes, g_codes, max_rank, use_cython):
    lengths = np.diff(offsets)
    matches = g_codes[flat] == np.repeat(q_codes, lengths)
    if _use_cython(use_cython):
        ap_sum, first, last, num_rel = _rank_cy.csr_metrics(matches.view(np.uint8), offsets)
    else:
        ap_sum, first, last, num_rel = _csr_metrics_np(matches, offsets)
    return _aggregate(ap_sum, first, last, num_rel, int(max_rank))


def evaluate_rankings(rankings: Sequence[Any], q_pids: Any, g_pids: Any, max_rank: int = 50,
                      use_cython: bool = True) -> RankResult:
    """Metrics of ready rankings (e.g. from :func:`rank_by_action`).

    Args:
        rankings (list of int arrays): per query, gallery list positions best first (the list that counts:
            for SoccerNet the query's own action).
        q_pids, g_pids: identities.

    Returns:
        RankResult
    """
    q_pids = _labels(q_pids, 'q_pids')
    g_pids = _labels(g_pids, 'g_pids')
    flat, offsets = _rankings_to_csr(rankings, q_pids.shape[0], g_pids.shape[0])
    if q_pids.shape[0] == 0:
        raise ValueError('No query to evaluate')
    qp, gp, _ = _joint_codes(q_pids, g_pids, ('q_pids', 'g_pids'))
    return _metrics_from_csr(flat, offsets, qp, gp, max_rank, use_cython)
