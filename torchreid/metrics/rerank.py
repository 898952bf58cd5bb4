"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), in two forms.

:func:`re_ranking` is Torchreid's function, reproduced number for number (its quirks included, listed in its
docstring), so a Torchreid/sn-reid script that calls it gets Torchreid's results.

:func:`k_reciprocal_re_ranking` and :func:`re_rank_full` are this project's form, written from the paper's
description; the per-action ranking step (:class:`torchreid.metrics.ranking.KReciprocalRerank`) uses it.
Over the probe set P = queries + gallery, with the original distance d (each row scaled to [0, 1] by its
maximum, so the kernel below does not depend on the feature scale):

1. N(p, k): the k nearest items of p (p itself included), stable order.
2. R(p, k) = {x in N(p, k+1) : p in N(x, k+1)}: the k-reciprocal neighbours.
3. R*(p, k1) = R(p, k1) united with every R(c, k1/2), c in R(p, k1), that shares at least 2/3 of its items
   with R(p, k1) (the paper's expansion with the half-size sets).
4. V_p: Gaussian-kernel weights exp(-d(p, x)) on R*(p, k1), zero elsewhere, normalised to sum 1.
5. Local query expansion: V_p <- mean of V_x over the k2 nearest items x of p.
6. Jaccard distance d_J(p, g) = 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj); since rows sum to 1,
   sum max = 2 - sum min.
7. Final distance = (1 - lambda) * d_J + lambda * d.

Everything is vectorised: small sets (one SoccerNet action) use n x n dense masks, large ones (a global
Market-1501 gallery) sparse (row, column) pair lists costing O(n * k1^2) beyond the distances. Both give the
same result (tested against each other).
"""
from typing import Any

import numpy as np
from scipy import sparse

from .rank import _to_numpy

__all__ = ['re_ranking', 'k_reciprocal_re_ranking', 're_rank_full']

# Query-gallery pairs expanded at once in the Jaccard step (bounds its temporaries).
_PAIR_CHUNK = 1 << 22
# Up to this many probes (queries + gallery) the n x n dense form is used, above it the sparse one.
_DENSE_MAX = 1500


def _as_f64(x, name):
    x = _to_numpy(x).astype(np.float64, copy=False)
    if x.ndim != 2:
        raise ValueError(f'{name} must be 2-D, got shape {x.shape}')
    if not np.isfinite(x).all():
        raise ValueError(f'{name} contains NaN or inf')
    return x


def _nearest(dist, k):
    """Indices of the k nearest items per row (stable: ties keep index order), row blocks bound memory."""
    n = dist.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    step = max(1, (1 << 22) // max(1, n))
    for i in range(0, n, step):
        out[i:i + step] = np.argsort(dist[i:i + step], axis=1, kind='stable')[:, :k]
    return out


def _member(sorted_keys, probe):
    """Vectorised ``probe in sorted_keys`` for int64 pair keys."""
    if sorted_keys.size == 0:
        return np.zeros(probe.shape, dtype=bool)
    idx = np.searchsorted(sorted_keys, probe)
    np.minimum(idx, sorted_keys.size - 1, out=idx)
    return sorted_keys[idx] == probe


def _reciprocal(nn):
    """Mask ``[n, k]``: ``nn[p, i]`` is a reciprocal neighbour (p is also among its k nearest)."""
    n = nn.shape[0]
    rows = np.arange(n, dtype=np.int64)[:, None]
    forward = np.sort((rows * n + nn).reshape(-1))
    return _member(forward, nn * n + rows)


def _validated_blocks(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, as_array):
    q_g, q_q, g_g = as_array(q_g_dist, 'q_g_dist'), as_array(q_q_dist, 'q_q_dist'), as_array(g_g_dist, 'g_g_dist')
    nq, ng = q_g.shape
    if q_q.shape != (nq, nq):
        raise ValueError(f'q_q_dist must be [{nq}, {nq}] to match q_g_dist {q_g.shape}, got {q_q.shape}')
    if g_g.shape != (ng, ng):
        raise ValueError(f'g_g_dist must be [{ng}, {ng}] to match q_g_dist {q_g.shape}, got {g_g.shape}')
    check_rerank_args(k1, k2, lambda_value)
    return q_g, q_q, g_g


def _as_real(x, name):
    """Like :func:`_as_f64` but keeps the floating dtype (Torchreid squares in the input's precision)."""
    x = _to_numpy(x)
    if x.dtype.kind not in 'fiu':
        raise ValueError(f'{name} must be numeric, got dtype {x.dtype}')
    if x.dtype.kind != 'f':
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f'{name} must be 2-D, got shape {x.shape}')
    if not np.isfinite(x).all():
        raise ValueError(f'{name} contains NaN or inf')
    return x


