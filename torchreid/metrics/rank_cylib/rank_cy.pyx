# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled per-query loops of the rank metrics (built by ``pip install -e .``, never at run time).

The NumPy code in :mod:`torchreid.metrics.rank` is the readable reference; these loops compute the same
per-query quantities (float64 accumulation, same summation order) so both agree to 1e-12. The metric loops
take the stable ``np.argsort`` order from their callers; ``segment_argsort`` and ``score_by_action`` sort
stably themselves (ties keep their order), so every path ranks identically for equal distances.
``score_by_action`` (the per-action SoccerNet path) has its NumPy reference in
:mod:`torchreid.metrics.action_scoring`.
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


# ----------------------------------------------------------------------------------------------------------
# Per-action scoring in one pass (SoccerNet): BLAS products, distances, stable sort and metrics per action
# ----------------------------------------------------------------------------------------------------------
from libc.stdint cimport INT32_MAX, INT64_MAX, int32_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

# An action with at least this many queries gets one gemm for its [nq_a, ng_a] block; smaller ones get one gemv
# per query. At the SoccerNet valid-split scale (6.6 queries x 20 gallery items per action on average, d 512)
# with scipy's OpenBLAS, gemm packs both operands on every call, which at these sizes costs more than the
# product, and blocks above OpenBLAS's threading threshold wake its thread pool, which then spins on the other
# cores (CPU time well above wall time). So gemm is kept for the rare very large action. Figures:
# docs/results.md.
cdef enum:
    _GEMM_MIN_QUERIES = 64
# Rows up to this length are ranked by counting (branch-free, O(n^2)); longer ones by the merge sort.
cdef enum:
    _COUNT_SORT_MAX = 128


cdef void _dot_block(const real_t* g, const real_t* q, real_t* c, int ng_a, int nq_a, int d) noexcept nogil:
    """Row-major ``c[nq_a, ng_a] = q[nq_a, d] @ g[ng_a, d].T`` (rows of ``q`` and ``g`` ``d`` apart), one gemm.

    BLAS is column-major: the row-major ``c`` is the column-major ``c.T = g @ q.T`` ([ng_a, nq_a], ld ng_a),
    and a row-major ``[n, d]`` block is the column-major ``[d, n]`` matrix (ld d), so ``g`` goes in
    transposed and ``q`` as it is."""
    cdef char transa = b'T'
    cdef char transb = b'N'
    cdef real_t one = 1
    cdef real_t zero = 0
    cdef int lda = d
    if real_t is float:
        sgemm(&transa, &transb, &ng_a, &nq_a, &d, &one, <float*>g, &lda, <float*>q, &lda, &zero, c, &ng_a)
    else:
        dgemm(&transa, &transb, &ng_a, &nq_a, &d, &one, <double*>g, &lda, <double*>q, &lda, &zero, c, &ng_a)


cdef void _dot_row(const real_t* g, const real_t* q, real_t* c, int ng_a, int d) noexcept nogil:
    """``c[ng_a] = g[ng_a, d] @ q[d]``, one gemv (the row-major ``g`` is the column-major ``[d, ng_a]``
    matrix, transposed)."""
    cdef char trans = b'T'
    cdef real_t one = 1
    cdef real_t zero = 0
    cdef int inc = 1
    cdef int lda = d
    if real_t is float:
        sgemv(&trans, &d, &ng_a, &one, <float*>g, &lda, <float*>q, &inc, &zero, c, &inc)
    else:
        dgemv(&trans, &d, &ng_a, &one, <double*>g, &lda, <double*>q, &inc, &zero, c, &inc)


cdef bint _consecutive(const int64_t* order, Py_ssize_t n) noexcept nogil:
    """True when ``order[0:n]`` are consecutive ascending positions (the rows can be used in place)."""
    cdef Py_ssize_t k
    for k in range(1, n):
        if order[k] != order[0] + k:
            return False
    return True


