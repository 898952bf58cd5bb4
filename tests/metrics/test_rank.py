import logging
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from torchreid.metrics import rank as R
from torchreid.metrics import evaluate_rank

needs_cython = pytest.mark.skipif(not R.IS_CYTHON_AVAI, reason='Cython extension not built')

# One query, five gallery items at distances 0.1..0.5 (so the ranking is 0, 1, 2, 3, 4).
DIST = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
G_PIDS = np.array([1, 2, 1, 1, 3])
G_CAMS = np.array([0, 1, 1, 1, 1])


@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_cython)])
def test_default_by_hand(use_cython):
    # item 0 (same pid, same camera) is dropped: kept pids 2, 1, 1, 3 -> matches 0 1 1 0
    res = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, max_rank=6, use_cython=use_cython, return_result=True)
    assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-15)       # 7/12
    np.testing.assert_array_equal(res.cmc, [0, 1, 1, 1, 1, 1])              # max_rank > kept length: still 1
    assert res.mINP == pytest.approx(2 / 3, abs=1e-15)                      # 2 hits, last at index 2
    cmc, mAP = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, max_rank=6, use_cython=use_cython)
    assert mAP == res.mAP and cmc.shape == (6,)


@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_cython)])
def test_soccernet_by_hand_no_truncation(use_cython):
    dist = np.vstack([DIST, DIST])
    g_actions = np.array([0, 0, 1, 0, 0])
    # query 0 (action 0, pid 1): list 0, 1, 3, 4 -> pids 1 2 1 3 -> matches 1 0 1 0: AP (1 + 2/3) / 2, INP 2/3
    # query 1 (action 1, pid 1): list = item 2 only, a hit: AP 1, INP 1; its single-item list keeps rank-5 = 1
    res = evaluate_rank(dist, [1, 1], G_PIDS, [0, 1], g_actions, max_rank=5, eval_metric='soccernetv3',
                        use_cython=use_cython, return_result=True)
    np.testing.assert_allclose(res.all_AP, [5 / 6, 1.0], atol=1e-15)
    assert res.mAP == pytest.approx(11 / 12, abs=1e-15)
    np.testing.assert_array_equal(res.cmc, [1, 1, 1, 1, 1])
    assert res.mINP == pytest.approx((2 / 3 + 1) / 2, abs=1e-15)
    assert res.num_valid_queries == 2 and res.valid_query_mask.all()


def test_cuhk03_by_hand():
    # Two identities after removal, each with one item: sampling cannot change anything.
    dist = np.array([[0.3, 0.1, 0.2]])
    res = evaluate_rank(dist, [5], [5, 7, 5], [0], [1, 1, 0], eval_metric='cuhk03', max_rank=3,
                        return_result=True, use_cython=False)
    # item 2 (pid 5, cam 0) dropped; list: item 1 (pid 7), item 0 (pid 5) -> AP 1/2, CMC 0 1 1
    assert res.mAP == pytest.approx(0.5)
    np.testing.assert_array_equal(res.cmc, [0, 1, 1])


def test_invalid_queries_one_warning_and_all_invalid_error(caplog):
    dist = np.vstack([DIST, DIST, DIST])
    with caplog.at_level(logging.WARNING, logger='torchreid.metrics.rank'):
        res = evaluate_rank(dist, [1, 9, 8], G_PIDS, [0, 0, 0], G_CAMS, return_result=True, use_cython=False)
    warned = [r for r in caplog.records if 'left out' in r.getMessage()]
    assert len(warned) == 1 and '2 of 3' in warned[0].getMessage()
    np.testing.assert_array_equal(res.valid_query_mask, [True, False, False])
    assert np.isnan(res.all_AP[1]) and res.num_valid_queries == 1
    with pytest.raises(ValueError, match='No valid query'):
        evaluate_rank(DIST, [9], G_PIDS, [0], G_CAMS)


