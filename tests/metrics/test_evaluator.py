import logging

import numpy as np
import pytest
import torch

from torchreid.metrics import (compute_distance_matrix, evaluate_rank, evaluate_soccernetv3, inverted_softmax,
                               rank_by_action, k_reciprocal_re_ranking)
from torchreid.metrics import rerank as RR


def _data(seed=0, nq=40, ng=120, n_actions=7, dim=6, unit=False):
    """Integer-valued features: every distance is exact in float32 whatever the summation order, so the
    per-action and full-matrix paths see identical numbers (including many exact ties). ``unit``: rows hold
    exactly four +-1 entries (norm 2), so L2 normalisation is exact too."""
    rng = np.random.default_rng(seed)
    if unit:
        qf, gf = (np.where(rng.random((n, dim)).argsort(axis=1) < 4, rng.choice([-1.0, 1.0], (n, dim)), 0.0)
                  .astype(np.float32) for n in (nq, ng))
        q_actions, g_actions = rng.integers(0, n_actions, nq), rng.integers(0, n_actions, ng)
        return qf, gf, rng.integers(0, 5, nq) + 10 * q_actions, rng.integers(0, 5, ng) + 10 * g_actions, \
            q_actions, g_actions
    q_actions = rng.integers(0, n_actions, nq)
    g_actions = rng.integers(0, n_actions, ng)
    q_pids = rng.integers(0, 5, nq) + 10 * q_actions
    g_pids = rng.integers(0, 5, ng) + 10 * g_actions
    qf = rng.integers(-2, 3, (nq, dim)).astype(np.float32)
    gf = rng.integers(-2, 3, (ng, dim)).astype(np.float32)
    return qf, gf, q_pids, g_pids, q_actions, g_actions


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize('metric,normalize', [('euclidean', False), ('cosine', False), ('euclidean', True)])
@pytest.mark.parametrize('use_cython', [True, False])
def test_per_action_equals_full_matrix(metric, normalize, use_cython):
    qf, gf, qp, gp, qa, ga = _data(unit=normalize or metric == 'cosine')
    full = compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf), metric=metric,
                                   normalize=normalize)
    a = evaluate_rank(full, qp, gp, qa, ga, max_rank=30, eval_metric='soccernetv3', use_cython=use_cython,
                      return_result=True)
    b, rankings = evaluate_soccernetv3(qf, gf, qp, gp, qa, ga, max_rank=30, use_cython=use_cython,
                                       dist_metric=metric, normalize_feature=normalize)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    np.testing.assert_array_equal(a.all_AP, b.all_AP)
    np.testing.assert_array_equal(a.all_INP, b.all_INP)
    assert a.mAP == b.mAP and a.mINP == b.mINP
    # rankings = the stable full-row order restricted to the query's action
    order = np.argsort(full.numpy(), axis=1, kind='stable')
    for i, r in enumerate(rankings):
        assert r.dtype == np.int64
        np.testing.assert_array_equal(r, order[i][ga[order[i]] == qa[i]])


def test_rankings_shape_torch_input_and_unsorted_actions():
    qf, gf, qp, gp, qa, ga = _data(seed=1, nq=15, ng=30, n_actions=4)
    r1 = rank_by_action(torch.from_numpy(qf), torch.from_numpy(gf), torch.from_numpy(qa), torch.from_numpy(ga))
    assert len(r1) == 15
    for i, r in enumerate(r1):
        assert sorted(r.tolist()) == np.flatnonzero(ga == qa[i]).tolist()
    # action ids need not be 0..A-1 nor sorted; a query whose action has no gallery gets an empty list
    qa2 = qa * 100 + 7
    ga2 = ga * 100 + 7
    qa2[0] = 999
    r2 = rank_by_action(qf, gf, qa2, ga2)
    assert r2[0].size == 0
    for i in range(1, 15):
        np.testing.assert_array_equal(r1[i], r2[i])
    res, _ = evaluate_soccernetv3(qf, gf, qp, gp, qa2, ga2)
    assert not res.valid_query_mask[0]


def test_per_action_errors():
    qf, gf, _, _, qa, ga = _data(nq=5, ng=10)
    with pytest.raises(ValueError, match='feature dimensions'):
        rank_by_action(qf, gf[:, :3], qa, ga)
    with pytest.raises(ValueError, match='q_actions'):
        rank_by_action(qf, gf, qa[:2], ga)
    bad = qf.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        rank_by_action(bad, gf, qa, ga)
    with pytest.raises(ValueError, match='dist_metric'):
        rank_by_action(qf, gf, qa, ga, dist_metric='l1')
    with pytest.raises(ValueError, match='rerank_k1'):
        rank_by_action(qf, gf, qa, ga, rerank=True, rerank_k1=0)