def re_ranking(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking exactly as Torchreid's ``torchreid.utils.re_ranking`` computes it.

    Same signature, same numbers (float32, as Torchreid), so Torchreid / sn-reid code calling it reproduces
    Torchreid's results. Torchreid's version has quirks that are kept here on purpose:

    * the distances are **squared** before use (its callers pass squared Euclidean distances, so those are
      effectively raised to the 4th power) and each row is scaled by its maximum, in float32;
    * neighbour lists come from NumPy's default (unstable) argsort, so exact ties may put an item before
      itself;
    * a candidate's half-size set ``R(c, round(k1 / 2))`` joins the expanded set only when it shares
      **strictly more** than 2/3 of its items with ``R(p, k1)`` (the paper's rule, and
      :func:`k_reciprocal_re_ranking`, use ``>=``).

    Only where Torchreid would divide by zero (a sample at distance 0 from everything) this version scales
    by 1 instead of returning NaN. It holds ``(nq + ng)^2`` float32 matrices (about 3 of them) and loops over
    samples in Python: it is a reference for Torchreid parity. The evaluation's ``rerank=True`` uses
    :func:`re_rank_full` per SoccerNet action (or once for Market-style sets) instead.

    Args:
        q_g_dist: ``[nq, ng]`` query-gallery distances (numpy array or tensor).
        q_q_dist: ``[nq, nq]`` query-query distances.
        g_g_dist: ``[ng, ng]`` gallery-gallery distances.
        k1 (int): size of the k-reciprocal neighbourhood (paper: 20).
        k2 (int): size of the local query expansion (1 = none; paper: 6).
        lambda_value (float): weight of the original distance in the final distance (paper: 0.3).

    Returns:
        np.ndarray: float32 ``[nq, ng]`` re-ranked distances.
    """
    q_g, q_q, g_g = _validated_blocks(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, _as_real)
    nq, ng = q_g.shape
    k1, k2 = int(k1), int(k2)
    if nq == 0 or ng == 0:
        return np.zeros((nq, ng), dtype=np.float32)
    n = nq + ng
    full = np.concatenate([np.concatenate([q_q, q_g], axis=1), np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    squared = np.power(full, 2).astype(np.float32)
    col_max = squared.max(axis=0)
    col_max[col_max == 0] = 1.0
    dist = np.transpose(squared / col_max)            # row p scaled by its maximum (the matrix is symmetric)
    rank = np.argsort(dist).astype(np.int64)           # NumPy's default sort kind, as Torchreid

    near_f = rank[:, :k1 + 1]
    recip_f = _reciprocal(near_f)                      # near_f[p, i] is a k1-reciprocal neighbour of p
    near_h = rank[:, :int(np.around(k1 / 2.0)) + 1]
    recip_h = _reciprocal(near_h)

    V = np.zeros((n, n), dtype=np.float32)
    for p in range(n):
        r_p = near_f[p][recip_f[p]]
        members = near_h[r_p]                          # [|R(p)|, k1/2 + 1]: candidates' half-size lists
        valid = recip_h[r_p]
        shared = (np.isin(members, r_p) & valid).sum(axis=1)
        expand = shared > 2.0 / 3 * valid.sum(axis=1)  # strict, as Torchreid
        idx = np.unique(np.concatenate([r_p, members[expand][valid[expand]]]))
        weight = np.exp(-dist[p, idx])
        V[p, idx] = 1.0 * weight / np.sum(weight)
    if k2 != 1:
        expanded = np.empty_like(V)
        step = max(1, (1 << 24) // max(1, k2 * n))
        for start in range(0, n, step):
            expanded[start:start + step] = V[rank[start:start + step, :k2]].mean(axis=1)
        V = expanded
    del rank

    # sum_j min(V_pj, V_gj), accumulated over the columns j in increasing order in float32 (Torchreid's order).
    V_gallery_t = np.ascontiguousarray(V[nq:].T)       # [n, ng]
    min_sum = np.empty((nq, ng), dtype=np.float32)
    for p in range(nq):
        nz = np.flatnonzero(V[p])
        if nz.size == 0:
            min_sum[p] = 0.0
            continue
        min_sum[p] = np.minimum(V[p, nz][:, None], V_gallery_t[nz]).sum(axis=0)
    jaccard = 1 - min_sum / (2.0 - min_sum)
    return jaccard * (1 - lambda_value) + dist[:nq, nq:] * lambda_value


def k_reciprocal_re_ranking(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6,
                            lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking of a query x gallery distance matrix, this project's form (module docstring).

    Same signature as :func:`re_ranking`; the distances are used as given (not squared), neighbour lists
    are stable, the expansion test is ``>= 2/3`` and the computation is float64 and vectorised.

    Args:
        q_g_dist: ``[nq, ng]`` query-gallery distances.
        q_q_dist: ``[nq, nq]`` query-query distances.
        g_g_dist: ``[ng, ng]`` gallery-gallery distances.
        k1 (int): size of the k-reciprocal neighbourhood.
        k2 (int): size of the local query expansion (1 = none).
        lambda_value (float): weight of the original distance in the final distance.

    Returns:
        np.ndarray: float64 ``[nq, ng]`` re-ranked distances.
    """
    q_g, q_q, g_g = _validated_blocks(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, _as_f64)
    nq, ng = q_g.shape
    if nq == 0 or ng == 0:
        return q_g.copy()
    n = nq + ng
    dist = np.empty((n, n), dtype=np.float64)
    dist[:nq, :nq] = q_q
    dist[:nq, nq:] = q_g
    dist[nq:, :nq] = q_g.T
    dist[nq:, nq:] = g_g
    return re_rank_full(dist, nq, k1, k2, lambda_value)


def check_rerank_args(k1, k2, lambda_value):
    if int(k1) != k1 or k1 < 1 or int(k2) != k2 or k2 < 1:
        raise ValueError(f'k1 and k2 must be integers >= 1, got k1={k1}, k2={k2}')
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f'lambda_value must be in [0, 1], got {lambda_value}')


