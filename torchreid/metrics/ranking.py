"""How features become rankings: :class:`RankingOptions` and the ranking steps.

A ranking is computed block by block: a :class:`RankingBlock` is one group of queries ranked against one
gallery (a SoccerNet action, or the whole gallery of a Market-style target). The plain distance of a block is
the chosen ``dist_metric`` on the (optionally L2-normalised) features; each enabled :class:`RankingStep`
then transforms the block in registry order (query expansion changes the queries, k-reciprocal re-ranking
and the inverted softmax change the distances), and every query's gallery is stably sorted by the final
distances.

Every option is declared once, here: its name, its default and its check. The flat names
(``dist_metric``, ``rerank``, ``rerank_k1``, ``qe_k``, ``inverted_softmax_temperature``, ...) are what
``Engine.run(...)``, ``Engine.test(...)`` and the yacs config (``test.<name>``) use; :meth:`RankingOptions.
flat_defaults` is the one table they read. A new step is one class here (or in user code) registered with
:func:`register_ranking_step`: it becomes an option of the library and a key of the config.
"""
import dataclasses
import difflib
import logging
import math
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np
from scipy.special import logsumexp

from .rerank import re_rank_full

__all__ = ['RankingOptions', 'RankingStep', 'RankingBlock', 'OptionError', 'QueryExpansion', 'KReciprocalRerank',
           'InvertedSoftmax', 'register_ranking_step', 'unregister_ranking_step', 'ranking_steps',
           'inverted_softmax', 'DIST_METRICS', 'block_distance']

logger = logging.getLogger(__name__)

#: Distances a ranking can use: squared Euclidean (as Torchreid) and ``1 - cosine``.
DIST_METRICS = ('euclidean', 'cosine')


class OptionError(ValueError):
    """An option value that breaks its rule; ``key`` is the option's flat name (``test.<key>`` in the config)."""

    def __init__(self, key: str, message: str):
        super().__init__(f'{key} {message}')
        self.key = key


# ----------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------
def _row_sq(x: np.ndarray) -> np.ndarray:
    return np.einsum('ij,ij->i', x, x)


def l2_normalise(x: np.ndarray, sq: Optional[np.ndarray] = None) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), in ``x``'s dtype."""
    norm = np.sqrt(_row_sq(x) if sq is None else sq)
    return (x / np.maximum(norm, 1e-12)[:, None]).astype(x.dtype, copy=False)


def block_distance(a: np.ndarray, b: np.ndarray, dist_metric: str) -> np.ndarray:
    """Distances ``[len(a), len(b)]``: squared Euclidean ``|a|^2 + |b|^2 - 2 a.b`` or ``1 - a.b`` (cosine
    expects L2-normalised rows). Products through einsum's own loop: a threaded BLAS wakes (and spins) its
    thread pool for every small per-action product, which costs more than the product itself."""
    dot = np.einsum('id,jd->ij', a, b)
    if dist_metric == 'cosine':
        return 1.0 - dot
    return _row_sq(a)[:, None] + _row_sq(b)[None, :] - 2.0 * dot


