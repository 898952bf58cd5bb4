"""Evaluators: one object per evaluation protocol, the boundary between the engine and the metrics.

The engine hands an evaluator the query and gallery features with their metadata (:class:`FeatureSet`) and
gets an :class:`Evaluation` back: every query's ranking and, when the labels are known, the CMC / mAP / mINP
(:class:`~torchreid.metrics.rank.RankResult`). Which evaluator a target gets follows the protocol its dataset
declares (``dataset.eval_metric``), through :func:`build_evaluator`:

* ``'default'`` (Market-1501 style) and ``'cuhk03'``: distances to the whole gallery (BLAS, through
  :func:`~torchreid.metrics.distance.compute_distance_matrix`); gallery items with the query's identity AND
  camera are junk, left out of the rankings and the scores.
* ``'soccernetv3'``: a query ranks only the gallery of its own action (passed in the camid slot); the full
  query x gallery matrix is never built. Plain rankings take one compiled pass over the actions
  (:mod:`~torchreid.metrics.action_scoring`); with ranking steps (query expansion, re-ranking, the inverted
  softmax, ...) every action is a :class:`~torchreid.metrics.ranking.RankingBlock` the steps transform in turn.
  The rankings can be exported as the challenge's JSON (:meth:`SoccerNetEvaluator.export`).

A new protocol is a subclass registered with :func:`register_evaluator`.
"""
import dataclasses
import logging
import time
from collections.abc import Sequence as SequenceABC
from typing import Any, ClassVar, Dict, Iterator, Optional, Sequence, Tuple, Type

import numpy as np

from .action_scoring import score_actions
from .rank import RankResult, _aggregate, _joint_codes, _labels, _metrics_from_csr, _to_numpy
from .ranking import RankingBlock, RankingOptions, apply_steps, l2_normalise, rank_block