def re_rank_full(dist, nq, k1=20, k2=6, lambda_value=0.3):
    """Re-ranking from the whole ``[n, n]`` distance matrix of (queries first, then gallery); returns the
    ``[nq, n - nq]`` query x gallery part. ``dist`` is overwritten (scaled)."""
    n = dist.shape[0]
    k1, k2 = int(k1), int(k2)
    dist = dist.astype(np.float64, copy=False)
    # A sample is at distance 0 from itself, whatever the metric gave (cosine of an all-zero feature is 1),
    # and negative distances are round-off; so each sample is its own nearest neighbour.
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    scale = dist.max(axis=1, keepdims=True)
    scale[scale <= 0] = 1.0
    dist /= scale
    kf = min(k1 + 1, n)                       # N(p, k1 + 1): self plus k1 neighbours
    kh = min(int(round(k1 / 2.0)) + 1, n)     # N(p, k1/2 + 1)
    kq = min(k2, n)
    if n <= _DENSE_MAX:
        min_sum = _min_sum_dense(dist, nq, kf, kh, kq)
    else:
        min_sum = _min_sum_sparse(dist, nq, kf, kh, kq)
    jaccard = 1.0 - min_sum / (2.0 - min_sum)
    return (1.0 - lambda_value) * jaccard + lambda_value * dist[:nq, nq:]


def _mm(a, b):
    """Matrix product; small ones through einsum's own loop (a threaded BLAS spins its pool for tiny ones)."""
    if a.shape[0] * a.shape[1] * b.shape[1] <= (1 << 21):
        return np.einsum('ij,jk->ik', a, b)
    return a @ b


