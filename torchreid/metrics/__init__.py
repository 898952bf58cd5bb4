"""Evaluation: distances, ranking options and steps, evaluators per protocol, CMC/mAP/mINP, the challenge's
ranking JSON. Imports numpy, scipy, torch (distances), :mod:`torchreid.soccernet_format` and
:mod:`torchreid.utils.io`; never data, models or engine."""
from .accuracy import accuracy
from .distance import compute_distance_matrix, cosine_distance, euclidean_squared_distance
from .evaluator import (CUHK03Evaluator, Evaluation, FeatureSet, MarketEvaluator, Rankings, ReIDEvaluator,
                        SoccerNetEvaluator, build_evaluator, evaluate_soccernetv3, rank_by_action, register_evaluator,
                        resolve_eval_metric)
from .rank import EVAL_METRICS, IS_CYTHON_AVAI, RankResult, evaluate_rank, evaluate_rankings
from .ranking import (DIST_METRICS, InvertedSoftmax, KReciprocalRerank, OptionError, QueryExpansion, RankingBlock,
                      RankingOptions, RankingStep, inverted_softmax, ranking_steps, register_ranking_step,
                      unregister_ranking_step)
from .rerank import k_reciprocal_re_ranking, re_ranking
from .submission import evaluate_ranking_dicts, evaluate_ranking_file, export_ranking_results, ranking_results_to_dict

__all__ = [
    'accuracy', 'compute_distance_matrix', 'cosine_distance', 'euclidean_squared_distance', 'DIST_METRICS',
    'evaluate_rank', 'evaluate_rankings', 'RankResult', 'IS_CYTHON_AVAI', 'EVAL_METRICS', 're_ranking',
    'k_reciprocal_re_ranking',
    'RankingOptions', 'RankingStep', 'RankingBlock', 'OptionError', 'QueryExpansion', 'KReciprocalRerank',
    'InvertedSoftmax', 'register_ranking_step', 'unregister_ranking_step', 'ranking_steps', 'inverted_softmax',
    'FeatureSet', 'Rankings', 'Evaluation', 'ReIDEvaluator', 'MarketEvaluator', 'CUHK03Evaluator',
    'SoccerNetEvaluator', 'register_evaluator', 'build_evaluator', 'resolve_eval_metric', 'rank_by_action',
    'evaluate_soccernetv3', 'export_ranking_results', 'ranking_results_to_dict', 'evaluate_ranking_file',
    'evaluate_ranking_dicts',
]
