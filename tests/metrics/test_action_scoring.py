"""score_actions: the compiled one-pass kernel and the NumPy reference against a brute-force full matrix.

Integer-valued features make every dot product exact whatever the summation order (BLAS, einsum, the plain
loop here), so all three must give IDENTICAL rankings and statistics, ties included (and there are many).
"""
import numpy as np
import pytest

from torchreid.metrics import rank as R
from torchreid.metrics.action_scoring import score_actions, score_actions_np

HAS_KERNEL = R.IS_CYTHON_AVAI and hasattr(R._rank_cy, 'score_by_action')
needs_kernel = pytest.mark.skipif(not HAS_KERNEL, reason='the compiled rank extension (rank_cy.score_by_action) '
                                                         'is not built; only the NumPy reference is tested')


def _prepare(qf, gf, q_actions, g_actions):
    """The inputs exactly as a caller builds them."""
    q_sq = np.einsum('ij,ij->i', qf, qf)
    g_sq = np.einsum('ij,ij->i', gf, gf)
    qa, ga, num_actions = R._joint_codes(np.asarray(q_actions), np.asarray(g_actions))
    q_order = np.argsort(qa, kind='stable')
    g_order = np.argsort(ga, kind='stable')
    q_count = np.bincount(qa, minlength=num_actions)
    g_count = np.bincount(ga, minlength=num_actions)
    q_start = np.cumsum(q_count) - q_count
    g_start = np.cumsum(g_count) - g_count
    offsets = np.zeros(len(qa) + 1, dtype=np.int64)
    np.cumsum(g_count[qa], out=offsets[1:])
    return q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count, offsets


def _brute_force(qf, gf, q_actions, g_actions, metric, q_pids, g_pids):
    """Full [nq, ng] distance matrix in float64 (exact for integer features), stable argsort of each whole row
    restricted to the query's action; the statistics by a plain loop."""
    qf, gf = qf.astype(np.float64), gf.astype(np.float64)
    dot = qf @ gf.T
    if metric == 'cosine':
        dist = 1.0 - dot
    else:
        dist = (qf * qf).sum(1)[:, None] + (gf * gf).sum(1)[None, :] - 2.0 * dot
    rankings, stats = [], []
    for i in range(qf.shape[0]):
        order = np.argsort(dist[i], kind='stable')
        r = order[np.asarray(g_actions)[order] == q_actions[i]]
        rankings.append(r)
        hits, acc, first, last = 0, 0.0, -1, -1
        for k, g in enumerate(r):
            if g_pids[g] == q_pids[i]:
                hits += 1
                acc += hits / (k + 1)
                first = k if first < 0 else first
                last = k
        stats.append((acc, first, last, hits))
    return rankings, stats


