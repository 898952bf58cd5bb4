"""SoccerNet-v3 evaluation action by action: only same-action pairs are ever computed.

The query and gallery sets are grouped by action once (stable argsort of the action ids); for every action
the distances between its queries and its gallery are computed, optionally expanded (query expansion),
re-ranked (k-reciprocal, within the action) and turned into the action's inverted softmax (see below), then
stably sorted. Memory is bounded by the largest action and the rankings are identical to those of the full
query x gallery matrix restricted to each action (the stable sort keeps gallery order for ties in both), as
long as the distances themselves are equal.

Inverted softmax (Smith et al., "Offline bilingual word vectors, orthogonal transformations and the inverted
softmax", ICLR 2017), per action: the queries of one SoccerNet action are the boxes of one frame, so they are
all different people, and a gallery box is the match of at most one of them. Each gallery box's similarities
to the action's queries, plus a "none of them" option, become a softmax over the queries, and each query
ranks its gallery by that probability: a box much closer to another query of the action (the teammate it
really shows) moves down. It uses only the action index, which the challenge split also gives.
"""
import numpy as np
from scipy.special import logsumexp

from .distance import METRICS
from .rank import _joint_codes, _labels, _metrics_from_csr, _rank_cy, _to_numpy, _use_cython
from .rerank import check_rerank_args, re_rank_full

__all__ = ['rank_by_action', 'evaluate_soccernetv3', 'inverted_softmax']


def _features(x, name):
    x = _to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f'{name} must be 2-D [num_samples, feature_dim], got shape {x.shape}')
    if x.dtype.kind != 'f' or x.dtype.itemsize < 4:   # ints, half precision: rank in float32
        x = x.astype(np.float32)
    return x


def _row_sq(x):
    return np.einsum('ij,ij->i', x, x)


def _l2_normalise(x, sq=None):
    norm = np.sqrt(_row_sq(x) if sq is None else sq)
    return (x / np.maximum(norm, 1e-12)[:, None]).astype(x.dtype, copy=False)


def _dot(a, b):
    """``a @ b.T`` for the small per-action blocks. einsum's own loop, not BLAS: a threaded BLAS wakes (and
    spins) its thread pool for every tiny product, which costs 5-10x more CPU than the product itself."""
    return np.einsum('id,jd->ij', a, b)


def _block_distance(a, b, metric):
    """Distances ``[len(a), len(b)]``; cosine expects L2-normalised rows (done once by the caller)."""
    if metric == 'cosine':
        return 1.0 - _dot(a, b)
    return _row_sq(a)[:, None] + _row_sq(b)[None, :] - 2.0 * _dot(a, b)


def _expand_queries(qa, ga, metric, qe_k, qe_alpha, renormalise):
    """Average query expansion inside one action: each query is averaged with its ``qe_k`` nearest gallery
    items (weights 1, or ``max(cos, 0) ** qe_alpha`` for alpha-QE)."""
    k = min(int(qe_k), ga.shape[0])
    top = np.argsort(_block_distance(qa, ga, metric), axis=1, kind='stable')[:, :k]
    neighbours = ga[top]                                               # [nq, k, d]
    if qe_alpha > 0:
        qn = _l2_normalise(qa)
        gn = _l2_normalise(ga)[top]
        w = np.maximum(np.einsum('qd,qkd->qk', qn, gn), 0.0) ** qe_alpha
    else:
        w = np.ones(top.shape, dtype=qa.dtype)
    out = (qa + np.einsum('qk,qkd->qd', w, neighbours)) / (1.0 + w.sum(axis=1))[:, None]
    out = out.astype(qa.dtype, copy=False)
    return _l2_normalise(out) if renormalise else out


def _check_temperature(temperature):
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f'inverted_softmax_temperature must be a finite number > 0, got {temperature!r}')
    return t