def test_input_errors_and_compat():
    with pytest.raises(ValueError, match='Unknown eval_metric'):
        evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, eval_metric='market')
    with pytest.raises(ValueError, match='g_pids'):
        evaluate_rank(DIST, [1], G_PIDS[:3], [0], G_CAMS)
    with pytest.raises(ValueError, match='NaN'):
        evaluate_rank(np.array([[np.nan, 1, 2, 3, 4]]), [1], G_PIDS, [0], G_CAMS)
    # Torchreid's positional / keyword use_metric_cuhk03
    a = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, 50, True, return_result=True)
    with pytest.warns(DeprecationWarning):
        b = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, use_metric_cuhk03=True, return_result=True)
    c = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, eval_metric='cuhk03', return_result=True)
    np.testing.assert_array_equal(a.cmc, c.cmc)
    np.testing.assert_array_equal(b.cmc, c.cmc)
    import torch
    d = evaluate_rank(torch.from_numpy(DIST), torch.tensor([1]), torch.from_numpy(G_PIDS), torch.tensor([0]),
                      torch.from_numpy(G_CAMS), return_result=True)
    assert d.mAP == pytest.approx(7 / 12)


def _compare(a, b):
    np.testing.assert_allclose(a.cmc, b.cmc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.all_AP, b.all_AP, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.all_INP, b.all_INP, rtol=0, atol=1e-12)
    assert abs(a.mAP - b.mAP) <= 1e-12 and abs(a.mINP - b.mINP) <= 1e-12
    np.testing.assert_array_equal(a.valid_query_mask, b.valid_query_mask)


@needs_cython
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), nq=st.integers(1, 12), ng=st.integers(1, 30),
       metric=st.sampled_from(['default', 'cuhk03', 'soccernetv3']), max_rank=st.integers(1, 40),
       n_pids=st.integers(1, 6), n_cams=st.integers(1, 4), n_dist=st.integers(1, 8))
def test_cython_equals_numpy(data, nq, ng, metric, max_rank, n_pids, n_cams, n_dist):
    seed = data.draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, n_dist, size=(nq, ng)).astype(np.float32)   # few values -> many ties
    args = (dist, rng.integers(0, n_pids, nq), rng.integers(0, n_pids, ng), rng.integers(0, n_cams, nq),
            rng.integers(0, n_cams, ng))
    logging.disable(logging.WARNING)
    try:
        out = []
        for use_cython in (True, False):
            try:
                out.append(evaluate_rank(*args, max_rank=max_rank, eval_metric=metric, use_cython=use_cython,
                                         return_result=True))
            except ValueError as e:
                out.append(str(e))
    finally:
        logging.disable(logging.NOTSET)
    if isinstance(out[0], str) or isinstance(out[1], str):
        assert out[0] == out[1]                                  # both refuse (no valid query)
    else:
        assert out[0].cmc.shape == (max_rank,)
        _compare(*out)


@needs_cython
def test_cython_equals_numpy_larger_and_chunked(monkeypatch):
    rng = np.random.default_rng(3)
    nq, ng = 70, 400
    dist = rng.random((nq, ng))
    dist[:, ::7] = 0.5                                            # ties
    args = (dist, rng.integers(0, 30, nq), rng.integers(0, 30, ng), rng.integers(0, 3, nq),
            rng.integers(0, 3, ng))
    for metric in ('default', 'cuhk03', 'soccernetv3'):
        a = evaluate_rank(*args, eval_metric=metric, use_cython=True, return_result=True)
        b = evaluate_rank(*args, eval_metric=metric, use_cython=False, return_result=True)
        monkeypatch.setattr(R, '_SORT_BLOCK_ELEMENTS', ng * 9)  # 9 rows per sort block
        c = evaluate_rank(*args, eval_metric=metric, use_cython=False, return_result=True)
        monkeypatch.undo()
        _compare(a, b)
        _compare(b, c)


def test_cuhk03_deterministic_and_seeded():
    rng = np.random.default_rng(5)
    args = (rng.random((20, 60)), rng.integers(0, 8, 20), rng.integers(0, 8, 60), rng.integers(0, 2, 20),
            rng.integers(0, 2, 60))
    a = evaluate_rank(*args, eval_metric='cuhk03', seed=1, use_cython=False)[0]
    b = evaluate_rank(*args, eval_metric='cuhk03', seed=1, use_cython=False)[0]
    np.testing.assert_array_equal(a, b)
    # single-shot sampling removes same-identity items, so the CMC differs from the multi-shot 'default' one;
    # another seed draws other samples
    d = evaluate_rank(*args, eval_metric='default')[0]
    assert not np.array_equal(a, d)
    e = evaluate_rank(*args, eval_metric='cuhk03', seed=2, use_cython=False)[0]
    assert not np.array_equal(a, e)