def test_rerank_per_action_equals_global_on_each_action():
    qf, gf, _, _, qa, ga = _data(seed=2, nq=30, ng=90, n_actions=4)
    rankings = rank_by_action(qf, gf, qa, ga, rerank=True, rerank_k1=6, rerank_k2=3, rerank_lambda=0.3)
    plain = rank_by_action(qf, gf, qa, ga)
    assert any(not np.array_equal(a, b) for a, b in zip(rankings, plain))   # re-ranking did something
    for a in np.unique(qa):
        qi, gi = np.flatnonzero(qa == a), np.flatnonzero(ga == a)
        q, g = torch.from_numpy(qf[qi]), torch.from_numpy(gf[gi])
        d = k_reciprocal_re_ranking(compute_distance_matrix(q, g), compute_distance_matrix(q, q), compute_distance_matrix(g, g),
                       k1=6, k2=3, lambda_value=0.3)
        order = np.argsort(d, axis=1, kind='stable')
        for row, i in enumerate(qi):
            np.testing.assert_array_equal(rankings[i], gi[order[row]])


def test_rerank_lambda_one_keeps_original_order_and_dense_equals_sparse():
    rng = np.random.default_rng(4)
    q, g = rng.standard_normal((12, 5)), rng.standard_normal((40, 5))
    qg = compute_distance_matrix(q, g).double().numpy()
    qq = compute_distance_matrix(q, q).double().numpy()
    gg = compute_distance_matrix(g, g).double().numpy()
    out = k_reciprocal_re_ranking(qg, qq, gg, k1=5, k2=2, lambda_value=1.0)
    np.testing.assert_array_equal(np.argsort(out, axis=1, kind='stable'), np.argsort(qg, axis=1, kind='stable'))
    assert out.shape == (12, 40)
    for k1, k2 in [(20, 6), (5, 1), (3, 3), (1, 2)]:
        n = 52
        full = np.block([[qq, qg], [qg.T, gg]])
        full = full / full.max(axis=1, keepdims=True)
        kf, kh, kq = min(k1 + 1, n), min(int(round(k1 / 2)) + 1, n), min(k2, n)
        dense = RR._min_sum_dense(full, 12, kf, kh, kq)
        sparse = RR._min_sum_sparse(full, 12, kf, kh, kq)
        np.testing.assert_allclose(dense, sparse, rtol=0, atol=1e-12)
        assert (dense > 0).any()
    with pytest.raises(ValueError, match='g_g_dist'):
        k_reciprocal_re_ranking(qg, qq, gg[:3, :3])


def test_rerank_sparse_path_used_for_large_sets(monkeypatch):
    rng = np.random.default_rng(6)
    q, g = rng.standard_normal((10, 4)), rng.standard_normal((30, 4))
    args = [compute_distance_matrix(a, b).double().numpy() for a, b in ((q, g), (q, q), (g, g))]
    dense = k_reciprocal_re_ranking(*args)
    monkeypatch.setattr(RR, '_DENSE_MAX', 5)
    sparse = k_reciprocal_re_ranking(*args)
    np.testing.assert_allclose(dense, sparse, rtol=0, atol=1e-12)


@pytest.mark.parametrize('dense_max', [1500, 5])
def test_rerank_collapsed_features_stay_finite(monkeypatch, dense_max):
    # A collapsed network gives all-zero features: every cosine distance, self included, is 1, so without
    # forcing each sample into its own neighbour set some rows of V were empty and the scores NaN.
    monkeypatch.setattr(RR, '_DENSE_MAX', dense_max)
    ones = np.ones
    out = k_reciprocal_re_ranking(ones((7, 30)), ones((7, 7)), ones((30, 30)), k1=5, k2=3, lambda_value=0.3)
    assert np.isfinite(out).all()
    qf, gf = np.zeros((6, 8), np.float32), np.zeros((25, 8), np.float32)
    rankings = rank_by_action(qf, gf, np.zeros(6, int), np.zeros(25, int), dist_metric='cosine',
                              normalize_feature=True, rerank=True, rerank_k1=5, rerank_k2=3)
    assert all(sorted(r.tolist()) == list(range(25)) for r in rankings)


@pytest.mark.parametrize('alpha', [0.0, 3.0])
def test_query_expansion_deterministic_changes_results_keeps_shapes(alpha):
    rng = np.random.default_rng(7)
    qf = rng.standard_normal((25, 8)).astype(np.float32)
    gf = rng.standard_normal((80, 8)).astype(np.float32)
    qa, ga = rng.integers(0, 3, 25), rng.integers(0, 3, 80)
    base = rank_by_action(qf, gf, qa, ga)
    a = rank_by_action(qf, gf, qa, ga, query_expansion=True, qe_k=2, qe_alpha=alpha)
    b = rank_by_action(qf, gf, qa, ga, query_expansion=True, qe_k=2, qe_alpha=alpha)
    assert len(a) == len(base)
    for x, y, z in zip(a, b, base):
        np.testing.assert_array_equal(x, y)
        assert sorted(x.tolist()) == sorted(z.tolist())
    assert any(not np.array_equal(x, z) for x, z in zip(a, base))
    both = rank_by_action(qf, gf, qa, ga, query_expansion=True, rerank=True, rerank_k1=5, rerank_k2=2)
    assert [len(x) for x in both] == [len(x) for x in base]