__all__ = ['FeatureSet', 'Rankings', 'Evaluation', 'ReIDEvaluator', 'MarketEvaluator', 'CUHK03Evaluator',
           'SoccerNetEvaluator', 'register_evaluator', 'build_evaluator', 'resolve_eval_metric',
           'rank_by_action', 'evaluate_soccernetv3']

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Values passed in and out
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Features of one side (query or gallery) and their metadata, aligned row by row.

    Attributes:
        features: ``[n, d]`` torch tensor or NumPy array.
        pids: identities (ints or strings; ignored when the labels are hidden).
        camids: cameras; for SoccerNet-v3 the action index.
    """

    features: Any
    pids: Any
    camids: Any

    def __len__(self) -> int:
        return len(self.features)


class Rankings(SequenceABC):
    """Per query, gallery LIST POSITIONS best first, stored as one flat int64 array and CSR offsets.

    ``rankings[i]`` is a view of query ``i``'s ranking; nothing is split into per-query arrays unless asked.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat = flat
        self.offsets = offsets
        self._bounds = None

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f'query index {index} out of range for {n} queries')
        index %= n
        return self.flat[self.offsets[index]:self.offsets[index + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        bounds = self.offsets.tolist()
        for i in range(len(bounds) - 1):
            yield self.flat[bounds[i]:bounds[i + 1]]


class DistmatRankings(SequenceABC):
    """Per query, the gallery sorted by a full distance row, junk left out; rows are sorted on access."""

    def __init__(self, distmat: np.ndarray, q_pids=None, g_pids=None, q_camids=None, g_camids=None):
        self.distmat = distmat
        self._junk = None if q_pids is None else (q_pids, g_pids, q_camids, g_camids)

    def __len__(self) -> int:
        return int(self.distmat.shape[0])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = np.argsort(self.distmat[index], kind='stable')
        if self._junk is None:
            return row
        q_pids, g_pids, q_camids, g_camids = self._junk
        return row[~((g_pids[row] == q_pids[index]) & (g_camids[row] == q_camids[index]))]


@dataclasses.dataclass
class Evaluation:
    """What an evaluator returns for one target.

    Attributes:
        eval_metric: the protocol used.
        rankings: per query, gallery list positions best first (only what the protocol compares).
        result: CMC / mAP / mINP, or None when the labels are hidden.
        query_camids, gallery_camids: the camids (SoccerNet: actions) the rankings were made with.
        seconds: time the ranking and scoring took.
    """

    eval_metric: str
    rankings: Sequence[np.ndarray]
    result: Optional[RankResult]
    query_camids: np.ndarray
    gallery_camids: np.ndarray
    seconds: float = 0.0

    def summary(self, ranks: Sequence[int] = (1, 5, 10, 20)) -> Dict[str, Any]:
        """``{'mAP', 'rank1', 'mINP', 'cmc', 'ranks': {r: cmc[r-1]}, 'num_queries', 'num_valid_queries'}``;
        the scores are None when the labels are hidden. A rank past the curve's end (a gallery shorter than
        ``max_rank``) has the curve's last value: every match is within the whole gallery."""
        out = {'eval_metric': self.eval_metric, 'num_queries': len(self.rankings), 'mAP': None, 'rank1': None,
               'mINP': None, 'cmc': None, 'ranks': {}, 'num_valid_queries': None}
        if self.result is not None:
            cmc = np.asarray(self.result.cmc, dtype=np.float64)
            out.update(mAP=float(self.result.mAP), mINP=float(self.result.mINP), cmc=cmc, rank1=float(cmc[0]),
                       num_valid_queries=int(self.result.num_valid_queries),
                       ranks={int(r): float(cmc[min(r, len(cmc)) - 1]) for r in ranks})
        return out


# ----------------------------------------------------------------------------------------------------------
# Evaluators
# ----------------------------------------------------------------------------------------------------------
def _features(x, name: str) -> np.ndarray:
    x = _to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f'{name} must be 2-D [num_samples, feature_dim], got shape {x.shape}')
    if x.dtype.kind != 'f' or x.dtype.itemsize < 4:   # ints, half precision: rank in float32
        x = x.astype(np.float32)
    return np.ascontiguousarray(x)                    # reversed / strided views too (torch needs them plain)


class ReIDEvaluator:
    """Base evaluator: ranks a query set against a gallery and scores the rankings.

    Args:
        options: how to rank (:class:`~torchreid.metrics.ranking.RankingOptions`; default: plain squared
            Euclidean distance).
        max_rank: length of the CMC curve.
        use_cython: use the compiled code where it is built (faster; the same results up to near-ties, see
            :mod:`~torchreid.metrics.action_scoring`).
    """

    eval_metric: ClassVar[str] = ''
    #: Whether the protocol groups queries and gallery by action (per-action-only ranking steps need it).
    per_action: ClassVar[bool] = False

    def __init__(self, options: Optional[RankingOptions] = None, max_rank: int = 50, use_cython: bool = True):
        self.options = RankingOptions() if options is None else options
        if not isinstance(self.options, RankingOptions):
            raise TypeError(f'{type(self).__name__}: options must be a RankingOptions, got '
                            f'{type(self.options).__name__}')
        self.options.check_protocol(self.eval_metric, self.per_action)
        if isinstance(max_rank, bool) or int(max_rank) != max_rank or max_rank < 1:
            raise ValueError(f'{type(self).__name__}: max_rank must be an int >= 1, got {max_rank!r}')
        self.max_rank = int(max_rank)
        self.use_cython = bool(use_cython)

    def evaluate(self, query: FeatureSet, gallery: FeatureSet, hidden_labels: bool = False) -> Evaluation:
        """Rank every query's gallery and, unless ``hidden_labels``, score the rankings."""
        t0 = time.perf_counter()
        q_camids = _labels(query.camids, 'query camids', len(query))
        g_camids = _labels(gallery.camids, 'gallery camids', len(gallery))
        q_pids = None if hidden_labels else _labels(query.pids, 'query pids', len(query))
        g_pids = None if hidden_labels else _labels(gallery.pids, 'gallery pids', len(gallery))
        if not hidden_labels and len(query) == 0:
            raise ValueError('No query to evaluate (the query set is empty)')
        rankings, result = self._rank_and_score(query.features, gallery.features, q_pids, g_pids, q_camids,
                                                g_camids)
        return Evaluation(self.eval_metric, rankings, result, q_camids, g_camids, time.perf_counter() - t0)

    def _rank_and_score(self, qf, gf, q_pids, g_pids, q_camids, g_camids):
        raise NotImplementedError

    def export(self, evaluation: Evaluation, query_info: Optional[Sequence[Any]],
               gallery_info: Optional[Sequence[Any]], save_dir: str, name: str) -> Optional[str]:
        """Write the rankings in the challenge format; protocols without such a format log why and return None."""
        logger.warning('%s: ranking export needs a SoccerNet-format target (per-action rankings of samples with '
                       'a bbox_idx); this target uses %r: not exported', name, self.eval_metric)
        return None


_EVALUATORS: Dict[str, Type[ReIDEvaluator]] = {}


def register_evaluator(cls: Type[ReIDEvaluator]) -> Type[ReIDEvaluator]:
    """Register an evaluator class under its ``eval_metric`` (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, ReIDEvaluator)) or not cls.eval_metric:
        raise TypeError(f'register_evaluator: {cls!r} must be a ReIDEvaluator subclass with an eval_metric')
    current = _EVALUATORS.get(cls.eval_metric)
    if current is not None and current is not cls:
        raise ValueError(f'register_evaluator: {cls.eval_metric!r} is already handled by {current.__name__}')
    _EVALUATORS[cls.eval_metric] = cls
    return cls


def build_evaluator(eval_metric: str, options: Optional[RankingOptions] = None, **kwargs) -> ReIDEvaluator:
    """The evaluator of protocol ``eval_metric`` (``'default'``, ``'cuhk03'``, ``'soccernetv3'``, ...)."""
    if eval_metric not in _EVALUATORS:
        raise ValueError(f'Unknown eval_metric {eval_metric!r}; expected one of {sorted(_EVALUATORS)}')
    return _EVALUATORS[eval_metric](options, **kwargs)


def resolve_eval_metric(declared: Optional[str], requested: Optional[str] = None, use_metric_cuhk03: bool = False,
                        target: str = 'target') -> str:
    """The protocol a target is evaluated with: the one its dataset declares, unless ``requested`` forces
    another (logged); Torchreid's ``use_metric_cuhk03`` turns ``'default'`` into ``'cuhk03'``."""
    eval_metric = declared or 'default'
    if requested is not None and requested != eval_metric:
        logger.warning('%s: eval_metric=%r requested, the dataset declares %r; using %r',
                       target, requested, eval_metric, requested)
        eval_metric = requested
    if eval_metric == 'default' and use_metric_cuhk03:
        eval_metric = 'cuhk03'
    if eval_metric not in _EVALUATORS:
        raise ValueError(f'{target}: eval_metric {eval_metric!r} is not a known protocol; expected one of '
                         f'{sorted(_EVALUATORS)}')
    return eval_metric


def _torch_pairwise(a: np.ndarray, b: np.ndarray, dist_metric: str) -> np.ndarray:
    """Distances of two large sets through torch's BLAS (the Market-style single block)."""
    import torch

    from .distance import compute_distance_matrix

    return compute_distance_matrix(torch.from_numpy(a), torch.from_numpy(b), dist_metric).numpy()


@register_evaluator
class MarketEvaluator(ReIDEvaluator):
    """Market-1501 protocol: the whole gallery, minus the junk (same identity AND same camera as the query)."""

    eval_metric: ClassVar[str] = 'default'

    def _rank_and_score(self, qf, gf, q_pids, g_pids, q_camids, g_camids):
        import torch
        import torch.nn.functional as F

        from .distance import compute_distance_matrix
        from .rank import evaluate_rank

        opts = self.options
        qt = qf if isinstance(qf, torch.Tensor) else torch.from_numpy(_features(qf, 'query features'))
        gt = gf if isinstance(gf, torch.Tensor) else torch.from_numpy(_features(gf, 'gallery features'))
        qt, gt = qt.detach().float().cpu(), gt.detach().float().cpu()
        if opts.normalize_feature:
            qt, gt = F.normalize(qt, p=2, dim=1), F.normalize(gt, p=2, dim=1)
        distmat = compute_distance_matrix(qt, gt, opts.dist_metric).numpy()
        if opts.steps:
            block = RankingBlock(qt.numpy(), gt.numpy(), opts.dist_metric, normalised=opts.normalize_feature,
                                 dist=distmat, pairwise=_torch_pairwise)
            distmat = apply_steps(block, opts.steps)
        if q_pids is None:
            return DistmatRankings(distmat), None
        result = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=self.max_rank,
                               eval_metric=self.eval_metric, use_cython=self.use_cython, return_result=True)
        qp, gp, _ = _joint_codes(q_pids, g_pids)
        qc, gc, _ = _joint_codes(q_camids, g_camids)
        return DistmatRankings(distmat, qp, gp, qc, gc), result


