"""Plain per-action ranking and scoring (SoccerNet-v3): every query ranks the gallery of its own action.

:func:`score_actions` takes features that are already prepared (normalised when the options ask for it, their
squared row norms, the action grouping and the output offsets) and returns every query's ranking, plus the
per-query metric sums when identities are given. Two implementations, one contract:

* the compiled kernel ``rank_cy.score_by_action`` (built by ``pip install -e .``): one pass over the actions
  with no Python per action: the dot products from BLAS (one gemm for an action of 64 queries or more, one
  gemv per query below that, which is faster at SoccerNet's sizes), reading the rows in place when the
  action's rows are consecutive and gathering them into a reused buffer otherwise; then distances, stable
  sort and metrics;
* :func:`score_actions_np` below, the readable NumPy reference: one small product per action written into a
  flat buffer of same-action pairs, the distances of all pairs at once, a stable ``np.argsort`` per action.

Both compute the distance in the feature dtype with the same formula order (squared euclidean ``d = dot * -2;
d += |q|^2; d += |g|^2``, cosine ``d = 1 - dot``) and sort stably (ties keep ascending gallery position), so
wherever the dot products are exact (integer-valued features, as in the tests) they give IDENTICAL rankings and
statistics. On general float features BLAS (gemm or gemv) and NumPy add the ``d`` products in different
orders, so a dot product may differ in its last bits, and two items whose distances are within that rounding
may swap. That includes ties in the mathematics (duplicate or rounded features): rankings then agree except
at such ties, and the scores by as much as those swaps move them (mAP to 1e-9 on the bench's features, to
1e-5 on tie-rich rounded features).
"""
import numpy as np

from .rank import _csr_metrics_np, _rank_cy, _use_cython

__all__ = ['score_actions', 'score_actions_np', 'DIST_METRICS']

DIST_METRICS = ('euclidean', 'cosine')     # the kernel's metric code is the index


def _int64(x, name):
    x = np.ascontiguousarray(x)
    if x.ndim != 1 or (x.size and x.dtype.kind not in 'iu'):
        raise ValueError(f'{name} must be a 1-D integer array, got dtype {x.dtype} shape {x.shape}')
    return x.astype(np.int64, copy=False)


def _prepare(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets, dist_metric,
             q_pid, g_pid):
    """Checks shared by both implementations; returns everything as contiguous arrays of the kernel's dtypes."""
    if dist_metric not in DIST_METRICS:
        raise ValueError(f'Unknown distance metric {dist_metric!r}; expected one of {DIST_METRICS}')
    qf, gf = np.asarray(qf), np.asarray(gf)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(f'qf and gf must be [n, d] with the same d, got shapes {qf.shape} and {gf.shape}')
    if qf.dtype not in (np.float32, np.float64) or gf.dtype not in (np.float32, np.float64):
        raise ValueError(f'qf and gf must be float32 or float64, got {qf.dtype} and {gf.dtype}')
    dtype = np.result_type(qf.dtype, gf.dtype)
    qf = np.ascontiguousarray(qf, dtype=dtype)
    gf = np.ascontiguousarray(gf, dtype=dtype)
    q_sq = np.ascontiguousarray(q_sq, dtype=dtype)
    g_sq = np.ascontiguousarray(g_sq, dtype=dtype)
    nq, ng = qf.shape[0], gf.shape[0]
    if q_sq.shape != (nq,) or g_sq.shape != (ng,):
        raise ValueError(f'q_sq / g_sq must have shapes ({nq},) / ({ng},), got {q_sq.shape} / {g_sq.shape}')
    ints = [_int64(x, n) for x, n in ((q_order, 'q_order'), (g_order, 'g_order'), (q_start, 'q_start'),
                                       (q_count, 'q_count'), (g_start, 'g_start'), (g_count, 'g_count'),
                                       (offsets, 'offsets'))]
    q_order, g_order, q_start, q_count, g_start, g_count, offsets = ints
    if q_order.shape[0] != nq or g_order.shape[0] != ng:
        raise ValueError('q_order / g_order must hold every query / gallery position once')
    if not (q_start.shape == q_count.shape == g_start.shape == g_count.shape):
        raise ValueError('q_start, q_count, g_start and g_count must have the same length')
    if offsets.shape[0] != nq + 1:
        raise ValueError(f'offsets must have nq + 1 = {nq + 1} entries, got {offsets.shape[0]}')
    if (q_pid is None) != (g_pid is None):
        raise ValueError('give both q_pid and g_pid, or neither')
    if q_pid is not None:
        q_pid, g_pid = _int64(q_pid, 'q_pid'), _int64(g_pid, 'g_pid')
        if q_pid.shape[0] != nq or g_pid.shape[0] != ng:
            raise ValueError('q_pid / g_pid must hold one code per query / gallery row')
    return (qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets,
            DIST_METRICS.index(dist_metric), q_pid, g_pid)


