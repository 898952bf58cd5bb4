"""Ranking options and steps (torchreid/metrics/ranking.py): one declaration per option, hand-worked values,
and a new step added in one place."""
import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch

from torchreid.metrics import (EVAL_METRICS, InvertedSoftmax, KReciprocalRerank, OptionError, QueryExpansion,
                               RankingBlock, RankingOptions, RankingStep, build_evaluator, rank_by_action,
                               ranking_steps, register_ranking_step)
from torchreid.metrics.evaluator import FeatureSet


def test_flat_defaults_are_the_step_defaults_in_run_order():
    flat = RankingOptions.flat_defaults()
    assert list(flat) == ['dist_metric', 'normalize_feature', 'query_expansion', 'qe_k', 'qe_alpha', 'rerank',
                          'rerank_k1', 'rerank_k2', 'rerank_lambda', 'inverted_softmax',
                          'inverted_softmax_temperature']
    assert flat['qe_k'] == QueryExpansion.k and flat['rerank_lambda'] == KReciprocalRerank.lambda_value
    assert flat['inverted_softmax_temperature'] == InvertedSoftmax.temperature
    assert [cls.key for cls in ranking_steps()] == ['query_expansion', 'rerank', 'inverted_softmax']


def test_from_flat_round_trip_and_order():
    opts = RankingOptions.from_flat(inverted_softmax=True, rerank=True, rerank_k1=7, query_expansion=True, qe_k=2,
                                    dist_metric='cosine')
    assert [type(s).key for s in opts.steps] == ['query_expansion', 'rerank', 'inverted_softmax']
    assert opts.step('rerank').k1 == 7 and opts.step('query_expansion').k == 2
    assert RankingOptions.from_flat(opts.to_flat()) == opts
    assert opts.replace(rerank=False).step('rerank') is None
    assert opts.normalises and not RankingOptions().normalises
    # the steps are kept in run order whatever order they are given in
    direct = RankingOptions(steps=(InvertedSoftmax(), QueryExpansion()))
    assert [type(s).key for s in direct.steps] == ['query_expansion', 'inverted_softmax']


@pytest.mark.parametrize('key,value,rule', [
    ('dist_metric', 'l1', 'dist_metric must be one of'),
    ('normalize_feature', 'yes', 'normalize_feature must be True or False'),
    ('qe_k', 0, 'qe_k must be an integer >= 1'),
    ('qe_alpha', -1.0, 'qe_alpha must be a finite number >= 0'),
    ('rerank_k1', 2.5, 'rerank_k1 must be an integer >= 1'),
    ('rerank_k2', 0, 'rerank_k2 must be an integer >= 1'),
    ('rerank_lambda', 1.5, r'rerank_lambda must be in \[0, 1\]'),
    ('inverted_softmax_temperature', 0.0, 'inverted_softmax_temperature must be a finite number > 0'),
    ('inverted_softmax_temperature', float('nan'), 'inverted_softmax_temperature'),
    ('rerank', 1, 'rerank must be True or False'),
])
def test_every_value_is_checked_once_with_its_name(key, value, rule):
    # also when the step it parametrises is off: a wrong value in a config fails at once
    with pytest.raises(OptionError, match=rule) as err:
        RankingOptions.from_flat({key: value})
    assert err.value.key == key


def test_unknown_option_names_the_closest():
    with pytest.raises(TypeError, match=r"'rerank_k'.*did you mean"):
        RankingOptions.from_flat(rerank_k=3)