def test_warns_once_without_extension(monkeypatch):
    monkeypatch.setattr(R, 'IS_CYTHON_AVAI', False)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('default')     # Python's default: once per calling line, no global flag of ours
        for _ in range(3):
            a = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, use_cython=True, return_result=True)
    msgs = [w for w in rec if issubclass(w.category, RuntimeWarning) and 'compiled rank extension' in str(w.message)]
    assert len(msgs) == 1 and 'pip install' in str(msgs[0].message)
    assert a.mAP == pytest.approx(7 / 12)


def test_evaluate_rankings_matches_distmat():
    from torchreid.metrics import evaluate_rankings
    rng = np.random.default_rng(0)
    dist = rng.random((10, 25))
    qp, gp = rng.integers(0, 4, 10), rng.integers(0, 4, 25)
    qa, ga = rng.integers(0, 3, 10), rng.integers(0, 3, 25)
    order = np.argsort(dist, axis=1, kind='stable')
    rankings = [o[ga[o] == qa[i]] for i, o in enumerate(order)]
    logging.disable(logging.WARNING)
    try:
        a = evaluate_rankings(rankings, qp, gp, max_rank=10)
        b = evaluate_rank(dist, qp, gp, qa, ga, max_rank=10, eval_metric='soccernetv3', return_result=True)
    finally:
        logging.disable(logging.NOTSET)
    _compare(a, b)
    with pytest.raises(ValueError, match='outside'):
        evaluate_rankings([np.array([30])], [0], gp)


@needs_cython
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_segment_argsort_equals_numpy_stable(dtype):
    rng = np.random.default_rng(11)
    lengths = np.concatenate([rng.integers(0, 40, 200), [0, 1, 33, 64, 65, 300, 1000]])   # runs and merges
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.integers(0, 7, offsets[-1]).astype(dtype)                              # many ties
    values[::5] = -0.0
    out = R._rank_cy.segment_argsort(values, offsets)
    ref = np.concatenate([np.argsort(values[s:e], kind='stable') for s, e in zip(offsets[:-1], offsets[1:])])
    np.testing.assert_array_equal(out, ref)


@needs_cython
def test_csr_metrics_equals_numpy():
    rng = np.random.default_rng(12)
    lengths = rng.integers(0, 30, 300)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    matches = rng.random(offsets[-1]) < 0.2
    a = R._rank_cy.csr_metrics(matches.view(np.uint8), offsets)
    b = R._csr_metrics_np(matches, offsets)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)      # same summation order: bitwise equal


@pytest.mark.parametrize('use_cython', [False, pytest.param(True, marks=needs_cython)])
def test_float_labels_equal_to_int_labels_are_the_same_ids(use_cython):
    # camids as floats (1.0) and pids as ints: equal numbers are the same ids, as in the all-int call.
    # Compared as text ('1.0' != '1') the same-camera item 0 was kept and the by-hand 7/12 was not reached.
    ints = evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, use_cython=use_cython, max_rank=5)[1]
    assert ints == pytest.approx(7 / 12, abs=1e-15)
    for q_cams, g_cams, q_pids, g_pids in [([0.0], G_CAMS, [1], G_PIDS), ([0], G_CAMS.astype(np.float32), [1], G_PIDS),
                                           ([0.0], G_CAMS.astype(float), [1.0], G_PIDS),
                                           ([0], G_CAMS, np.array([1.0]), G_PIDS.astype(np.float32))]:
        mAP = evaluate_rank(DIST, q_pids, g_pids, q_cams, g_cams, use_cython=use_cython, max_rank=5)[1]
        assert mAP == ints
    # non-integral floats still compare as numbers; NaN is refused with the field named
    frac = evaluate_rank(DIST, [1], G_PIDS, [0.5], G_CAMS + 0.5, use_cython=use_cython, max_rank=5)[1]
    assert frac == ints
    with pytest.raises(ValueError, match='q_camids holds NaN'):
        evaluate_rank(DIST, [1], G_PIDS, [np.nan], G_CAMS, max_rank=5)
    with pytest.raises(ValueError, match='g_pids holds NaN'):
        evaluate_rank(DIST, [1], np.array([1, 2, np.nan, 1, 3]), [0], G_CAMS, max_rank=5)
