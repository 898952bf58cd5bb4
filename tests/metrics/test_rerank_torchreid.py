"""Torchreid-exact ``re_ranking`` against hand-worked cases: squared distances, the strict 2/3 expansion test,
float32; and the project's ``k_reciprocal_re_ranking`` (paper rule ``>=``) on the same case."""
import numpy as np
import pytest
import torch

from torchreid.metrics import k_reciprocal_re_ranking, re_ranking


def line_distances(query_pos, gallery_pos):
    """|a - b| between points on a line: (q_g, q_q, g_g)."""
    q, g = np.asarray(query_pos, float), np.asarray(gallery_pos, float)
    return np.abs(q[:, None] - g[None]), np.abs(q[:, None] - q[None]), np.abs(g[:, None] - g[None])


def kernel_row(pos, p, members):
    """V_p by hand: exp(-d) on ``members``, d = squared distance / the row's largest squared distance."""
    pos = np.asarray(pos, float)
    d = (pos - pos[p]) ** 2
    d = d / d.max()
    v = np.zeros(len(pos))
    v[members] = np.exp(-d[members])
    return v / v.sum(), d


def test_three_points_by_hand():
    # q=0, g1=1, g2=3, k1=1, k2=1. Squared distances scaled per row: q [0, 1/9, 1], g1 [1/4, 0, 1].
    # Reciprocal 1-neighbourhoods (self + nearest): R(q) = R(g1) = {q, g1}, R(g2) = {g2}; the half sets
    # (round(1/2) = 0, +1) hold only the item itself, so the expansion adds nothing.
    q_g, q_q, g_g = line_distances([0.0], [1.0, 3.0])
    a, b = np.exp(-1 / 9), np.exp(-1 / 4)
    v_q = np.array([1, a, 0]) / (1 + a)
    v_g1 = np.array([b, 1, 0]) / (1 + b)
    shared = np.minimum(v_q, v_g1).sum()
    jaccard_g1 = 1 - shared / (2 - shared)
    expected = np.array([[0.7 * jaccard_g1 + 0.3 / 9, 0.7 * 1.0 + 0.3 * 1.0]])
    out = re_ranking(q_g, q_q, g_g, k1=1, k2=1, lambda_value=0.3)
    assert out.dtype == np.float32 and out.shape == (1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # lambda = 1 leaves the original distance: Torchreid's squared one (1/9), not 1/3
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=1, k2=1, lambda_value=1.0), [[1 / 9, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(k_reciprocal_re_ranking(q_g, q_q, g_g, k1=1, k2=1, lambda_value=1.0),
                               [[1 / 3, 1.0]], rtol=1e-12)


# Points on a line: query p at 0; gallery f1=-5, f2=-6, x=9, c=10, y=11.5.  k1=4 (half sets: round(2)+1=3).
# R(p) = {p, f1, f2, x, c} (y is 6th nearest to p).  R(c, 2) = {c, x, y} shares exactly 2 = 2/3 * 3 items
# with R(p): Torchreid's strict test (2 > 2) does not add y to R*(p); the paper's (2 >= 2) does.
# R*(y) = {y, c, x} either way.  So sum_j min(V_p, V_y) runs over {x, c} (Torchreid) or {x, c, y} (paper).
POS = [0.0, -5.0, -6.0, 9.0, 10.0, 11.5]
P, F1, F2, X, C, Y = range(6)


def _expected_p_to_y(r_star_p):
    v_p, d_p = kernel_row(POS, P, r_star_p)
    v_y, _ = kernel_row(POS, Y, [Y, C, X])
    shared = np.minimum(v_p, v_y).sum()
    return 0.7 * (1 - shared / (2 - shared)) + 0.3 * d_p[Y]


def test_strict_two_thirds_rule_by_hand():
    q_g, q_q, g_g = line_distances(POS[:1], POS[1:])
    out = re_ranking(q_g, q_q, g_g, k1=4, k2=1, lambda_value=0.3)
    torchreid_value = _expected_p_to_y([P, F1, F2, X, C])
    np.testing.assert_allclose(out[0, Y - 1], torchreid_value, rtol=1e-6)
    # The project's form with the same (squared) input distances uses the paper's >=: y joins R*(p).
    ours = k_reciprocal_re_ranking(q_g ** 2, q_q ** 2, g_g ** 2, k1=4, k2=1, lambda_value=0.3)
    np.testing.assert_allclose(ours[0, Y - 1], _expected_p_to_y([P, F1, F2, X, C, Y]), rtol=1e-12)
    assert abs(out[0, Y - 1] - ours[0, Y - 1]) > 1e-3


def test_query_expansion_by_hand():
    # k2=2 averages V over each item's 2 nearest (itself and its nearest): check p against y by hand.
    q_g, q_q, g_g = line_distances(POS[:1], POS[1:])
    out = re_ranking(q_g, q_q, g_g, k1=4, k2=2, lambda_value=0.0)
    # nearest other item: p -> f1 (5), y -> c (1.5). R*(f1) = {f1, f2, p, x, c} (R(x, 2) = {x, c, y} shares
    # only 2 of 3 with it); R*(c) = {c, x, y, p, f1} (R(p, 2) = {p, f1, f2} shares only 2 of 3).
    v = {i: kernel_row(POS, i, s)[0] for i, s in
         [(P, [P, F1, F2, X, C]), (F1, [F1, F2, P, X, C]), (Y, [Y, C, X]), (C, [C, X, Y, P, F1])]}
    v_p = (v[P] + v[F1]) / 2
    v_y = (v[Y] + v[C]) / 2
    shared = np.minimum(v_p, v_y).sum()
    np.testing.assert_allclose(out[0, Y - 1], 1 - shared / (2 - shared), rtol=1e-5)


def test_torchreid_signature_inputs_and_exports():
    import torchreid.metrics
    import torchreid.utils

    assert torchreid.utils.re_ranking is torchreid.metrics.re_ranking is re_ranking
    rng = np.random.default_rng(0)
    q, g = torch.from_numpy(rng.standard_normal((4, 3))), torch.from_numpy(rng.standard_normal((9, 3)))
    tensors = [torch.cdist(a, b) ** 2 for a, b in ((q, g), (q, q), (g, g))]
    out = re_ranking(*tensors)                       # tensors accepted, defaults k1=20, k2=6, lambda 0.3
    assert out.shape == (4, 9) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, re_ranking(*[t.numpy() for t in tensors], k1=20, k2=6, lambda_value=0.3))
    with pytest.raises(ValueError, match='g_g_dist must be'):
        re_ranking(tensors[0], tensors[1], tensors[2][:3, :3])
    with pytest.raises(ValueError, match='k1 and k2'):
        re_ranking(*tensors, k2=0)
    # all-equal distances (a collapsed network): Torchreid divides by a zero maximum; here it stays finite
    zeros = [np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 3))]
    assert np.isfinite(re_ranking(*zeros, k1=2, k2=2)).all()