@dataclasses.dataclass(frozen=True)
class RankingBlock:
    """One group of queries and the gallery they are ranked against.

    Attributes:
        qf, gf: ``[nq, d]`` / ``[ng, d]`` features (already L2-normalised when the options say so).
        dist_metric: ``'euclidean'`` or ``'cosine'``.
        normalised: the features were L2-normalised (``normalize_feature`` or cosine): steps that make new
            features (query expansion) put them back on the unit sphere.
        dist: ``[nq, ng]`` distances set by a step, or None: the plain distances of ``qf`` and ``gf``.
        pairwise: ``pairwise(a, b, dist_metric) -> [len(a), len(b)]`` (NumPy per action; the Market-style
            evaluator gives a BLAS-backed one for its single large block).
    """

    qf: np.ndarray
    gf: np.ndarray
    dist_metric: str
    normalised: bool = False
    dist: Optional[np.ndarray] = None
    pairwise: Callable[[np.ndarray, np.ndarray, str], np.ndarray] = block_distance

    @property
    def num_queries(self) -> int:
        return int(self.qf.shape[0])

    def distances(self) -> np.ndarray:
        """The block's current ``[nq, ng]`` distances (smaller = better)."""
        if self.dist is not None:
            return self.dist
        return self.pairwise(self.qf, self.gf, self.dist_metric)

    def all_distances(self) -> np.ndarray:
        """Plain distances over queries then gallery, ``[nq + ng, nq + ng]`` (k-reciprocal neighbourhoods)."""
        nq, ng = self.qf.shape[0], self.gf.shape[0]
        out = np.empty((nq + ng, nq + ng), dtype=np.float64)
        q_g = self.pairwise(self.qf, self.gf, self.dist_metric)
        out[:nq, :nq] = self.pairwise(self.qf, self.qf, self.dist_metric)
        out[:nq, nq:] = q_g
        out[nq:, :nq] = q_g.T
        out[nq:, nq:] = self.pairwise(self.gf, self.gf, self.dist_metric)
        return out

    def replace(self, **changes) -> 'RankingBlock':
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------------------
# Steps and their registry
# ----------------------------------------------------------------------------------------------------------
class RankingStep:
    """A transform of a :class:`RankingBlock`, switched on by one option and parametrised by dataclass fields.

    Subclasses are frozen dataclasses that set:

    * ``key``: the option that switches the step on (``RankingOptions.from_flat(key=True)``, ``test.<key>``);
    * ``prefix``: the flat name of a field is ``<prefix>_<field>`` (a field's ``metadata={'flat': name}``
      overrides it);
    * ``per_action_only``: True when the step only makes sense inside one SoccerNet action;

    validate their fields in ``__post_init__`` (raise :class:`OptionError` with the field's flat name) and
    implement ``__call__(block) -> block``.
    """

    key: ClassVar[str] = ''
    prefix: ClassVar[str] = ''
    per_action_only: ClassVar[bool] = False

    def __call__(self, block: RankingBlock) -> RankingBlock:
        raise NotImplementedError

    @classmethod
    def flat_names(cls) -> Dict[str, str]:
        """``{field name: flat option name}``."""
        return {f.name: f.metadata.get('flat', f'{cls.prefix}_{f.name}') for f in dataclasses.fields(cls)}

    @classmethod
    def flat_defaults(cls) -> Dict[str, Any]:
        return {cls.flat_names()[f.name]: f.default for f in dataclasses.fields(cls)}

    def flat_values(self) -> Dict[str, Any]:
        return {flat: getattr(self, name) for name, flat in self.flat_names().items()}


_STEPS: Dict[str, Type[RankingStep]] = {}   # key -> step class, in the order the steps run
_BASE_OPTIONS = ('dist_metric', 'normalize_feature')


def register_ranking_step(cls: Optional[Type[RankingStep]] = None, *, before: Optional[str] = None) -> Any:
    """Register a :class:`RankingStep` subclass (usable as a class decorator).

    Steps run in registration order; ``before='<key>'`` inserts the new step ahead of a registered one.
    Its key and flat field names must not clash with the existing options.
    """
    def register(step_cls):
        if not (isinstance(step_cls, type) and issubclass(step_cls, RankingStep)
                and dataclasses.is_dataclass(step_cls)):
            raise TypeError(f'register_ranking_step: {step_cls!r} must be a dataclass subclass of RankingStep')
        key = step_cls.key
        if not key or not key.isidentifier():
            raise ValueError(f'register_ranking_step: {step_cls.__name__}.key must be an identifier, got {key!r}')
        taken = set(_BASE_OPTIONS).union(*(_flat_names_of(c) for k, c in _STEPS.items() if k != key))
        clashes = sorted(({key} | set(step_cls.flat_names().values())) & taken)
        if key in _STEPS and _STEPS[key] is not step_cls:
            raise ValueError(f'register_ranking_step: a step with key {key!r} is already registered '
                             f'({_STEPS[key].__name__}); unregister it first')
        if clashes:
            raise ValueError(f'register_ranking_step: {step_cls.__name__} reuses option name(s) {clashes}')
        if before is not None and before not in _STEPS:
            raise ValueError(f'register_ranking_step: before={before!r} is not a registered step ({list(_STEPS)})')
        if _STEPS.get(key) is step_cls and before is None:
            return step_cls                              # registered again: it keeps its place
        items = [(k, v) for k, v in _STEPS.items() if k != key]
        at = len(items) if before is None else [k for k, _ in items].index(before)
        items.insert(at, (key, step_cls))
        _STEPS.clear()
        _STEPS.update(items)
        return step_cls

    return register if cls is None else register(cls)