@register_evaluator
class CUHK03Evaluator(MarketEvaluator):
    """CUHK03 protocol: Market's junk rule, single-shot CMC averaged over repeated gallery samplings."""

    eval_metric: ClassVar[str] = 'cuhk03'


@register_evaluator
class SoccerNetEvaluator(ReIDEvaluator):
    """SoccerNet-v3: every query ranks the gallery of its own action (camid = action), and only it."""

    eval_metric: ClassVar[str] = 'soccernetv3'
    per_action: ClassVar[bool] = True

    def rank(self, qf: Any, gf: Any, q_actions: Any, g_actions: Any) -> Rankings:
        """Rankings only (no labels needed)."""
        return self._rank_and_score(qf, gf, None, None, q_actions, g_actions)[0]

    def _rank_and_score(self, qf, gf, q_pids, g_pids, q_actions, g_actions):
        opts = self.options
        qf = _features(qf, 'qf')
        gf = _features(gf, 'gf')
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(f'feature dimensions differ: qf has {qf.shape[1]}, gf has {gf.shape[1]}')
        nq, ng = qf.shape[0], gf.shape[0]
        q_actions = _labels(q_actions, 'q_actions', nq)
        g_actions = _labels(g_actions, 'g_actions', ng)
        q_sq, g_sq = _row_sq(qf), _row_sq(gf)
        if not (np.isfinite(q_sq).all() and np.isfinite(g_sq).all()):
            raise ValueError('qf or gf contains NaN or inf (or values too large for float32)')
        if opts.normalises:
            qf, gf = l2_normalise(qf, q_sq), l2_normalise(gf, g_sq)
            q_sq, g_sq = _row_sq(qf), _row_sq(gf)

        qa, ga, num_actions = _action_codes(q_actions, g_actions)
        q_order = np.argsort(qa, kind='stable')
        g_order = np.argsort(ga, kind='stable')       # gallery positions ascending inside each action
        q_count = np.bincount(qa, minlength=num_actions)
        g_count = np.bincount(ga, minlength=num_actions)
        q_start = np.cumsum(q_count) - q_count
        g_start = np.cumsum(g_count) - g_count
        offsets = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(g_count[qa], out=offsets[1:])       # every query ranks its action's whole gallery
        qp = gp = None
        if q_pids is not None:
            qp, gp = _identity_codes(_labels(q_pids, 'q_pids', nq), _labels(g_pids, 'g_pids', ng))

        if opts.steps:
            flat = self._rank_with_steps(qf, gf, q_order, g_order, q_start, q_count, g_start, g_count, offsets, qa)
            result = None if qp is None else _metrics_from_csr(flat, offsets, qp, gp, self.max_rank,
                                                               self.use_cython)
        else:
            flat, stats = score_actions(qf, gf, q_sq, g_sq, q_order, g_order, q_start, q_count, g_start, g_count,
                                        offsets, opts.dist_metric, q_pid=qp, g_pid=gp, use_cython=self.use_cython)
            result = None if stats is None else _aggregate(*stats, self.max_rank)
        return Rankings(flat, offsets), result

    def _rank_with_steps(self, qf, gf, q_order, g_order, q_start, q_count, g_start, g_count, offsets, qa):
        """One action at a time: the steps need each action's own query and gallery sets."""
        opts = self.options
        flat = np.empty(int(offsets[-1]), dtype=np.int64)
        for a in np.flatnonzero(q_count * g_count).tolist():
            qi = q_order[q_start[a]:q_start[a] + q_count[a]]
            gi = g_order[g_start[a]:g_start[a] + g_count[a]]
            block = RankingBlock(qf[qi], gf[gi], opts.dist_metric, normalised=opts.normalises)
            order = rank_block(block, opts.steps)
            flat[offsets[qi][:, None] + np.arange(gi.size)] = gi[order]
        return flat

    def export(self, evaluation: Evaluation, query_info: Optional[Sequence[Any]],
               gallery_info: Optional[Sequence[Any]], save_dir: str, name: str) -> Optional[str]:
        """Write ``ranking_results_<name>_<time>.json``; the samples' metadata must carry ``bbox_idx``."""
        from .submission import export_ranking_results

        if query_info is None or gallery_info is None:
            logger.warning('%s: ranking export needs per-sample metadata with a bbox_idx (a SoccerNet-format '
                           'dataset); not exported', name)
            return None
        q_bbox = np.fromiter((s.bbox_idx for s in query_info), dtype=np.int64, count=len(query_info))
        g_bbox = np.fromiter((s.bbox_idx for s in gallery_info), dtype=np.int64, count=len(gallery_info))
        return export_ranking_results(evaluation.rankings, q_bbox, g_bbox, evaluation.query_camids,
                                      evaluation.gallery_camids, save_dir, name)


