"""The engine's two option values: how to evaluate (:class:`EvalOptions`) and how to train (:class:`TrainOptions`).

Each option is declared, defaulted and checked once, here (the ranking options once in
:class:`torchreid.metrics.RankingOptions`); ``Engine.run`` / ``Engine.test`` and the yacs config read these.
"""
import dataclasses
import difflib
from typing import Any, Dict, Optional, Sequence, Tuple

from torchreid.metrics import EVAL_METRICS, RankingOptions

__all__ = ['EvalOptions', 'TrainOptions', 'CHECKPOINT_METRICS', 'canonical_checkpoint_metric']

#: The score that decides ``model-best.pth.tar``, and the spellings accepted for it.
CHECKPOINT_METRICS = ('mAP', 'rank1', 'mINP')
_METRIC_ALIASES = {'map': 'mAP', 'rank1': 'rank1', 'rank-1': 'rank1', 'r1': 'rank1', 'minp': 'mINP'}


def canonical_checkpoint_metric(name: str) -> str:
    """``'mAP'``, ``'rank1'`` or ``'mINP'`` for any accepted spelling (``'map'``, ``'rank-1'``, ``'r1'``...)."""
    key = str(name).lower()
    if key not in _METRIC_ALIASES:
        raise ValueError(f"checkpoint_metric must be one of {', '.join(map(repr, CHECKPOINT_METRICS))}, "
                         f'got {name!r}')
    return _METRIC_ALIASES[key]