def _flat_names_of(step_cls) -> List[str]:
    return [step_cls.key, *step_cls.flat_names().values()]


def unregister_ranking_step(key: str) -> None:
    """Remove a registered step (tests, notebooks)."""
    if key not in _STEPS:
        raise KeyError(f'unregister_ranking_step: no step with key {key!r}; registered: {list(_STEPS)}')
    del _STEPS[key]


def ranking_steps() -> Tuple[Type[RankingStep], ...]:
    """The registered step classes, in the order they run."""
    return tuple(_STEPS.values())


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OptionError(key, f'must be an integer >= 1, got {value!r}')
    return int(value)


def _number(key: str, value: Any, low: float, high: float = math.inf, low_open: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise OptionError(key, f'must be a number, got {value!r}') from None
    if isinstance(value, bool) or not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
        bound = f'> {low:g}' if low_open else f'>= {low:g}'
        rule = f'in [{low:g}, {high:g}]' if math.isfinite(high) else f'a finite number {bound}'
        raise OptionError(key, f'must be {rule}, got {value!r}')
    return x


@register_ranking_step
@dataclasses.dataclass(frozen=True)
class QueryExpansion(RankingStep):
    """Average query expansion: each query is averaged with its ``k`` nearest gallery items, weighted by
    ``max(cos, 0) ** alpha`` when ``alpha > 0`` (alpha-QE), uniformly otherwise; re-normalised when the
    features are compared by cosine."""

    key: ClassVar[str] = 'query_expansion'
    prefix: ClassVar[str] = 'qe'
    per_action_only: ClassVar[bool] = True

    k: int = 3
    alpha: float = 0.0

    def __post_init__(self):
        names = self.flat_names()
        object.__setattr__(self, 'k', _positive_int(names['k'], self.k))
        object.__setattr__(self, 'alpha', _number(names['alpha'], self.alpha, 0.0))

    def __call__(self, block: RankingBlock) -> RankingBlock:
        if block.dist is not None:
            # The expanded queries' distances are recomputed from the features: what a step before this one
            # did to the distances would be lost without a word.
            raise ValueError(f'{self.key} runs on features: register the step that set the distances after it '
                             f'(register_ranking_step(..., before=...) puts a step before another)')
        qa, ga = block.qf, block.gf
        k = min(self.k, ga.shape[0])
        top = np.argsort(block.pairwise(qa, ga, block.dist_metric), axis=1, kind='stable')[:, :k]
        neighbours = ga[top]                                               # [nq, k, d]
        if self.alpha > 0:
            w = np.maximum(np.einsum('qd,qkd->qk', l2_normalise(qa), l2_normalise(ga)[top]), 0.0) ** self.alpha
        else:
            w = np.ones(top.shape, dtype=qa.dtype)
        out = (qa + np.einsum('qk,qkd->qd', w, neighbours)) / (1.0 + w.sum(axis=1))[:, None]
        out = out.astype(qa.dtype, copy=False)
        return block.replace(qf=l2_normalise(out) if block.normalised else out, dist=None)


@register_ranking_step
@dataclasses.dataclass(frozen=True)
class KReciprocalRerank(RankingStep):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) inside the block (:mod:`torchreid.metrics.rerank`)."""

    key: ClassVar[str] = 'rerank'
    prefix: ClassVar[str] = 'rerank'

    k1: int = 20
    k2: int = 6
    lambda_value: float = dataclasses.field(default=0.3, metadata={'flat': 'rerank_lambda'})

    def __post_init__(self):
        names = self.flat_names()
        object.__setattr__(self, 'k1', _positive_int(names['k1'], self.k1))
        object.__setattr__(self, 'k2', _positive_int(names['k2'], self.k2))
        object.__setattr__(self, 'lambda_value', _number(names['lambda_value'], self.lambda_value, 0.0, 1.0))

    def __call__(self, block: RankingBlock) -> RankingBlock:
        dist = re_rank_full(block.all_distances(), block.num_queries, self.k1, self.k2, self.lambda_value)
        return block.replace(dist=dist)


@register_ranking_step
@dataclasses.dataclass(frozen=True)
class InvertedSoftmax(RankingStep):
    """Inverted softmax (Smith et al., ICLR 2017) over the queries of one action.

    The queries of one SoccerNet action are the boxes of one frame, so they are all different people, and a
    gallery box shows at most one of them. Each gallery box's distances to the action's queries, plus a
    "none of them" option, become a softmax over the queries (logits ``-dist / (temperature * mean
    distance)``, ``-1 / temperature`` for "none"); each query ranks its gallery by ``-log p(query | box)``. A
    box much closer to another query of the action (the teammate it really shows) moves down. Dividing by
    the action's mean distance makes ``temperature`` independent of the metric and the feature scale; the
    "none" option keeps an action with a single query in its plain order.
    """

    key: ClassVar[str] = 'inverted_softmax'
    prefix: ClassVar[str] = 'inverted_softmax'
    per_action_only: ClassVar[bool] = True

    temperature: float = 0.3

    def __post_init__(self):
        key = self.flat_names()['temperature']
        object.__setattr__(self, 'temperature', _number(key, self.temperature, 0.0, low_open=True))

    def transform(self, dist: np.ndarray) -> np.ndarray:
        """``-log p(query | gallery item)`` of one action's ``[nq, ng]`` distances."""
        dist = np.asarray(dist, dtype=np.float64)
        if dist.ndim != 2:
            raise ValueError(f'inverted_softmax: dist must be [num_query, num_gallery], got shape {dist.shape}')
        scale = dist.mean() if dist.size else 0.0
        if not scale > 0:
            return dist                      # all distances 0: no query is closer than another
        t = self.temperature
        logits = dist * (-1.0 / (t * scale))
        none = np.full((1, dist.shape[1]), -1.0 / t)
        return logsumexp(np.concatenate([logits, none]), axis=0)[None, :] - logits

    def __call__(self, block: RankingBlock) -> RankingBlock:
        return block.replace(dist=self.transform(block.distances()))