def inverted_softmax(dist, temperature=0.3):
    """``-log p(query | gallery item)`` for one action's ``[nq, ng]`` distances (smaller = better match).

    ``p(. | g)`` is a softmax over the action's queries and a "none of them" option, with logits
    ``-dist / (temperature * mean distance)`` and ``-1 / temperature`` for "none" (the action's mean
    distance): dividing by the mean distance makes ``temperature`` independent of the metric and the
    feature scale, and the "none" option keeps a gallery item that matches no query from being claimed by
    its nearest one, and an action with a single query ranked as before. Rows are ranked by the result.
    """
    t = _check_temperature(temperature)
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2:
        raise ValueError(f'inverted_softmax: dist must be [num_query, num_gallery], got shape {dist.shape}')
    scale = dist.mean() if dist.size else 0.0
    if not scale > 0:
        return dist                      # all distances 0: no query is closer than another
    logits = dist * (-1.0 / (t * scale))
    none = np.full((1, dist.shape[1]), -1.0 / t)
    return logsumexp(np.concatenate([logits, none]), axis=0)[None, :] - logits


def _rank_by_action_csr(qf, gf, q_actions, g_actions, metric='euclidean', normalize=False, rerank=False,
                        k1=20, k2=6, lambda_value=0.3, query_expansion=False, qe_k=3, qe_alpha=0.0,
                        inverted_softmax=False, inverted_softmax_temperature=0.3, use_cython=True):
    """Rankings as a CSR pair ``(flat, offsets)`` in the original query order (gallery list positions)."""
    if metric not in METRICS:
        raise ValueError(f'Unknown distance metric {metric!r}; expected one of {METRICS}')
    qf = _features(qf, 'qf')
    gf = _features(gf, 'gf')
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f'feature dimensions differ: qf has {qf.shape[1]}, gf has {gf.shape[1]}')
    nq, ng = qf.shape[0], gf.shape[0]
    q_actions = _labels(q_actions, 'q_actions', nq)
    g_actions = _labels(g_actions, 'g_actions', ng)
    if rerank:
        check_rerank_args(k1, k2, lambda_value)
    if query_expansion and int(qe_k) < 1:
        raise ValueError(f'qe_k must be >= 1, got {qe_k}')
    if inverted_softmax:
        _check_temperature(inverted_softmax_temperature)
    q_sq, g_sq = _row_sq(qf), _row_sq(gf)
    if not (np.isfinite(q_sq).all() and np.isfinite(g_sq).all()):
        raise ValueError('qf or gf contains NaN or inf (or values too large for float32)')
    renormalise = normalize or metric == 'cosine'
    if renormalise:
        qf, gf = _l2_normalise(qf, q_sq), _l2_normalise(gf, g_sq)
        q_sq, g_sq = _row_sq(qf), _row_sq(gf)

    qa_codes, ga_codes, num_actions = _joint_codes(q_actions, g_actions)
    q_order = np.argsort(qa_codes, kind='stable')
    g_order = np.argsort(ga_codes, kind='stable')       # gallery positions ascending inside each action
    q_count = np.bincount(qa_codes, minlength=num_actions)
    g_count = np.bincount(ga_codes, minlength=num_actions)
    q_start = np.cumsum(q_count) - q_count
    g_start = np.cumsum(g_count) - g_count

    lengths = g_count[qa_codes].astype(np.int64)          # every query ranks its action's whole gallery
    offsets = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    sorted_lengths = lengths[q_order]
    if rerank or query_expansion or inverted_softmax:
        flat_sorted = _ranked_per_action(qf, gf, q_order, g_order, q_count, q_start, g_count, g_start, metric,
                                         rerank, k1, k2, lambda_value, query_expansion, qe_k, qe_alpha,
                                         renormalise, inverted_softmax_temperature if inverted_softmax else None)
    else:
        flat_sorted = _ranked_plain(qf, gf, q_sq[q_order], g_sq[g_order], q_order, g_order, q_count, q_start,
                                    g_count, g_start, sorted_lengths, metric, _use_cython(use_cython))
    # flat_sorted holds the rankings in action-sorted query order; move each segment to its query's slot.
    sorted_starts = np.cumsum(sorted_lengths) - sorted_lengths
    src_start = np.empty(nq, dtype=np.int64)
    src_start[q_order] = sorted_starts
    gather = np.repeat(src_start - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return flat_sorted[gather], offsets


def _ranked_per_action(qf, gf, q_order, g_order, q_count, q_start, g_count, g_start, metric, rerank, k1, k2,
                       lambda_value, query_expansion, qe_k, qe_alpha, renormalise, inverted_softmax_temperature):
    """One action at a time (re-ranking, query expansion and the inverted softmax need each action's own
    sets); ``inverted_softmax_temperature`` None: no inverted softmax."""
    blocks = []                                          # per action [nq_a, ng_a] gallery positions
    for a in np.flatnonzero(q_count):
        qi = q_order[q_start[a]:q_start[a] + q_count[a]]
        gi = g_order[g_start[a]:g_start[a] + g_count[a]]
        if gi.size == 0:
            continue                                     # these queries get an empty ranking
        qa, ga = qf[qi], gf[gi]
        if query_expansion:
            qa = _expand_queries(qa, ga, metric, qe_k, qe_alpha, renormalise)
        if rerank:
            both = np.concatenate([qa, ga])
            dist = re_rank_full(_block_distance(both, both, metric), qa.shape[0], k1, k2, lambda_value)
        else:
            dist = _block_distance(qa, ga, metric)
        if inverted_softmax_temperature is not None:
            dist = inverted_softmax(dist, inverted_softmax_temperature)
        blocks.append(gi[np.argsort(dist, axis=1, kind='stable')].reshape(-1))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)