def test_inverted_softmax_demotes_a_box_claimed_by_another_query():
    # Two queries (different people of one action), three gallery boxes. Box 1 is the nearest box of both
    # queries, but far nearer to query 1; plain ranking puts it first for query 0 too. The inverted softmax
    # hands box 1 to query 1, and query 0 gets box 2 (its second nearest) first.
    dist = np.array([[0.50, 0.40, 0.45],
                     [0.90, 0.05, 0.95]])
    assert np.argsort(dist[0]).tolist() == [1, 2, 0]
    scores = inverted_softmax(dist, temperature=0.3)
    assert np.argsort(scores[0]).tolist() == [2, 0, 1]
    assert np.argsort(scores[1]).tolist() == np.argsort(dist[1]).tolist() == [1, 0, 2]
    # Through rank_by_action, on unit vectors (cosine): query angles 0 and 1 rad, boxes at 0.6, -0.7, 3.0.
    # Box 0 is query 0's nearest but nearer still to query 1, so query 0 gets box 1 first; box 1 is then
    # claimed by query 0, so for query 1 the far box 2 passes it.
    def circle(angles):
        return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)

    qf, gf = circle(np.array([0.0, 1.0])), circle(np.array([0.6, -0.7, 3.0]))
    plain = rank_by_action(qf, gf, [4, 4], [4, 4, 4], dist_metric='cosine')
    ism = rank_by_action(qf, gf, [4, 4], [4, 4, 4], dist_metric='cosine', inverted_softmax=True)
    assert [r.tolist() for r in plain] == [[0, 1, 2], [0, 1, 2]]
    assert [r.tolist() for r in ism] == [[1, 0, 2], [0, 2, 1]]


def test_inverted_softmax_matches_reference_formula_per_action():
    qf, gf, qp, gp, qa, ga = _data(seed=5, nq=30, ng=90, n_actions=4)
    t = 0.25
    rankings = rank_by_action(qf, gf, qa, ga, dist_metric='euclidean', inverted_softmax=True,
                              inverted_softmax_temperature=t)
    plain = rank_by_action(qf, gf, qa, ga)
    assert any(not np.array_equal(a, b) for a, b in zip(rankings, plain))
    for a in np.unique(qa):
        qi, gi = np.flatnonzero(qa == a), np.flatnonzero(ga == a)
        d = ((qf[qi, None, :].astype(np.float64) - gf[None, gi, :]) ** 2).sum(-1)
        # softmax over the action's queries plus "none" (logit -1/t), logits -d / (t * mean d)
        logits = -d / (t * d.mean())
        denom = np.exp(logits).sum(0) + np.exp(-1.0 / t)
        prob = np.exp(logits) / denom
        for row, i in enumerate(qi):
            np.testing.assert_array_equal(rankings[i], gi[np.argsort(-prob[row], kind='stable')])
    # metrics through evaluate_soccernetv3 use the same rankings
    res, ranked = evaluate_soccernetv3(qf, gf, qp, gp, qa, ga, dist_metric='euclidean', inverted_softmax=True,
                                       inverted_softmax_temperature=t)
    for x, y in zip(ranked, rankings):
        np.testing.assert_array_equal(x, y)
    assert 0.0 <= res.mAP <= 1.0


def test_inverted_softmax_single_query_action_keeps_the_plain_order():
    rng = np.random.default_rng(8)
    qf, gf = rng.standard_normal((1, 6)), rng.standard_normal((12, 6))
    plain = rank_by_action(qf, gf, [3], [3] * 12)
    ism = rank_by_action(qf, gf, [3], [3] * 12, inverted_softmax=True)
    np.testing.assert_array_equal(plain[0], ism[0])
    # identical features: every distance 0, nothing to re-rank, no NaN
    same = np.ones((3, 4))
    np.testing.assert_array_equal(inverted_softmax(np.zeros((3, 4))), np.zeros((3, 4)))
    assert [r.tolist() for r in rank_by_action(same[:2], same, [0, 0], [0, 0, 0], inverted_softmax=True)] == \
        [[0, 1, 2], [0, 1, 2]]


def test_inverted_softmax_errors():
    qf, gf, _, _, qa, ga = _data(nq=5, ng=10)
    for bad in (0.0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='inverted_softmax_temperature'):
            rank_by_action(qf, gf, qa, ga, inverted_softmax=True, inverted_softmax_temperature=bad)
    with pytest.raises(ValueError, match=r'\[num_query, num_gallery\]'):
        inverted_softmax(np.zeros(4))