def _data(seed, dtype, nq=150, ng=260, dim=9):
    """Integer features in [-2, 2] (many exact ties). Action ids are shuffled and interleaved (the action
    segments are not consecutive rows, so the kernel gathers), with: one action of 70 queries (>= 64: one gemm
    for the action) and 150+ gallery items (longer than the counting sort's limit), actions with one query,
    actions whose queries have no gallery, actions with gallery but no query."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(1000)[:12] * 7 + 3                # arbitrary, unordered action ids
    q_actions = np.concatenate([np.full(70, ids[0]), np.full(1, ids[1]), np.full(1, ids[2]),
                                np.full(3, ids[3]), rng.choice(ids[4:10], nq - 75)])
    g_actions = np.concatenate([np.full(150, ids[0]), np.full(4, ids[1]), np.full(2, ids[11]),
                                rng.choice(np.concatenate([ids[2:3], ids[4:9]]), ng - 156)])  # ids[3], ids[9]: none
    q_actions = q_actions[rng.permutation(nq)]
    g_actions = g_actions[rng.permutation(ng)]
    qf = rng.integers(-2, 3, (nq, dim)).astype(dtype)
    gf = rng.integers(-2, 3, (ng, dim)).astype(dtype)
    q_pids = rng.integers(0, 6, nq)
    g_pids = rng.integers(0, 6, ng)
    return qf, gf, q_actions, g_actions, q_pids, g_pids


def _check_against_brute(flat, stats, offsets, brute_rankings, brute_stats):
    for i, want in enumerate(brute_rankings):
        got = flat[offsets[i]:offsets[i + 1]]
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    ap_sum, first, last, num_rel = stats
    np.testing.assert_array_equal(ap_sum, [s[0] for s in brute_stats])        # same order of additions
    np.testing.assert_array_equal(first, [s[1] for s in brute_stats])
    np.testing.assert_array_equal(last, [s[2] for s in brute_stats])
    np.testing.assert_array_equal(num_rel, [s[3] for s in brute_stats])


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_kernel)])
def test_equals_brute_force_on_exact_features(dtype, metric, use_cython):
    qf, gf, qa, ga, qp, gp = _data(seed=3, dtype=dtype)
    args = _prepare(qf, gf, qa, ga)
    flat, stats = score_actions(qf, gf, *args, metric, q_pid=qp, g_pid=gp, use_cython=use_cython)
    assert flat.shape == (args[-1][-1],)
    _check_against_brute(flat, stats, args[-1], *_brute_force(qf, gf, qa, ga, metric, qp, gp))
    flat2, none = score_actions(qf, gf, *args, metric, use_cython=use_cython)       # without pids
    assert none is None
    np.testing.assert_array_equal(flat2, flat)


@needs_kernel
@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_compiled_identical_to_numpy_on_exact_features(seed, dtype, metric):
    qf, gf, qa, ga, qp, gp = _data(seed=seed, dtype=dtype, dim=5 + seed)
    if seed % 2:                                            # action-sorted rows: the kernel reads them in place
        qo, go = np.argsort(qa, kind='stable'), np.argsort(ga, kind='stable')
        qf, qa, qp, gf, ga, gp = qf[qo], qa[qo], qp[qo], gf[go], ga[go], gp[go]
    args = _prepare(qf, gf, qa, ga)
    flat_c, stats_c = score_actions(qf, gf, *args, metric, q_pid=qp, g_pid=gp, use_cython=True)
    flat_n, stats_n = score_actions_np(qf, gf, *args, metric, q_pid=qp, g_pid=gp)
    np.testing.assert_array_equal(flat_c, flat_n)
    for c, n in zip(stats_c, stats_n):
        assert c.dtype == n.dtype
        np.testing.assert_array_equal(c, n)


@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_kernel)])
def test_empty_and_degenerate_inputs(use_cython):
    def run(qf, gf, qa, ga, qp, gp, metric='euclidean'):
        return score_actions(qf, gf, *_prepare(qf, gf, qa, ga), metric, q_pid=qp, g_pid=gp,
                             use_cython=use_cython)

    f = np.ones((3, 4), np.float32)
    none_i = np.zeros(0, np.int64)
    # no query
    flat, (ap, first, last, nrel) = run(f[:0], f, none_i, np.array([1, 1, 2]), none_i, np.arange(3))
    assert flat.shape == (0,) and ap.shape == first.shape == last.shape == nrel.shape == (0,)
    # no gallery: every query gets an empty ranking and the statistics of a query without a hit
    flat, (ap, first, last, nrel) = run(f, f[:0], np.array([1, 1, 2]), none_i, np.arange(3), none_i)
    assert flat.shape == (0,)
    np.testing.assert_array_equal(first, [-1, -1, -1])
    np.testing.assert_array_equal(nrel, [0, 0, 0])
    # zero-dimensional features: every distance is 0, rankings keep gallery order
    z = np.zeros((3, 0), np.float64)
    flat, (ap, first, last, nrel) = run(z, z, np.array([5, 6, 5]), np.array([5, 5, 6]), np.arange(3),
                                        np.array([2, 0, 1]))
    np.testing.assert_array_equal(flat, [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(first, [1, 0, 0])
    np.testing.assert_array_equal(ap, [0.5, 1.0, 1.0])


@needs_kernel
@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_compiled_agrees_with_numpy_on_random_features(metric):
    """General floats: BLAS and NumPy add the products in different orders, so only near-ties may swap."""
    rng = np.random.default_rng(0)
    nq, ng, dim, na = 400, 1200, 64, 40
    qa, ga = rng.integers(0, na, nq), rng.integers(0, na, ng)
    qp, gp = rng.integers(0, 8, nq) + 10 * qa, rng.integers(0, 8, ng) + 10 * ga
    centres = rng.standard_normal((na * 10, dim)).astype(np.float32)
    qf = (centres[qp] + rng.standard_normal((nq, dim))).astype(np.float32)
    gf = (centres[gp] + rng.standard_normal((ng, dim))).astype(np.float32)
    if metric == 'cosine':
        qf /= np.linalg.norm(qf, axis=1, keepdims=True)
        gf /= np.linalg.norm(gf, axis=1, keepdims=True)
    args = _prepare(qf, gf, qa, ga)
    flat_c, stats_c = score_actions(qf, gf, *args, metric, q_pid=qp, g_pid=gp, use_cython=True)
    flat_n, stats_n = score_actions_np(qf, gf, *args, metric, q_pid=qp, g_pid=gp)
    ap_c, ap_n = stats_c[0] / np.maximum(stats_c[3], 1), stats_n[0] / np.maximum(stats_n[3], 1)
    assert abs(ap_c.mean() - ap_n.mean()) < 1e-9
    np.testing.assert_array_equal(stats_c[3], stats_n[3])
    differ = np.flatnonzero(flat_c != flat_n)
    assert differ.size <= 0.001 * flat_c.size
    # wherever they differ, the two items are within float32 rounding of each other (float64 distances)
    q_of = np.repeat(np.arange(nq), np.diff(args[-1]))[differ]
    d64 = lambda g: ((qf[q_of].astype(np.float64) - gf[g].astype(np.float64)) ** 2).sum(1) \
        if metric == 'euclidean' else 1 - (qf[q_of].astype(np.float64) * gf[g]).sum(1)
    assert np.all(np.abs(d64(flat_c[differ]) - d64(flat_n[differ])) < 1e-4)


@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_kernel)])
def test_rejects_inconsistent_inputs(use_cython):
    qf, gf, qa, ga, qp, gp = _data(seed=0, dtype=np.float32)
    args = list(_prepare(qf, gf, qa, ga))

    def run(args, metric='euclidean', **kw):
        return score_actions(qf, gf, *args, metric, use_cython=use_cython, **kw)

    bad = list(args)
    bad[-1] = args[-1].copy()
    bad[-1][1:] += 1                                        # query 0 gets one entry too many
    with pytest.raises(ValueError, match='offsets'):
        run(bad)
    bad = list(args)
    bad[2] = args[2].copy()
    bad[2][0] = bad[2][1]                                   # a query twice, another never
    with pytest.raises(ValueError, match='permutation'):
        run(bad)
    with pytest.raises(ValueError, match='metric'):
        run(args, 'manhattan')
    with pytest.raises(ValueError, match='both'):
        run(args, q_pid=qp)
    with pytest.raises(ValueError, match='float32 or float64'):
        score_actions(qf.astype(np.int64), gf, *args, 'euclidean', use_cython=use_cython)