def _int_at_least(owner: str, name: str, value: Any, low: int, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = ' or None' if allow_none else ''
        raise ValueError(f'{owner}.{name} must be an int >= {low}{extra}, got {value!r}')
    return value


@dataclasses.dataclass(init=False)
class EvalOptions:
    """Everything that decides how the targets are evaluated, gathered once.

    Attributes:
        ranking: how queries rank their gallery (:class:`~torchreid.metrics.RankingOptions`). The constructor
            also takes its flat options as keywords (``dist_metric``, ``normalize_feature``, ``rerank``,
            ``rerank_k1``, ``query_expansion``, ``qe_k``, ``inverted_softmax``, ...).
        ranks: CMC ranks to report.
        max_rank: length of the CMC curve.
        use_metric_cuhk03: score ``'default'`` targets with the CUHK03 protocol (Torchreid's flag).
        eval_metric: force a protocol for every target; None (the default) asks each dataset.
        visrank / visrank_topk / visrank_max_queries: draw ranked results to ``<save_dir>/visrank_<target>``.
        export_ranking_results: write ``ranking_results_<target>_<time>.json`` (challenge format).
        save_dir: where exports and pictures go.
        use_cython: use the compiled ranking code when it is built (same results).
        flip_test: average the features of each image and of its horizontal mirror (flip test-time
            averaging, before any normalisation).
    """

    ranking: RankingOptions
    ranks: Tuple[int, ...]
    max_rank: int
    use_metric_cuhk03: bool
    eval_metric: Optional[str]
    visrank: bool
    visrank_topk: int
    visrank_max_queries: Optional[int]
    export_ranking_results: bool
    save_dir: str
    use_cython: bool
    flip_test: bool

    def __init__(self, ranking: Optional[RankingOptions] = None, ranks: Sequence[int] = (1, 5, 10, 20),
                 max_rank: int = 50, use_metric_cuhk03: bool = False, eval_metric: Optional[str] = None,
                 visrank: bool = False, visrank_topk: int = 10, visrank_max_queries: Optional[int] = None,
                 export_ranking_results: bool = False, save_dir: str = 'log', use_cython: bool = True,
                 flip_test: bool = False, **ranking_options):
        if ranking is None:
            ranking = RankingOptions.from_flat(ranking_options)
        elif ranking_options:
            ranking = ranking.replace(**ranking_options)
        if not isinstance(ranking, RankingOptions):
            raise TypeError(f'EvalOptions.ranking must be a RankingOptions, got {type(ranking).__name__}')
        self.ranking = ranking
        ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
        if not ranks or any(isinstance(r, bool) or int(r) != r or r < 1 for r in ranks):
            raise ValueError(f'EvalOptions.ranks must be positive ints, got {ranks}')
        self.ranks = tuple(int(r) for r in ranks)
        # The CMC curve is computed as far as the largest rank asked for (ranks=[1, 100] reports rank 100).
        self.max_rank = max(_int_at_least('EvalOptions', 'max_rank', max_rank, 1), max(self.ranks))
        self.use_metric_cuhk03 = bool(use_metric_cuhk03)
        if eval_metric is not None and eval_metric not in EVAL_METRICS:
            raise ValueError(f'EvalOptions.eval_metric must be None or one of {EVAL_METRICS}, got {eval_metric!r}')
        self.eval_metric = eval_metric
        self.visrank = bool(visrank)
        self.visrank_topk = _int_at_least('EvalOptions', 'visrank_topk', visrank_topk, 1)
        self.visrank_max_queries = _int_at_least('EvalOptions', 'visrank_max_queries', visrank_max_queries, 0,
                                                 allow_none=True)
        self.export_ranking_results = bool(export_ranking_results)
        self.save_dir = str(save_dir)
        self.use_cython = bool(use_cython)
        self.flip_test = bool(flip_test)

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def accepted_keywords(cls) -> Tuple[str, ...]:
        """Every keyword the constructor takes: the fields and the flat ranking options."""
        return cls.field_names() + tuple(RankingOptions.flat_defaults())

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """``{keyword: default}`` of the constructor (the ranking options flat)."""
        out = {name: getattr(cls(), name) for name in cls.field_names() if name != 'ranking'}
        out.update(RankingOptions.flat_defaults())
        return out

    def replace(self, **changes) -> 'EvalOptions':
        """A copy with some options changed (fields or flat ranking options)."""
        check_keywords('EvalOptions', changes, self.accepted_keywords())
        ranking_changes = {k: changes.pop(k) for k in list(changes) if k not in self.field_names()}
        values = {name: getattr(self, name) for name in self.field_names()}
        values.update(changes)
        if ranking_changes:
            values['ranking'] = values['ranking'].replace(**ranking_changes)
        return EvalOptions(**values)


def check_keywords(owner: str, given, accepted) -> None:
    """Refuse unknown keywords with the closest accepted names."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        hints = [f'{u!r}: did you mean {difflib.get_close_matches(u, list(accepted), n=2)}?' for u in unknown
                 if difflib.get_close_matches(u, list(accepted), n=2)]
        raise TypeError(f'{owner}: unknown option(s) {unknown}' + (f' ({"; ".join(hints)})' if hints else '')
                        + f'; accepted: {sorted(accepted)}')


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How :meth:`Engine.run` trains (Torchreid's keywords plus ours).

    Attributes:
        max_epoch: train until this many epochs are done.
        start_epoch: epochs already done (a resumed run overrides it from the checkpoint).
        print_freq: log a line every N batches (0: never).
        fixbase_epoch / open_layers: train only ``open_layers`` for the first ``fixbase_epoch`` epochs.
        start_eval / eval_freq: evaluate every ``eval_freq`` epochs from ``start_eval`` on (-1: only at the end).
        save_freq: write a checkpoint every N epochs (None: only after the last); always after the last.
        keep_last: keep only the newest N epoch checkpoints (None: all); ``model-best.pth.tar`` is always kept.
        checkpoint_metric: ``'mAP'``, ``'rank1'`` or ``'mINP'`` of the first target with labels decides
            ``model-best.pth.tar``.
    """

    max_epoch: int = 0
    start_epoch: int = 0
    print_freq: int = 10
    fixbase_epoch: int = 0
    open_layers: Optional[Tuple[str, ...]] = None
    start_eval: int = 0
    eval_freq: int = -1
    save_freq: Optional[int] = 1
    keep_last: Optional[int] = 3
    checkpoint_metric: str = 'mAP'

    def __post_init__(self):
        for name in ('max_epoch', 'start_epoch', 'print_freq', 'fixbase_epoch', 'start_eval'):
            _int_at_least('TrainOptions', name, getattr(self, name), 0)
        if isinstance(self.eval_freq, bool) or not isinstance(self.eval_freq, int):
            raise ValueError(f'TrainOptions.eval_freq must be an int (<= 0: only after the last epoch), got '
                             f'{self.eval_freq!r}')
        _int_at_least('TrainOptions', 'save_freq', self.save_freq, 1, allow_none=True)
        _int_at_least('TrainOptions', 'keep_last', self.keep_last, 1, allow_none=True)
        if self.open_layers is not None:
            layers = (self.open_layers,) if isinstance(self.open_layers, str) else tuple(self.open_layers)
            object.__setattr__(self, 'open_layers', layers)
        object.__setattr__(self, 'checkpoint_metric', canonical_checkpoint_metric(self.checkpoint_metric))

    def evaluates_after(self, epochs_done: int) -> bool:
        """Whether the engine tests after ``epochs_done`` epochs (always after the last one)."""
        return epochs_done == self.max_epoch or (self.eval_freq > 0 and epochs_done >= self.start_eval
                                                 and epochs_done % self.eval_freq == 0)

    def saves_after(self, epochs_done: int) -> bool:
        """Whether a checkpoint is due after ``epochs_done`` epochs (a new best is saved anyway)."""
        return epochs_done == self.max_epoch or (self.save_freq is not None and epochs_done % self.save_freq == 0)
