# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled per-query loops of the rank metrics (built by ``pip install -e .``, never at run time).

The NumPy code in :mod:`torchreid.metrics.rank` is the readable reference; these loops compute the same
per-query quantities (float64 accumulation, same summation order) so both agree to 1e-12. Sorting is not
done here: the callers pass the stable ``np.argsort`` order, so both paths rank identically.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t

cnp.import_array()


def _per_query_outputs(Py_ssize_t n):
    """The outputs of both metric loops for ``n`` queries: ``ap_sum`` (0), ``first`` and ``last`` hit (-1)
    and ``num_rel`` (0), already holding the values of a query without a hit."""
    return (np.zeros(n, dtype=np.float64), np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64),
            np.zeros(n, dtype=np.int64))


def csr_metrics(const uint8_t[::1] matches, const int64_t[::1] offsets):
    """Per-segment AP sum, first/last hit and number of hits of a flat 0/1 match vector.

    Segment ``i`` is ``matches[offsets[i]:offsets[i + 1]]`` (one query's ranked list, best first).
    Returns ``(ap_sum, first, last, num_rel)``; ``ap_sum`` is the un-normalised sum of precision@hit.
    """
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t i, k, s, e
    cdef int64_t hits, first, last
    cdef double acc
    out = _per_query_outputs(n)
    cdef double[::1] ap_sum = out[0]
    cdef int64_t[::1] first_v = out[1]
    cdef int64_t[::1] last_v = out[2]
    cdef int64_t[::1] num_rel = out[3]
    with nogil:
        for i in range(n):
            s = offsets[i]
            e = offsets[i + 1]
            hits = 0
            acc = 0.0
            first = -1
            last = -1
            for k in range(s, e):
                if matches[k]:
                    hits += 1
                    acc = acc + (<double>hits) / (<double>(k - s + 1))
                    if first < 0:
                        first = k - s
                    last = k - s
            ap_sum[i] = acc
            first_v[i] = first
            last_v[i] = last
            num_rel[i] = hits
    return out


def distmat_metrics(const int64_t[:, ::1] order, const int64_t[::1] q_pids, const int64_t[::1] g_pids,
                    const int64_t[::1] q_camids, const int64_t[::1] g_camids, int mode):
    """Walk each row of a (stably) sorted distance matrix, keep the gallery items the protocol allows and
    accumulate AP / first hit / last hit / hits per query (returned as :func:`csr_metrics` does).

    ``mode`` 0 ('default', 'cuhk03'): drop gallery items with the same pid AND the same camera.
    ``mode`` 1 ('soccernetv3'): keep only gallery items with the query's camid (= action); drop nothing else.
    """
    cdef Py_ssize_t nq = order.shape[0]
    cdef Py_ssize_t ng = order.shape[1]
    cdef Py_ssize_t i, k, g
    cdef int64_t pos, hits, first, last, qp, qc
    cdef double acc
    out = _per_query_outputs(nq)
    cdef double[::1] ap_sum = out[0]
    cdef int64_t[::1] first_v = out[1]
    cdef int64_t[::1] last_v = out[2]
    cdef int64_t[::1] num_rel = out[3]
    with nogil:
        for i in range(nq):
            qp = q_pids[i]
            qc = q_camids[i]
            pos = 0
            hits = 0
            acc = 0.0
            first = -1
            last = -1
            for k in range(ng):
                g = order[i, k]
                if mode == 0:
                    if g_pids[g] == qp and g_camids[g] == qc:
                        continue
                else:
                    if g_camids[g] != qc:
                        continue
                if g_pids[g] == qp:
                    hits += 1
                    acc = acc + (<double>hits) / (<double>(pos + 1))
                    if first < 0:
                        first = pos
                    last = pos
                pos += 1
            ap_sum[i] = acc
            first_v[i] = first
            last_v[i] = last
            num_rel[i] = hits
    return out