def _sorted_copy(x, order):
    """``x[order]`` as a contiguous array, without a copy when the data is already in action order."""
    if order.size < 2 or np.all(order[1:] > order[:-1]):
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x[order])


def _ranked_plain(qf, gf, q_sq, g_sq, q_order, g_order, q_count, q_start, g_count, g_start, sorted_lengths,
                  metric, fast):
    """Plain ranking. Per action one small product of its queries and gallery, written straight into a flat
    list of same-action pairs (the [nq_a, ng_a] block in row-major order is exactly these queries' consecutive
    segments); then the distances of all pairs at once and a stable sort inside every segment (the compiled
    segment sort when ``fast``, one ``np.argsort`` per action otherwise: identical orders)."""
    total = int(sorted_lengths.sum())
    qs = _sorted_copy(qf, q_order)                       # action-sorted: every action is a slice
    gs = _sorted_copy(gf, g_order)
    dist = np.empty(total, dtype=np.result_type(qs.dtype, gs.dtype))
    blocks = []                                          # (entry start, entry end, nq_a, ng_a)
    e0 = 0
    for a in np.flatnonzero(q_count * g_count).tolist():
        i0, i1 = q_start[a], q_start[a] + q_count[a]
        g0, g1 = g_start[a], g_start[a] + g_count[a]
        e1 = e0 + (i1 - i0) * (g1 - g0)
        np.einsum('id,jd->ij', qs[i0:i1], gs[g0:g1], out=dist[e0:e1].reshape(i1 - i0, g1 - g0))
        blocks.append((e0, e1, i1 - i0, g1 - g0))
        e0 = e1
    # entry -> (action-sorted query, action-sorted gallery column)
    seg_start = np.cumsum(sorted_lengths) - sorted_lengths
    seg_g_start = np.repeat(g_start, q_count)            # gallery start of each action-sorted query's action
    col = np.repeat(seg_g_start - seg_start, sorted_lengths) + np.arange(total, dtype=np.int64)
    if metric == 'cosine':
        np.subtract(1.0, dist, out=dist)
    else:                                                # |q|^2 + |g|^2 - 2 q.g
        dist *= -2.0
        dist += np.repeat(q_sq, sorted_lengths)
        dist += g_sq[col]
    if fast:
        offsets = np.zeros(q_order.shape[0] + 1, dtype=np.int64)
        np.cumsum(sorted_lengths, out=offsets[1:])
        local = _rank_cy.segment_argsort(dist, offsets)
    else:
        local = np.empty(total, dtype=np.int64)
        for e0, e1, nqa, nga in blocks:
            local[e0:e1] = np.argsort(dist[e0:e1].reshape(nqa, nga), axis=1, kind='stable').reshape(-1)
    return g_order[np.repeat(seg_g_start, sorted_lengths) + local]