def score_actions(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets,
                  dist_metric, q_pid=None, g_pid=None, use_cython=True):
    """Rank, for every query, the gallery items of its own action, and optionally score the rankings.

    Args:
        qf, gf (np.ndarray): ``[nq, d]`` / ``[ng, d]`` float32 or float64 features, already L2-normalised
            when the options ask for it (cosine expects unit rows; nothing is normalised here). Made
            C-contiguous (a copy only when they are not) and brought to one dtype.
        q_sq, g_sq (np.ndarray): ``[nq]`` / ``[ng]`` squared row norms (``np.einsum('ij,ij->i', x, x)``),
            used by ``'euclidean'``; cast to the features' dtype.
        q_order, g_order (np.ndarray): int64 stable argsort of the query / gallery action codes.
        q_start, q_count, g_start, g_count (np.ndarray): int64 ``[num_actions]``: where each action's segment
            starts in ``q_order`` / ``g_order`` and how long it is.
        offsets (np.ndarray): int64 ``[nq + 1]`` CSR offsets in the ORIGINAL query order; query ``i``'s ranking
            is ``flat[offsets[i]:offsets[i + 1]]`` and has its action's gallery count entries (0 when the
            action has no gallery).
        dist_metric (str): ``'euclidean'`` (squared: ``dot * -2 + |q|^2 + |g|^2``, in that order, in the
            features' dtype) or ``'cosine'`` (``1 - dot``).
        q_pid, g_pid (np.ndarray | None): int64 identity codes; when given the per-query metric statistics are
            computed too.
        use_cython (bool): use the compiled kernel when it is built (same contract; see the module docstring
            for when the numbers are bit-identical).

    Returns:
        ``(flat, stats)``: ``flat`` int64 ``[offsets[-1]]``, per query (original order) the gallery LIST
        POSITIONS of its action best first, stable (ties keep ascending gallery position); ``stats`` is
        ``(ap_sum, first, last, num_rel)`` per query as :func:`torchreid.metrics.rank._csr_metrics_np` gives
        them (float64 sum over hits of hits_so_far / (position + 1); first and last hit position, -1 without
        a hit; int64 number of hits), or None without pids. Features must be finite (not checked here).
    """
    args = _prepare(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets,
                    dist_metric, q_pid, g_pid)
    if _use_cython(use_cython) and hasattr(_rank_cy, 'score_by_action'):
        return _rank_cy.score_by_action(*args)
    return _score_np(*args)


def score_actions_np(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets,
                     dist_metric, q_pid=None, g_pid=None):
    """The NumPy reference of :func:`score_actions` (same arguments and result)."""
    return _score_np(*_prepare(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count,
                               offsets, dist_metric, q_pid, g_pid))


def _action_sorted(x, order):
    """``x[order]`` as a contiguous array, without a copy when the rows are already in that order."""
    if order.size == 0 or (order[0] == 0 and np.all(order[1:] == order[:-1] + 1)):
        return x
    return x[order]


def _score_np(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets, metric,
              q_pid, g_pid):
    nq = qf.shape[0]
    lengths = np.diff(offsets)                      # per query (original order): its action's gallery size
    sorted_lengths = np.repeat(g_count, q_count)    # the same, per query in action-sorted order
    if (q_order.size and (q_order.min() < 0 or q_order.max() >= nq)) or \
            np.any(np.bincount(q_order, minlength=nq) != 1):
        raise ValueError('q_order must be a permutation of the query positions')
    if sorted_lengths.shape[0] != nq or np.any(lengths[q_order] != sorted_lengths) or offsets[0] != 0:
        raise ValueError("offsets must give every query its action's gallery count entries, starting at 0")
    total = int(offsets[-1])

    # 1. Per action, the [nq_a, ng_a] block of dot products, row-major = those queries' consecutive segments
    #    of the flat list of same-action pairs (queries in action-sorted order).
    qs = _action_sorted(qf, q_order)                # action-sorted rows: every action is a slice
    gs = _action_sorted(gf, g_order)
    dist = np.empty(total, dtype=qf.dtype)
    blocks = []                                     # (first pair, end pair, nq_a, ng_a)
    e0 = 0
    for a in np.flatnonzero(q_count * g_count).tolist():
        i0, i1 = q_start[a], q_start[a] + q_count[a]
        g0, g1 = g_start[a], g_start[a] + g_count[a]
        e1 = e0 + (i1 - i0) * (g1 - g0)
        np.einsum('id,jd->ij', qs[i0:i1], gs[g0:g1], out=dist[e0:e1].reshape(i1 - i0, g1 - g0))
        blocks.append((e0, e1, i1 - i0, g1 - g0))
        e0 = e1

    # 2. Distances of all pairs at once, in the kernel's order of operations.
    seg_start = np.cumsum(sorted_lengths) - sorted_lengths
    seg_g_start = np.repeat(g_start, q_count)       # start (in g_order) of each sorted query's action gallery
    col = np.repeat(seg_g_start - seg_start, sorted_lengths) + np.arange(total, dtype=np.int64)
    if metric == 1:                                 # cosine
        np.subtract(dist.dtype.type(1), dist, out=dist)
    else:                                           # squared euclidean: dot * -2 + |q|^2 + |g|^2
        dist *= dist.dtype.type(-2)
        dist += np.repeat(q_sq[q_order], sorted_lengths)
        dist += g_sq[g_order][col]

    # 3. Stable sort inside every query's segment: the gallery list positions ranked best first.
    local = np.empty(total, dtype=np.int64)
    for e0, e1, nqa, nga in blocks:
        local[e0:e1] = np.argsort(dist[e0:e1].reshape(nqa, nga), axis=1, kind='stable').reshape(-1)
    ranked_sorted = g_order[np.repeat(seg_g_start, sorted_lengths) + local]

    # 4. From action-sorted query order to the original order: query q's segment moves to offsets[q].
    src_start = np.empty(nq, dtype=np.int64)
    src_start[q_order] = seg_start
    flat = ranked_sorted[np.repeat(src_start - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)]
    if q_pid is None:
        return flat, None
    matches = g_pid[flat] == np.repeat(q_pid, lengths)
    return flat, _csr_metrics_np(matches, offsets)