def inverted_softmax(dist: Any, temperature: float = InvertedSoftmax.temperature) -> np.ndarray:
    """The inverted softmax of one action's ``[nq, ng]`` distances (see :class:`InvertedSoftmax`)."""
    return InvertedSoftmax(temperature=temperature).transform(dist)


# ----------------------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RankingOptions:
    """Everything that decides how a target's queries rank their gallery.

    Attributes:
        dist_metric: ``'euclidean'`` (squared, as Torchreid) or ``'cosine'``.
        normalize_feature: L2-normalise the features first.
        steps: the enabled :class:`RankingStep` instances (kept in registry order).

    Build it from flat options with :meth:`from_flat` (``rerank=True, rerank_k1=10, qe_k=5, ...``).
    """

    dist_metric: str = 'euclidean'
    normalize_feature: bool = False
    steps: Tuple[RankingStep, ...] = ()

    def __post_init__(self):
        if self.dist_metric not in DIST_METRICS:
            raise OptionError('dist_metric', f'must be one of {DIST_METRICS}, got {self.dist_metric!r}')
        if not isinstance(self.normalize_feature, (bool, np.bool_)):
            raise OptionError('normalize_feature', f'must be True or False, got {self.normalize_feature!r}')
        steps = tuple(self.steps)
        for step in steps:
            if not isinstance(step, RankingStep) or type(step).key not in _STEPS:
                raise TypeError(f'RankingOptions.steps must hold registered RankingStep instances, got {step!r}')
        keys = [type(s).key for s in steps]
        if len(set(keys)) != len(keys):
            raise ValueError(f'RankingOptions.steps: each step at most once, got {keys}')
        order = list(_STEPS)
        object.__setattr__(self, 'steps', tuple(sorted(steps, key=lambda s: order.index(type(s).key))))
        object.__setattr__(self, 'normalize_feature', bool(self.normalize_feature))

    # -- the flat view: one name per option ------------------------------------------------------------
    @staticmethod
    def flat_defaults() -> Dict[str, Any]:
        """``{flat option name: default}`` for every option (switches of the steps included), in order."""
        out: Dict[str, Any] = {'dist_metric': RankingOptions.dist_metric,
                               'normalize_feature': RankingOptions.normalize_feature}
        for step_cls in _STEPS.values():
            out[step_cls.key] = False
            out.update(step_cls.flat_defaults())
        return out

    @classmethod
    def from_flat(cls, values: Optional[Mapping[str, Any]] = None, **kwargs) -> 'RankingOptions':
        """Options from flat names (``values`` and/or keywords); missing names take their defaults.

        Every value is checked, also the parameters of a step that is switched off, so a wrong value in a
        config fails at once. An unknown name is a ``TypeError`` naming the closest known ones.
        """
        given = dict(values or {}, **kwargs)
        defaults = cls.flat_defaults()
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            hints = {u: difflib.get_close_matches(u, list(defaults), n=2) for u in unknown}
            hint = '; '.join(f'{u!r}: did you mean {h}?' for u, h in hints.items() if h)
            raise TypeError(f'unknown ranking option(s) {unknown}{" (" + hint + ")" if hint else ""}; '
                            f'known: {list(defaults)}')
        steps = []
        for step_cls in _STEPS.values():
            params = {name: given.get(flat, defaults[flat]) for name, flat in step_cls.flat_names().items()}
            step = step_cls(**params)            # checks the values
            switch = given.get(step_cls.key, False)
            if not isinstance(switch, (bool, np.bool_)):
                raise OptionError(step_cls.key, f'must be True or False, got {switch!r}')
            if switch:
                steps.append(step)
        return cls(dist_metric=given.get('dist_metric', defaults['dist_metric']),
                   normalize_feature=given.get('normalize_feature', defaults['normalize_feature']),
                   steps=tuple(steps))

    def to_flat(self) -> Dict[str, Any]:
        """The options as flat names (the inverse of :meth:`from_flat`)."""
        out = self.flat_defaults()
        out.update(dist_metric=self.dist_metric, normalize_feature=self.normalize_feature)
        for step in self.steps:
            out[type(step).key] = True
            out.update(step.flat_values())
        return out

    def replace(self, **flat_changes) -> 'RankingOptions':
        """A copy with some flat options changed."""
        return self.from_flat(self.to_flat(), **flat_changes)

    def step(self, key: str) -> Optional[RankingStep]:
        """The enabled step with this key, or None."""
        return next((s for s in self.steps if type(s).key == key), None)

    @property
    def normalises(self) -> bool:
        """Whether the features are put on the unit sphere before ranking (normalize_feature or cosine)."""
        return self.normalize_feature or self.dist_metric == 'cosine'

    def check_protocol(self, eval_metric: str, per_action: bool) -> None:
        """Refuse steps that only make sense inside one SoccerNet action on a target that has no actions."""
        if per_action:
            return
        for step in self.steps:
            if type(step).per_action_only:
                raise ValueError(f'{type(step).key} is implemented for soccernetv3 (per-action) targets only '
                                 f'(this target uses {eval_metric!r})')

    def describe(self) -> str:
        parts = [self.dist_metric + (' on normalised features' if self.normalize_feature else '')]
        parts += [f'{type(s).key}({", ".join(f"{k}={v}" for k, v in s.flat_values().items())})'
                  for s in self.steps]
        return ' -> '.join(parts)


def apply_steps(block: RankingBlock, steps: Sequence[RankingStep]) -> np.ndarray:
    """Run ``steps`` on ``block``; returns the final ``[nq, ng]`` distances."""
    for step in steps:
        block = step(block)
    return block.distances()


def rank_block(block: RankingBlock, steps: Sequence[RankingStep]) -> np.ndarray:
    """Per query, the block's gallery indices best first (stable: ties keep gallery order)."""
    return np.argsort(apply_steps(block, steps), axis=1, kind='stable')
