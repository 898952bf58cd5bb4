"""Evaluation: distances, CMC/mAP/mINP, per-action SoccerNet-v3 ranking, re-ranking, ranking JSON export and
a SoccerNet-v3 ranking-file evaluator. Imports only numpy, scipy, torch and torchreid.utils.io."""
from .accuracy import accuracy
from .distance import compute_distance_matrix, cosine_distance, euclidean_squared_distance
from .evaluator import evaluate_ranking_dicts, evaluate_ranking_file
from .per_action import evaluate_soccernetv3, inverted_softmax, rank_by_action
from .rank import IS_CYTHON_AVAI, RankResult, evaluate_rank, evaluate_rankings
from .ranking_export import export_ranking_results, ranking_results_to_dict
from .rerank import re_ranking

__all__ = [
    'accuracy', 'compute_distance_matrix', 'cosine_distance', 'euclidean_squared_distance', 'evaluate_rank',
    'evaluate_rankings', 'RankResult', 'IS_CYTHON_AVAI', 'rank_by_action', 'evaluate_soccernetv3', 'inverted_softmax',
    're_ranking',
    'export_ranking_results', 'ranking_results_to_dict', 'evaluate_ranking_file', 'evaluate_ranking_dicts',
]