cdef const real_t* _rows(const real_t* x, const int64_t* order, Py_ssize_t n, Py_ssize_t d,
                         real_t* buf) noexcept nogil:
    """Pointer to the rows ``x[order[0:n]]`` (of a C-contiguous ``[*, d]`` matrix) laid out ``d`` apart:
    into ``x`` itself when they are consecutive, else a gather into ``buf``."""
    cdef Py_ssize_t k
    if _consecutive(order, n):
        return x + order[0] * d
    for k in range(n):
        memcpy(buf + k * d, x + order[k] * d, d * sizeof(real_t))
    return buf


cdef inline int32_t _key32(float x) noexcept nogil:
    """An int32 with the order of the float (finite or inf; -0.0 and 0.0 get the same key)."""
    cdef int32_t b = 0
    x = x + <float>0.0                          # -0.0 -> 0.0 (round to nearest)
    memcpy(&b, &x, 4)
    return b ^ ((b >> 31) & INT32_MAX)


cdef inline int64_t _key64(double x) noexcept nogil:
    cdef int64_t b = 0
    x = x + 0.0
    memcpy(&b, &x, 8)
    return b ^ ((b >> 63) & INT64_MAX)


ctypedef fused sort_key_t:
    int32_t
    int64_t


cdef void _count_rank(const sort_key_t* key, int64_t* rank, Py_ssize_t n) noexcept nogil:
    """``rank[i]`` = position of entry ``i`` in the stable ascending order of ``key``: the number of smaller
    keys plus the number of equal keys before it. Branch-free loops the compiler vectorises."""
    cdef Py_ssize_t i, j
    cdef sort_key_t ki, r     # the count in the key's width: same-width lanes vectorise best
    for i in range(n):
        ki = key[i]
        r = 0
        for j in range(i):
            r += key[j] <= ki
        for j in range(i + 1, n):
            r += key[j] < ki
        rank[i] = r


cdef void _rank_row(real_t* row, int64_t* rank, int64_t* work, Py_ssize_t n) noexcept nogil:
    """``rank[i]`` = position of ``row[i]`` in its stable ascending order (``row`` may be overwritten)."""
    cdef Py_ssize_t i
    if n <= _COUNT_SORT_MAX:
        if real_t is float:
            for i in range(n):
                (<int32_t*>work)[i] = _key32(row[i])
            _count_rank(<int32_t*>work, rank, n)
        else:
            for i in range(n):
                work[i] = _key64(row[i])
            _count_rank(work, rank, n)
    else:
        _stable_argsort(row, work, rank, n)     # work = order; then invert it into rank
        for i in range(n):
            rank[work[i]] = i