def cuhk03_sampled_ranks(const int64_t[:, ::1] order, const int64_t[::1] q_pids, const int64_t[::1] g_pids,
                         const int64_t[::1] q_camids, const int64_t[::1] g_camids,
                         const int64_t[:, ::1] keys, Py_ssize_t num_pids):
    """CUHK03 single-shot CMC: per query and repeat, keep one gallery item per identity (the kept item with
    the largest ``keys[repeat, g]``, i.e. a uniformly random one since keys are random permutations) and
    return the 0-based rank of the query's identity among the kept items, or -1 when the query has no
    positive after the same-pid-same-camera removal. ``g_pids`` must be codes in ``[0, num_pids)``.
    """
    cdef Py_ssize_t nq = order.shape[0]
    cdef Py_ssize_t ng = order.shape[1]
    cdef Py_ssize_t nrep = keys.shape[0]
    cdef Py_ssize_t i, k, r, g
    cdef int64_t qp, qc, c, rank, has_pos
    ranks_arr = np.full((nq, nrep), -1, dtype=np.int64)
    best_arr = np.full(num_pids, -1, dtype=np.int64)
    cdef int64_t[:, ::1] ranks = ranks_arr
    cdef int64_t[::1] best = best_arr
    with nogil:
        for i in range(nq):
            qp = q_pids[i]
            qc = q_camids[i]
            has_pos = 0
            for k in range(ng):
                g = order[i, k]
                if g_pids[g] == qp and g_camids[g] != qc:
                    has_pos = 1
                    break
            if not has_pos:
                continue
            for r in range(nrep):
                # pass 1: the winning key of every identity among the kept items
                for k in range(ng):
                    g = order[i, k]
                    c = g_pids[g]
                    if c == qp and g_camids[g] == qc:
                        continue
                    if keys[r, g] > best[c]:
                        best[c] = keys[r, g]
                # pass 2: rank of the query identity's winner among all winners, in distance order
                rank = 0
                for k in range(ng):
                    g = order[i, k]
                    c = g_pids[g]
                    if c == qp and g_camids[g] == qc:
                        continue
                    if keys[r, g] == best[c]:
                        if c == qp:
                            break
                        rank += 1
                ranks[i, r] = rank
                # pass 3: reset what this repeat touched
                for k in range(ng):
                    best[g_pids[order[i, k]]] = -1
    return ranks_arr


ctypedef fused real_t:
    float
    double

cdef enum:
    _RUN = 32


cdef void _stable_argsort(const real_t* v, int64_t* idx, int64_t* tmp, Py_ssize_t n) noexcept nogil:
    """Stable argsort of v[0:n] into idx (insertion-sorted runs of 32, then bottom-up merges)."""
    cdef Py_ssize_t start, end, k, j, lo, mid, hi, i, width
    cdef int64_t key
    cdef real_t x
    for k in range(n):
        idx[k] = k
    start = 0
    while start < n:
        end = start + _RUN if start + _RUN < n else n
        for k in range(start + 1, end):
            key = idx[k]
            x = v[key]
            j = k - 1
            while j >= start and v[idx[j]] > x:   # strict: equal values keep their order
                idx[j + 1] = idx[j]
                j -= 1
            idx[j + 1] = key
        start = end
    width = _RUN
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if v[idx[j]] < v[idx[i]]:         # take the right one only when strictly smaller
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
            for k in range(lo, hi):
                idx[k] = tmp[k]
            lo = hi
        width *= 2


def segment_argsort(const real_t[::1] values, const int64_t[::1] offsets):
    """Stable argsort inside every segment ``values[offsets[i]:offsets[i + 1]]``; returns, for each entry, the
    position (relative to its segment start) of the entry ranked there, exactly as
    ``np.argsort(values[s:e], kind='stable')`` does for each segment. Values must not be NaN."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t i, s, e, longest = 0
    for i in range(n):
        if offsets[i + 1] - offsets[i] > longest:
            longest = offsets[i + 1] - offsets[i]
    out_arr = np.empty(values.shape[0], dtype=np.int64)
    tmp_arr = np.empty(max(longest, 1), dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef int64_t[::1] tmp = tmp_arr
    if values.shape[0] == 0:
        return out_arr
    with nogil:
        for i in range(n):
            s = offsets[i]
            e = offsets[i + 1]
            if e > s:
                _stable_argsort(&values[s], &out[s], &tmp[0], e - s)
    return out_arr