def _split(flat, offsets):
    bounds = offsets.tolist()
    return [flat[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]


def rank_by_action(qf, gf, q_actions, g_actions, metric='euclidean', normalize=False, rerank=False, k1=20, k2=6,
                   lambda_value=0.3, query_expansion=False, qe_k=3, qe_alpha=0.0, inverted_softmax=False,
                   inverted_softmax_temperature=0.3, use_cython=True):
    """Rank, for every query, the gallery items of its own action.

    Args:
        qf, gf (torch.Tensor | np.ndarray): ``[nq, d]`` / ``[ng, d]`` features.
        q_actions, g_actions: action index of every query / gallery item.
        metric (str): ``'euclidean'`` (squared) or ``'cosine'``; ``normalize`` L2-normalises first.
        rerank (bool): k-reciprocal re-ranking inside each action (``k1``, ``k2``, ``lambda_value``).
        query_expansion (bool): average query expansion inside each action before ranking: every query is
            averaged with its ``qe_k`` nearest gallery items, weighted by ``max(cos, 0) ** qe_alpha`` when
            ``qe_alpha > 0`` (alpha-QE), uniformly otherwise.
        inverted_softmax (bool): rank by the action's inverted softmax (:func:`inverted_softmax`, applied
            last, after query expansion and re-ranking) with ``inverted_softmax_temperature``.
        use_cython (bool): sort with the compiled segment sort when built (same rankings either way).

    Returns:
        list of np.ndarray: per query, int64 gallery LIST POSITIONS of the query's action, best first
        (stable: ties keep gallery order). Empty for a query whose action has no gallery item.
    """
    flat, offsets = _rank_by_action_csr(qf, gf, q_actions, g_actions, metric=metric, normalize=normalize,
                                        rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value,
                                        query_expansion=query_expansion, qe_k=qe_k, qe_alpha=qe_alpha,
                                        inverted_softmax=inverted_softmax,
                                        inverted_softmax_temperature=inverted_softmax_temperature,
                                        use_cython=use_cython)
    return _split(flat, offsets)


def evaluate_soccernetv3(qf, gf, q_pids, g_pids, q_actions, g_actions, max_rank=50, use_cython=True,
                         **rank_kwargs):
    """SoccerNet-v3 evaluation without the full query x gallery matrix.

    Same numbers as ``evaluate_rank(full_distmat, ..., eval_metric='soccernetv3')`` for the same distances.
    ``rank_kwargs`` go to :func:`rank_by_action` (metric, normalize, rerank, k1, k2, lambda_value,
    query_expansion, qe_k, qe_alpha, inverted_softmax, inverted_softmax_temperature).

    Returns:
        (RankResult, rankings): rankings as returned by :func:`rank_by_action`.
    """
    flat, offsets = _rank_by_action_csr(qf, gf, q_actions, g_actions, use_cython=use_cython, **rank_kwargs)
    nq = offsets.shape[0] - 1
    q_pids = _labels(q_pids, 'q_pids', nq)
    g_pids = _labels(g_pids, 'g_pids', len(gf))  # gf's shape was checked when ranking
    if nq == 0:
        raise ValueError('No query to evaluate (qf has 0 rows)')
    qp, gp, _ = _joint_codes(q_pids, g_pids)
    result = _metrics_from_csr(flat, offsets, qp, gp, max_rank, use_cython)
    return result, _split(flat, offsets)