def _row_sq(x: np.ndarray) -> np.ndarray:
    return np.einsum('ij,ij->i', x, x)


def _action_codes(q_actions: np.ndarray, g_actions: np.ndarray):
    """Action codes ``0..A-1`` shared by queries and gallery, and ``A``. SoccerNet's action indices are small
    non-negative ints already: they are used as they are (empty codes in between cost nothing)."""
    if q_actions.dtype.kind in 'iu' and g_actions.dtype.kind in 'iu' and q_actions.size and g_actions.size:
        low = min(int(q_actions.min()), int(g_actions.min()))
        high = max(int(q_actions.max()), int(g_actions.max()))
        if low >= 0 and high < 4 * (q_actions.size + g_actions.size):
            return q_actions.astype(np.int64, copy=False), g_actions.astype(np.int64, copy=False), high + 1
    return _joint_codes(q_actions, g_actions)


def _identity_codes(q_pids: np.ndarray, g_pids: np.ndarray):
    """Identity labels as int64 values that are equal exactly when the labels are (only equality is used)."""
    if q_pids.dtype.kind == g_pids.dtype.kind and q_pids.dtype.kind in 'iu':   # -1 must not meet 2**64 - 1
        return q_pids.astype(np.int64, copy=False), g_pids.astype(np.int64, copy=False)
    return _joint_codes(q_pids, g_pids)[:2]