def score_by_action(const real_t[:, ::1] qf, const real_t[:, ::1] gf, const real_t[::1] q_sq,
                    const real_t[::1] g_sq, const int64_t[::1] q_order, const int64_t[::1] g_order,
                    const int64_t[::1] q_start, const int64_t[::1] q_count, const int64_t[::1] g_start,
                    const int64_t[::1] g_count, const int64_t[::1] offsets, int metric, q_pid=None,
                    g_pid=None):
    """Rank every query's own-action gallery (and score it) in one pass over the actions, no Python inside.

    Per action: the dot products of its queries with its gallery from BLAS (one gemm for the action when it
    has 64 queries or more, one gemv per query otherwise: faster at SoccerNet's sizes, where gemm's
    packing dominates), reading the rows in place when the action's list positions are consecutive and
    gathering them into a reused buffer otherwise; then per query the distances, a stable sort, the ranking
    written at the query's offset and its metric statistics.

    Args:
        qf, gf: ``[nq, d]`` / ``[ng, d]`` C-contiguous features, both float32 or both float64, already
            L2-normalised where the options ask for it (nothing is normalised here).
        q_sq, g_sq: ``[nq]`` / ``[ng]`` squared row norms in the same dtype (used by metric 0).
        q_order, g_order: int64 list positions grouped by action (stable argsort of the action codes).
        q_start, q_count, g_start, g_count: int64 ``[num_actions]``, each action's segment of q_order /
            g_order.
        offsets: int64 ``[nq + 1]`` CSR offsets in the ORIGINAL query order; query ``i``'s ranking fills
            ``flat[offsets[i]:offsets[i + 1]]``, whose length must be its action's gallery count.
        metric: 0 squared euclidean ``d = dot * -2; d += q_sq; d += g_sq`` (in the feature dtype, in that
            order, as the NumPy reference), 1 cosine ``d = 1 - dot``.
        q_pid, g_pid: int64 ``[nq]`` / ``[ng]`` identity codes, or None.

    Returns:
        ``(flat, stats)``: ``flat`` int64 ``[offsets[nq]]``, per query the gallery list positions of its
        action best first (stable: ties keep ascending gallery position); ``stats`` = ``(ap_sum, first,
        last, num_rel)`` per query as :func:`csr_metrics` computes them, or None without pids.
        Distances must not be NaN (the caller checks that the features are finite).
    """
    cdef Py_ssize_t nq = qf.shape[0]
    cdef Py_ssize_t ng = gf.shape[0]
    cdef Py_ssize_t d = qf.shape[1]
    cdef Py_ssize_t num_actions = q_start.shape[0]
    cdef Py_ssize_t a, i, j, k, q, nqa, nga, qs, gs, o
    cdef Py_ssize_t max_q = 0, max_g = 0, max_block = 0, total
    cdef bint want_stats = q_pid is not None
    cdef bint gather_q = False, gather_g = False, use_gemm
    cdef const int64_t[::1] qp_v
    cdef const int64_t[::1] gp_v
    cdef int64_t qp, hits, first, last
    cdef double acc
    cdef real_t x, qv
    cdef const real_t* qptr = NULL
    cdef const real_t* gptr = NULL
    cdef const int64_t* gseg
    cdef real_t* row

    # ---- checks (the loop below trusts every index) ----
    if gf.shape[1] != d:
        raise ValueError(f'feature dimensions differ: qf has {d}, gf has {gf.shape[1]}')
    if d > 2147483647:
        raise ValueError('feature dimension too large for a 32-bit BLAS')
    if q_sq.shape[0] != nq or g_sq.shape[0] != ng:
        raise ValueError('q_sq / g_sq must hold one value per query / gallery row')
    if q_order.shape[0] != nq or g_order.shape[0] != ng:
        raise ValueError('q_order / g_order must hold every query / gallery position once')
    if q_count.shape[0] != num_actions or g_start.shape[0] != num_actions or g_count.shape[0] != num_actions:
        raise ValueError('q_start, q_count, g_start and g_count must have the same length')
    if offsets.shape[0] != nq + 1 or offsets[0] != 0:
        raise ValueError('offsets must be [nq + 1] CSR offsets starting at 0')
    if metric != 0 and metric != 1:
        raise ValueError(f'metric must be 0 (euclidean) or 1 (cosine), got {metric}')
    if (q_pid is None) != (g_pid is None):
        raise ValueError('give both q_pid and g_pid, or neither')
    if want_stats:
        qp_v = q_pid
        gp_v = g_pid
        if qp_v.shape[0] != nq or gp_v.shape[0] != ng:
            raise ValueError('q_pid / g_pid must hold one code per query / gallery row')
    for j in range(ng):
        if g_order[j] < 0 or g_order[j] >= ng:
            raise ValueError('g_order holds a position outside [0, ng)')
    seen_arr = np.zeros(nq, dtype=np.uint8)
    cdef uint8_t[::1] seen = seen_arr
    for a in range(num_actions):
        qs, nqa, gs, nga = q_start[a], q_count[a], g_start[a], g_count[a]
        if qs < 0 or nqa < 0 or qs > nq - nqa or gs < 0 or nga < 0 or gs > ng - nga:
            raise ValueError(f'action {a}: its segment lies outside q_order / g_order')
        if nqa > 2147483647 or nga > 2147483647:
            raise ValueError(f'action {a} is too large for a 32-bit BLAS')
        for i in range(qs, qs + nqa):
            q = q_order[i]
            if q < 0 or q >= nq or seen[q]:
                raise ValueError('q_order must be a permutation of the query positions')
            seen[q] = 1
            if offsets[q + 1] - offsets[q] != nga:
                raise ValueError(f'offsets: query {q} must get {nga} entries (its action\'s gallery)')
        if nqa > 0 and nga > 0:
            max_g = max(max_g, nga)
            if not _consecutive(&g_order[gs], nga):
                gather_g = True
            if nqa >= _GEMM_MIN_QUERIES:
                max_q = max(max_q, nqa)
                max_block = max(max_block, nqa * nga)
                if not _consecutive(&q_order[qs], nqa):
                    gather_q = True
    for q in range(nq):
        if not seen[q]:
            raise ValueError('q_order must be a permutation of the query positions')
    total = offsets[nq]

    # ---- outputs and buffers (sized by the largest action, allocated once) ----
    flat_arr = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] flat = flat_arr
    stats = _per_query_outputs(nq) if want_stats else None
    cdef double[::1] ap_sum
    cdef int64_t[::1] first_v
    cdef int64_t[::1] last_v
    cdef int64_t[::1] num_rel
    if want_stats:
        ap_sum, first_v, last_v, num_rel = stats
    dtype = np.float32 if real_t is float else np.float64
    block_arr = np.empty(max(max_block, max_g, 1), dtype=dtype)
    gsq_arr = np.empty(max(max_g, 1), dtype=dtype)
    qbuf_arr = np.empty(max(max_q * d, 1) if gather_q else 1, dtype=dtype)
    gbuf_arr = np.empty(max(max_g * d, 1) if gather_g else 1, dtype=dtype)
    ints_arr = np.empty(3 * max(max_g, 1), dtype=np.int64)   # rank, sort work, pid / hit per item
    cdef real_t[::1] block = block_arr
    cdef real_t[::1] gsq = gsq_arr
    cdef real_t[::1] qbuf = qbuf_arr
    cdef real_t[::1] gbuf = gbuf_arr
    cdef int64_t[::1] ints = ints_arr
    cdef int64_t* rank = &ints[0]
    cdef int64_t* work = rank + max(max_g, 1)
    cdef int64_t* gpid = work + max(max_g, 1)

    with nogil:
        for a in range(num_actions):
            nqa = q_count[a]
            nga = g_count[a]
            if nqa == 0 or nga == 0:
                continue                      # no gallery: empty rankings, stats of a query without hit
            qs = q_start[a]
            gs = g_start[a]
            gseg = &g_order[gs]
            use_gemm = nqa >= _GEMM_MIN_QUERIES
            if d > 0:
                gptr = _rows(&gf[0, 0], gseg, nga, d, &gbuf[0])
                if use_gemm:
                    qptr = _rows(&qf[0, 0], &q_order[qs], nqa, d, &qbuf[0])
                    _dot_block(gptr, qptr, &block[0], <int>nga, <int>nqa, <int>d)
            if metric == 0:
                for j in range(nga):
                    gsq[j] = g_sq[gseg[j]]
            if want_stats:
                for j in range(nga):
                    gpid[j] = gp_v[gseg[j]]
            for i in range(nqa):
                q = q_order[qs + i]
                if use_gemm:
                    row = &block[i * nga]
                else:
                    row = &block[0]
                    if d > 0:
                        _dot_row(gptr, &qf[q, 0], row, <int>nga, <int>d)
                if d == 0:
                    memset(row, 0, nga * sizeof(real_t))
                if metric == 0:
                    qv = q_sq[q]
                    for j in range(nga):
                        x = row[j] * -2
                        x += qv
                        x += gsq[j]
                        row[j] = x
                else:
                    for j in range(nga):
                        row[j] = 1 - row[j]
                _rank_row(row, rank, work, nga)
                o = offsets[q]
                for j in range(nga):
                    flat[o + rank[j]] = gseg[j]
                if want_stats:
                    qp = qp_v[q]
                    for j in range(nga):       # hit flags in ranked order
                        work[rank[j]] = gpid[j] == qp
                    hits = 0
                    acc = 0.0
                    first = -1
                    last = -1
                    for k in range(nga):
                        if work[k]:
                            hits += 1
                            acc = acc + (<double>hits) / (<double>(k + 1))
                            if first < 0:
                                first = k
                            last = k
                    ap_sum[q] = acc
                    first_v[q] = first
                    last_v[q] = last
                    num_rel[q] = hits
    return flat_arr, stats