def test_query_expansion_reference_values():
    # One action, two queries, three gallery items, 2-d features, k=2, uniform weights (alpha 0):
    # q0 = (0, 0): nearest gallery items g0 (1, 0) and g1 (0, 2) -> (0 + 1 + 0, 0 + 0 + 2) / 3 = (1/3, 2/3)
    # q1 = (4, 4): nearest g2 (5, 5) and g1 (0, 2)             -> (4 + 5 + 0, 4 + 5 + 2) / 3 = (3, 11/3)
    qf = np.array([[0.0, 0.0], [4.0, 4.0]])
    gf = np.array([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    out = QueryExpansion(k=2)(RankingBlock(qf, gf, 'euclidean'))
    np.testing.assert_allclose(out.qf, [[1 / 3, 2 / 3], [3.0, 11 / 3]], rtol=0, atol=1e-12)
    assert out.dist is None  # the distances are recomputed from the expanded queries
    # alpha-QE on unit vectors: weights max(cos, 0) ** alpha; g at 90 degrees gets weight 0
    q = np.array([[1.0, 0.0]])
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    expanded = QueryExpansion(k=2, alpha=3.0)(RankingBlock(q, g, 'cosine', normalised=True)).qf
    np.testing.assert_allclose(expanded, [[1.0, 0.0]], atol=1e-12)          # (q + 1 * g0 + 0 * g1) / 2, normalised
    skew = np.array([[0.6, 0.8]])
    expanded = QueryExpansion(k=1, alpha=2.0)(RankingBlock(q, skew, 'cosine', normalised=True)).qf
    mean = (q + 0.6 ** 2 * skew) / (1 + 0.6 ** 2)
    np.testing.assert_allclose(expanded, mean / np.linalg.norm(mean), atol=1e-12)


def test_query_expansion_reorders_as_computed_by_hand():
    # q = (0, 0), gallery g0 = (1, 0), g1 = (0, 1.1), g2 = (0, 3). Plain: g0 (1), g1 (1.21), g2 (9).
    # k=2 expands q to (0 + 1 + 0, 0 + 0 + 1.1) / 3 = (1/3, 1.1/3): to g0 4/9 + 0.1344 = 0.5789,
    # to g1 1/9 + 0.5378 = 0.6489, to g2 1/9 + 6.9344: the order stays g0, g1, g2; with k=3 (all three) it is
    # (1/3, 4.1/3): g0 4/9 + 1.8678 = 2.3122, g1 1/9 + 0.0711 = 0.1822, g2 1/9 + 2.7211: g1, g0, g2.
    qf = np.array([[0.0, 0.0]])
    gf = np.array([[1.0, 0.0], [0.0, 1.1], [0.0, 3.0]])
    assert rank_by_action(qf, gf, [0], [0, 0, 0])[0].tolist() == [0, 1, 2]
    assert rank_by_action(qf, gf, [0], [0, 0, 0], query_expansion=True, qe_k=2)[0].tolist() == [0, 1, 2]
    assert rank_by_action(qf, gf, [0], [0, 0, 0], query_expansion=True, qe_k=3)[0].tolist() == [1, 0, 2]


def test_step_refused_where_it_makes_no_sense():
    opts = RankingOptions.from_flat(inverted_softmax=True)
    with pytest.raises(ValueError, match='inverted_softmax is implemented for soccernetv3'):
        build_evaluator('default', opts)
    build_evaluator('soccernetv3', opts)
    assert set(EVAL_METRICS) == {'default', 'cuhk03', 'soccernetv3'}
    for protocol in EVAL_METRICS:
        assert build_evaluator(protocol).eval_metric == protocol


def test_a_new_step_is_one_class(toy_ranking_step):
    """Registered once, the step is an option of RankingOptions, the evaluators, the engine and the config."""
    assert RankingOptions.flat_defaults()['toy_farthest_first'] is False
    assert RankingOptions.flat_defaults()['toy_weight'] == 1.0
    rng = np.random.default_rng(0)
    qf, gf = rng.standard_normal((6, 4)), rng.standard_normal((15, 4))
    qa, ga = rng.integers(0, 2, 6), rng.integers(0, 2, 15)
    plain = rank_by_action(qf, gf, qa, ga)
    toy = rank_by_action(qf, gf, qa, ga, toy_farthest_first=True, toy_weight=2.0)
    for p, t in zip(plain, toy):
        np.testing.assert_array_equal(t, p[::-1])
    with pytest.raises(OptionError, match='toy_weight'):
        RankingOptions.from_flat(toy_weight=0.0)
    # whole-gallery protocols run it too (it is not per-action only)
    evaluator = build_evaluator('default', RankingOptions.from_flat(toy_farthest_first=True))
    evaluation = evaluator.evaluate(FeatureSet(torch.from_numpy(qf).float(), np.arange(6), np.zeros(6, int)),
                                    FeatureSet(torch.from_numpy(gf).float(), np.arange(15) % 6, np.ones(15, int)))
    assert evaluation.result.mAP > 0
    # a clashing key is refused
    with pytest.raises(ValueError, match='already registered'):
        @register_ranking_step
        @dataclasses.dataclass(frozen=True)
        class _Clash(RankingStep):
            key: ClassVar[str] = 'toy_farthest_first'
            prefix: ClassVar[str] = 'clash'

            def __call__(self, block):
                return block


def test_registering_a_step_again_keeps_its_place_and_query_expansion_refuses_set_distances(toy_ranking_step):
    order = [cls.key for cls in ranking_steps()]
    register_ranking_step(QueryExpansion)
    assert [cls.key for cls in ranking_steps()] == order
    # a step that sets distances, put before query expansion: its work would be lost silently; refused instead
    from torchreid.metrics import unregister_ranking_step

    unregister_ranking_step(toy_ranking_step.key)
    register_ranking_step(toy_ranking_step, before='query_expansion')
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match='query_expansion runs on features'):
        rank_by_action(rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), [0, 0, 0], [0] * 5,
                       toy_farthest_first=True, query_expansion=True)