def _min_sum_dense(dist, nq, kf, kh, kq):
    """sum_j min(V_pj, V_gj) for query rows p and gallery rows g, with n x n dense sets (small n: one action)."""
    n = dist.shape[0]
    order = np.argsort(dist, axis=1, kind='stable')
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(n)[None, :]     # rank[p, x] = position of x in p's list
    near_f = rank < kf
    recip = near_f & near_f.T                                       # R(p, k1)
    near_h = rank < kh
    recip_h = near_h & near_h.T                                     # R(c, k1/2)
    inter = _mm(recip.astype(np.float64), recip_h.T.astype(np.float64))  # |R(p) & R(c, k1/2)|
    expand = recip & (3 * inter >= 2 * recip_h.sum(axis=1)[None, :])
    r_star = recip | (_mm(expand.astype(np.float64), recip_h.astype(np.float64)) > 0)
    r_star[np.diag_indices(n)] = True   # p in R*(p) even among exact ties, so no row of V is empty
    V = np.where(r_star, np.exp(-dist), 0.0)
    V /= V.sum(axis=1, keepdims=True)
    if kq > 1:
        V = _mm((rank < kq) * (1.0 / kq), V)
    ng = n - nq
    out = np.empty((nq, ng), dtype=np.float64)
    step = max(1, (1 << 22) // max(1, ng * n))
    for i in range(0, nq, step):
        out[i:i + step] = np.minimum(V[i:min(i + step, nq), None, :], V[None, nq:, :]).sum(axis=2)
    return out


def _min_sum_sparse(dist, nq, kf, kh, kq):
    """Same as :func:`_min_sum_dense` on sparse pair lists: O(n * k1^2) memory beyond the distances."""
    n = dist.shape[0]
    ng = n - nq
    nn = _nearest(dist, max(kf, kq))
    rows = np.arange(n, dtype=np.int64)[:, None]
    nn_f = nn[:, :kf]
    rec = _reciprocal(nn_f)                   # R(p, k1) as a mask over nn_f
    nn_h = nn[:, :kh]
    rec_h = _reciprocal(nn_h)                 # R(c, k1/2) as a mask over nn_h
    size_h = rec_h.sum(axis=1)

    # Expansion: candidate c = nn_f[p, i] in R(p, k1) brings R(c, k1/2) when |R(p) & R(c, k1/2)| >= 2/3 |R(c, k1/2)|.
    r_keys = np.sort((rows * n + nn_f)[rec])
    members = nn_h[nn_f]                      # [n, kf, kh]: the half-size neighbours of each candidate
    member_ok = rec_h[nn_f]
    inter = (_member(r_keys, rows[:, :, None] * n + members) & member_ok).sum(axis=2)
    expand = rec & (3 * inter >= 2 * size_h[nn_f])
    sel = expand[:, :, None] & member_ok
    extra_keys = (rows[:, :, None] * n + members)[sel]
    # p itself is always in R*(p), even among exact ties, so no row of V is empty.
    keys = np.unique(np.concatenate([r_keys, extra_keys, np.arange(n, dtype=np.int64) * (n + 1)]))
    p_idx, x_idx = keys // n, keys % n

    # V: Gaussian kernel on R*(p), each row normalised to sum 1.
    w = np.exp(-dist[p_idx, x_idx])
    w /= np.bincount(p_idx, weights=w, minlength=n)[p_idx]
    V = sparse.csr_matrix((w, (p_idx, x_idx)), shape=(n, n))
    if kq > 1:
        qe = sparse.csr_matrix((np.full(n * kq, 1.0 / kq), (np.repeat(np.arange(n), kq),
                                                            nn[:, :kq].reshape(-1))), shape=(n, n))
        V = qe @ V

    # sum_j min(V_pj, V_gj) over the columns j where both are non-zero, from the column-wise lists.
    Vc = V.tocsc()
    Vc.sort_indices()
    col = np.repeat(np.arange(n, dtype=np.int64), np.diff(Vc.indptr))
    row = Vc.indices.astype(np.int64)
    val = Vc.data
    is_q = row < nq
    cq, rq, vq = col[is_q], row[is_q], val[is_q]
    cg, rg, vg = col[~is_q], row[~is_q] - nq, val[~is_q]
    g_count = np.bincount(cg, minlength=n)
    g_start = np.cumsum(g_count) - g_count
    pairs_per_q = g_count[cq]
    min_sum = np.zeros(nq * ng, dtype=np.float64)
    cum = np.cumsum(pairs_per_q)
    start = 0
    while start < cq.size:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + _PAIR_CHUNK, side='right')), start + 1)
        cnt = pairs_per_q[start:stop]
        total = int(cnt.sum())
        if total:
            rep = np.repeat(np.arange(start, stop), cnt)
            within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            ge = g_start[cq[rep]] + within
            min_sum += np.bincount(rq[rep] * ng + rg[ge], weights=np.minimum(vq[rep], vg[ge]),
                                   minlength=nq * ng)
        start = stop
    return min_sum.reshape(nq, ng)