# ----------------------------------------------------------------------------------------------------------
# Function forms
# ----------------------------------------------------------------------------------------------------------
def _options(options: Optional[RankingOptions], flat: Dict[str, Any]) -> RankingOptions:
    if options is not None and flat:
        return options.replace(**flat)
    return options if options is not None else RankingOptions.from_flat(flat)


def rank_by_action(qf: Any, gf: Any, q_actions: Any, g_actions: Any, options: Optional[RankingOptions] = None,
                   use_cython: bool = True, **flat_options: Any) -> Rankings:
    """Rank, for every query, the gallery items of its own action.

    Args:
        qf, gf: ``[nq, d]`` / ``[ng, d]`` features (torch or NumPy).
        q_actions, g_actions: action index of every query / gallery item.
        options: :class:`~torchreid.metrics.ranking.RankingOptions`; or flat options as keywords
            (``dist_metric='cosine'``, ``rerank=True``, ``qe_k=5``, ``inverted_softmax=True``, ...).
        use_cython: use the compiled path when built (the same rankings up to near-ties, see
            :mod:`~torchreid.metrics.action_scoring`).

    Returns:
        :class:`Rankings`: per query, int64 gallery LIST POSITIONS of the query's action, best first (stable:
        ties keep gallery order); empty for a query whose action has no gallery item.
    """
    return SoccerNetEvaluator(_options(options, flat_options), use_cython=use_cython).rank(qf, gf, q_actions,
                                                                                             g_actions)


def evaluate_soccernetv3(qf: Any, gf: Any, q_pids: Any, g_pids: Any, q_actions: Any, g_actions: Any,
                         max_rank: int = 50, use_cython: bool = True, options: Optional[RankingOptions] = None,
                         **flat_options: Any) -> Tuple[RankResult, Rankings]:
    """SoccerNet-v3 evaluation without the full query x gallery matrix; returns ``(RankResult, Rankings)``.

    Same numbers as ``evaluate_rank(full_distmat, ..., eval_metric='soccernetv3')`` for the same distances.
    """
    evaluator = SoccerNetEvaluator(_options(options, flat_options), max_rank=max_rank, use_cython=use_cython)
    evaluation = evaluator.evaluate(FeatureSet(qf, q_pids, q_actions), FeatureSet(gf, g_pids, g_actions))
    return evaluation.result, evaluation.rankings
