"""Training samplers: random, sequential, P identities x K instances, per-action P x K, and Torchreid's
per-camera (domain) and per-dataset batch samplers.

Randomness: each epoch draws one seed from a torch generator (``generator`` if given, else torch's
global generator, which ``set_random_seed`` seeds and a checkpoint restores) and builds the whole
epoch's order from it, so a resumed run reproduces the same batches. With ``seed`` set, the epoch
order depends only on ``(seed, epoch)`` instead (``set_epoch`` as in DistributedSampler).

Epoch length of the identity samplers (``epoch_length``):

* ``'identities'`` (default, Torchreid's definition): one pass over every identity, each giving
  ``max(1, n // K)`` chunks of K images (n: its images), i.e. ``sum(K * max(1, n // K))`` images,
  rounded down to whole batches. Identities with fewer than K images are sampled with replacement.
  With many identities of fewer than K images (SoccerNet), this is more than the dataset's size.
* ``'images'``: ``len(data_source)`` indices rounded down to whole batches, whatever K.

Either way at least one batch, and ``len(sampler)`` is exactly what an epoch yields: when one pass over
the identities gives fewer batches than the epoch needs (a pass stops when fewer than P identities have
chunks left), another pass is drawn and cut.

Data-parallel training (``torch.distributed``, e.g. launched by torchrun): the batch samplers (identity,
action, domain, dataset) take ``num_replicas`` / ``rank`` (by default those of the initialised process group,
else 1 / 0) and ``batch_size`` is per rank. Every rank draws the same epoch from the same seed (``set_epoch``
with ``seed``, or torch's generator, which ``set_random_seed`` seeds alike on every rank) and takes its own
batch of each step: a step is ``num_replicas`` consecutive batches, rank ``r`` gets the ``r``-th. The P x K
samplers build a step's batches together, so an identity (P x K) or an action (per-action sampler) is in one
rank's batch only within a step. An epoch has ``max(1, B1 // num_replicas)`` steps on every rank, ``B1`` being
the batches of a single-process epoch of the same per-rank batch size: the ranks see the epoch's images once
between them and never wait for one another at its end. With one replica every sampler yields exactly what it
yielded before sharding existed.
"""
import logging
import os
import random
from collections import defaultdict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, SequentialSampler

logger = logging.getLogger(__name__)

__all__ = ['RandomIdentitySampler', 'RandomActionSampler', 'RandomActionGameSampler', 'game_of', 'RandomDomainSampler', 'RandomDatasetSampler',
           'RandomSampler', 'SequentialSampler', 'SeededRandomSampler', 'build_train_sampler', 'AVAILABLE_SAMPLERS',
           'AVAI_SAMPLERS', 'EPOCH_LENGTHS']

AVAILABLE_SAMPLERS = ('RandomSampler', 'SequentialSampler', 'RandomIdentitySampler', 'RandomActionSampler',
                      'RandomActionGameSampler', 'RandomDomainSampler', 'RandomDatasetSampler')
#: What an identity sampler's epoch counts (see the module docstring).
EPOCH_LENGTHS = ('identities', 'images')
# Torchreid's name, kept for code written against it.
AVAI_SAMPLERS = AVAILABLE_SAMPLERS

#: What the samplers read: records ``(img_path, pid, camid, dsetid)`` (a dataset's ``train`` list).
Records = Sequence[Sequence[Any]]


def _check_batch(batch_size: int, num_instances: int) -> int:
    if num_instances < 1:
        raise ValueError(f'num_instances must be >= 1, got {num_instances}')
    if batch_size < num_instances or batch_size % num_instances != 0:
        raise ValueError(f'batch_size ({batch_size}) must be a positive multiple of num_instances ({num_instances})')
    return batch_size // num_instances


def _replicas(num_replicas: Optional[int], rank: Optional[int]) -> Tuple[int, int]:
    """``(num_replicas, rank)``: those given, else those of the initialised process group, else ``(1, 0)``."""
    grouped = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if grouped else 1
    if rank is None:
        rank = dist.get_rank() if grouped else 0
    if isinstance(num_replicas, bool) or int(num_replicas) != num_replicas or num_replicas < 1:
        raise ValueError(f'num_replicas must be an int >= 1, got {num_replicas!r}')
    if isinstance(rank, bool) or int(rank) != rank or not 0 <= rank < num_replicas:
        raise ValueError(f'rank must be an int in [0, num_replicas={num_replicas}), got {rank!r}')
    return int(num_replicas), int(rank)


class _SeededSampler(Sampler):
    """Epoch/seed handling shared by the batch samplers: ``_one_pass(rng)`` returns a list of batches drawn
    with a ``random.Random`` (for the P x K samplers, whole steps of ``num_replicas`` batches); an epoch is
    ``self.length`` indices: this rank's batch of each of ``self.length / batch_size`` steps, taken from as
    many passes as needed (module docstring)."""

    def __init__(self, data_source: Records, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None, num_replicas: Optional[int] = None, rank: Optional[int] = None):
        self.data_source = data_source
        self.generator = generator
        self.seed = seed
        self.epoch = 0
        self.length = 0
        self.batch_size = 1
        self._single_batches = 1  # batches of a single-process epoch (set by the subclasses)
        self.num_replicas, self.rank = _replicas(num_replicas, rank)

    def shard(self, num_replicas: int, rank: int) -> None:
        """Serve rank ``rank`` of ``num_replicas`` from now on (the engine calls it when the process group was
        initialised after the sampler was built)."""
        before = self.num_replicas, self.rank
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        try:
            self._check_replicas()
        except ValueError:
            self.num_replicas, self.rank = before
            raise
        self._update_length()

    def _check_replicas(self) -> None:
        """Refuse a world size the data cannot feed (subclasses)."""

    def _update_length(self) -> None:
        self.length = max(1, self._single_batches // self.num_replicas) * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Only matters with ``seed``: the epoch's order is a function of (seed, epoch)."""
        self.epoch = int(epoch)

    def _rng(self) -> random.Random:
        if self.seed is not None:
            return random.Random(self.seed * 1_000_003 + self.epoch)
        draw = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return random.Random(int(draw.item()))

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        rng = self._rng()
        self.epoch += 1
        steps = self.length // self.batch_size
        wanted = steps * self.num_replicas
        batches: List[List[int]] = []
        while len(batches) < wanted:
            drawn = self._one_pass(rng)
            if not drawn:
                raise RuntimeError(f'{type(self).__name__}: a pass over the data produced no batch')
            batches.extend(drawn)
        indices: List[int] = []
        for batch in batches[self.rank:wanted:self.num_replicas]:
            indices.extend(batch)
        return iter(indices[:self.length])

    def __len__(self) -> int:
        return self.length


class _EpochSampler(_SeededSampler):
    """P x K samplers: ``num_instances`` images per identity, ``epoch_length`` as in the module docstring."""

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 epoch_length: str = 'identities', num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, generator, seed, num_replicas, rank)
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = _check_batch(self.batch_size, self.num_instances)
        if epoch_length not in EPOCH_LENGTHS:
            raise ValueError(f'{type(self).__name__}: epoch_length must be one of {EPOCH_LENGTHS}, '
                             f'got {epoch_length!r}')
        self.epoch_length = epoch_length
        self.length = self._whole_batches(len(data_source))

    def _whole_batches(self, num_indices: int) -> int:
        """This rank's epoch length for an epoch of ``num_indices`` indices (module docstring)."""
        self._single_batches = max(1, num_indices // self.batch_size)
        self._update_length()
        return self.length

    def _step_pids(self) -> int:
        """Identities drawn together for one step: P per rank."""
        return self.num_pids_per_batch * self.num_replicas

    def _set_identity_length(self, image_counts: Iterable[int]) -> None:
        """Torchreid's epoch: every sampled identity once, as ``max(1, n // K)`` chunks of K images."""
        if self.epoch_length == 'identities':
            k = self.num_instances
            self.length = self._whole_batches(sum(k * max(1, n // k) for n in image_counts))

    def _chunks(self, indices: List[int], rng: random.Random) -> List[List[int]]:
        """Torchreid's K-instance chunks of one identity: with replacement when it has fewer than K."""
        k = self.num_instances
        if len(indices) < k:
            picked = [rng.choice(indices) for _ in range(k)]
            return [picked]
        picked = list(indices)
        rng.shuffle(picked)
        return [picked[i:i + k] for i in range(0, len(picked) - k + 1, k)]


class RandomIdentitySampler(_EpochSampler):
    """Batches of P identities x K instances (P = batch_size / num_instances).

    Args:
        data_source: records ``(img_path, pid, camid, dsetid)``.
        batch_size: images per batch, a multiple of ``num_instances``.
        num_instances: K, the images per identity in a batch.
        epoch_length: ``'identities'`` (Torchreid's epoch: every identity once, K images per chunk) or
            ``'images'`` (as many images as the dataset holds); see the module docstring.
    """

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 epoch_length: str = 'identities', num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, batch_size, num_instances, generator, seed, epoch_length, num_replicas, rank)
        self.index_dic: Dict[object, List[int]] = defaultdict(list)
        for index, record in enumerate(data_source):
            self.index_dic[record[1]].append(index)
        self.pids = list(self.index_dic)
        self._set_identity_length(len(idx) for idx in self.index_dic.values())
        self._check_replicas()

    def _check_replicas(self) -> None:
        if len(self.pids) < self._step_pids():
            where = f' x {self.num_replicas} ranks' if self.num_replicas > 1 else ''
            raise ValueError(f'RandomIdentitySampler needs at least P={self.num_pids_per_batch}{where} identities '
                             f'(batch_size {self.batch_size} / num_instances {self.num_instances}), '
                             f'got {len(self.pids)}')

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        chunks = {pid: self._chunks(self.index_dic[pid], rng) for pid in self.pids}
        available = list(self.pids)
        position = {pid: i for i, pid in enumerate(available)}
        batches = []
        p, step_pids = self.num_pids_per_batch, self._step_pids()
        while len(available) >= step_pids:
            # One step's identities drawn together (distinct), then split P per rank.
            selected = rng.sample(available, step_pids)
            for start in range(0, step_pids, p):
                batch = []
                for pid in selected[start:start + p]:
                    batch.extend(chunks[pid].pop())
                    if not chunks[pid]:
                        # O(1) removal (swap with the last): list.remove made a real-scale epoch take minutes
                        i, last = position.pop(pid), available.pop()
                        if last != pid:
                            available[i] = last
                            position[last] = i
                batches.append(batch)
        return batches


class RandomActionSampler(_EpochSampler):
    """P x K batches made of small groups of identities that share an action (the action is ``camid``,
    per ``dsetid``).

    Identities of one SoccerNet action are different people, so batch members sharing an action are
    sure negatives for the action-aware triplet loss, and they are the hard negatives the same-action
    evaluation asks to separate. A batch takes ``num_pids_per_action`` identities (M) from each of
    several actions, in the epoch's random order of actions, until it holds P identities; an action
    with fewer than M identities left gives what it has, and the batch's last action gives only what
    is still missing. An action with fewer than two identities left is done for the pass, so every
    group has >= 2 identities except, rarely, a last one of a single identity.

    ``num_pids_per_action=None`` fills a batch from as few actions as possible (up to P identities of
    one action). ``epoch_length='identities'`` (default) is Torchreid's identity-sampler epoch counted over
    the identities this sampler can draw (those sharing their action with another), ``'images'`` the
    dataset's size (module docstring). Several actions per batch train better: on the synthetic demo set
    (benchmarks/perf/bench_accuracy.py), whole-action batches, whose BatchNorm statistics and negatives
    all come from one scene, scored far below plain P x K sampling, and groups of 4 identities from
    several actions, with the action-aware triplet, scored above plain P x K with the plain triplet in
    the strong recipe (configs/strong.yaml). Figures: docs/results.md.
    """

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 num_pids_per_action: Optional[int] = 4, epoch_length: str = 'identities',
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, batch_size, num_instances, generator, seed, epoch_length, num_replicas, rank)
        if num_pids_per_action is not None and (int(num_pids_per_action) != num_pids_per_action
                                                or num_pids_per_action < 2):
            raise ValueError(f'RandomActionSampler: num_pids_per_action must be an int >= 2 (a negative per '
                             f'identity) or None (whole actions), got {num_pids_per_action!r}')
        self.num_pids_per_action = None if num_pids_per_action is None else int(num_pids_per_action)
        actions: Dict[tuple, Dict[object, List[int]]] = defaultdict(lambda: defaultdict(list))
        for index, record in enumerate(data_source):
            actions[(record[3], record[2])][record[1]].append(index)
        self.actions = {a: dict(pids) for a, pids in actions.items()}
        self.action_keys = sorted(self.actions)
        if not any(len(p) >= 2 for p in self.actions.values()):
            raise ValueError('RandomActionSampler needs an action (camid) with at least 2 identities; '
                             'none has: every batch would lack same-action negatives')
        self._check_replicas()
        self._set_identity_length(len(idx) for pids in self.actions.values() if len(pids) >= 2
                                  for idx in pids.values())
        alone = sum(1 for pids in self.actions.values() if len(pids) == 1)
        if alone:
            logger.warning('RandomActionSampler: %d identities are alone in their action and are never sampled '
                           '(they have no same-action negative)', alone)

    def _check_replicas(self) -> None:
        group = min(self.num_pids_per_action or self.num_pids_per_batch, self.num_pids_per_batch)
        fill = sum(min(group, len(p)) for p in self.actions.values() if len(p) >= 2)
        if fill < self._step_pids():
            where = f' x {self.num_replicas} ranks (an action feeds one rank per step)' if self.num_replicas > 1 else ''
            raise ValueError(
                f'RandomActionSampler needs at least P={self.num_pids_per_batch}{where} identities (batch_size '
                f'{self.batch_size} / num_instances {self.num_instances}) from actions with >= 2 identities, at '
                f'most {group} per action (num_pids_per_action); the data gives {fill}')

    def _action_order(self, rng: random.Random) -> List[tuple]:
        """The order in which a pass visits the actions (consecutive actions fill a batch): random."""
        queue = list(self.action_keys)
        rng.shuffle(queue)
        return queue

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        p = self.num_pids_per_batch
        group = p if self.num_pids_per_action is None else min(self.num_pids_per_action, p)
        # action -> pid -> list of K-instance chunks, and the epoch's action order.
        pools = {a: {pid: self._chunks(idx, rng) for pid, idx in self.actions[a].items()} for a in self.action_keys}
        queue = self._action_order(rng)
        head = 0  # queue[:head] is done (fewer than 2 identities left)
        batches = []
        while True:
            # One step: the ranks' batches are filled one after the other from the queue, each rank's from
            # actions after the previous rank's, so an action feeds one rank per step (one rank: as before).
            step, pos = [], head
            for _ in range(self.num_replicas):
                batch, taken = [], 0
                while taken < p and pos < len(queue):
                    pool = pools[queue[pos]]
                    if len(pool) < 2:
                        if pos == head:
                            head += 1
                        pos += 1
                        continue
                    n = min(group, len(pool), p - taken)
                    for pid in rng.sample(list(pool), n):
                        batch.extend(pool[pid].pop())
                        if not pool[pid]:
                            del pool[pid]
                    taken += n
                    pos += 1
                if taken < p:
                    return batches  # not enough identities left for a full step
                step.append(batch)
            batches.extend(step)


def game_of(img_path: str) -> str:
    """The game a SoccerNet record comes from: the folder holding its action folder
    (``<championship>/<season>/<game>`` in ``.../<championship>/<season>/<game>/<action>/<image>``). The records
    carry no game id, but the release's layout (and the synthetic generator's, which writes the same one) puts
    every action in its game's folder. Images of a flat layout all belong to one "game" (their parent's parent)."""
    return os.path.dirname(os.path.dirname(os.path.normpath(str(img_path))))


class RandomActionGameSampler(RandomActionSampler):
    """:class:`RandomActionSampler` with an action-then-game hierarchy: consecutive actions of a pass (those
    that fill one batch) come from the same game, so a batch holds groups of identities of several actions of
    one match (the same two kits, pitch and light: harder negatives than actions of unrelated games, as in the
    2022 entry that sampled actions then games). A pass visits the games in random order and, within a game,
    its actions in random order; a batch spans two games only where one game runs out of actions.

    The game of an action is read from its images' folder (:func:`game_of`); a dataset whose records lack the
    SoccerNet layout forms one game, and the sampler is then the plain :class:`RandomActionSampler` (the same
    batches for the same seed). Same arguments as :class:`RandomActionSampler`.
    """

    def __init__(self, data_source: Records, *args: Any, **kwargs: Any):
        super().__init__(data_source, *args, **kwargs)
        games: Dict[tuple, str] = {}
        for record in data_source:
            games.setdefault((record[3], record[2]), game_of(record[0]))
        self.action_games = games
        by_game: Dict[str, List[tuple]] = defaultdict(list)
        for action in self.action_keys:
            by_game[games[action]].append(action)
        self.games = {game: sorted(actions) for game, actions in sorted(by_game.items())}
        logger.info('RandomActionGameSampler: %d actions in %d games', len(self.action_keys), len(self.games))

    def _action_order(self, rng: random.Random) -> List[tuple]:
        if len(self.games) <= 1:
            return super()._action_order(rng)
        order = list(self.games)
        rng.shuffle(order)
        queue = []
        for game in order:
            actions = list(self.games[game])
            rng.shuffle(actions)
            queue.extend(actions)
        return queue


class _GroupBatchSampler(_SeededSampler):
    """Torchreid's domain/dataset sampling: each batch takes ``n_groups`` random groups (cameras or datasets)
    and ``batch_size / n_groups`` random images of each, without replacement within a pass; a pass ends
    after the batch in which a group falls below ``batch_size / n_groups`` images left.

    Epoch length: as Torchreid, the number of batches of one pass, which is random; here it is fixed once,
    from a pass drawn at construction with ``random.Random(seed or 0)`` (the global generators are not
    touched), and every epoch yields exactly that many batches (drawing another pass if one ends earlier).
    Groups with fewer images than one batch's share are left out (with a warning).
    """

    _field = 2
    _what = 'camera'
    _count_name = 'n_domain'

    def __init__(self, data_source: Records, batch_size: int, n_groups: Optional[int],
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, generator, seed, num_replicas, rank)
        name = type(self).__name__
        groups: Dict[Any, List[int]] = defaultdict(list)
        for index, record in enumerate(data_source):
            groups[record[self._field]].append(index)
        if n_groups is None or n_groups <= 0:  # Torchreid: every group in each batch
            n_groups = len(groups)
        self.batch_size = int(batch_size)
        self.n_groups = int(n_groups)
        if self.n_groups < 1 or self.batch_size < self.n_groups or self.batch_size % self.n_groups:
            raise ValueError(f'{name}: batch_size ({batch_size}) must be a positive multiple of '
                             f'{self._count_name} ({self.n_groups})')
        self.images_per_group = self.batch_size // self.n_groups
        small = sorted((g for g, idx in groups.items() if len(idx) < self.images_per_group), key=repr)
        if small:
            logger.warning('%s: %d %s(s) with fewer than %d images (batch_size / %s) are never sampled: %s',
                           name, len(small), self._what, self.images_per_group, self._count_name,
                           ', '.join(map(repr, small[:10])) + (' ...' if len(small) > 10 else ''))
        self.groups = {g: idx for g, idx in groups.items() if len(idx) >= self.images_per_group}
        self.group_keys = sorted(self.groups, key=repr)
        if len(self.group_keys) < self.n_groups:
            raise ValueError(f'{name}: needs {self.n_groups} {self._what}s ({self._count_name}) with at least '
                             f'{self.images_per_group} images each, the data has {len(self.group_keys)}')
        self._single_batches = len(self._one_pass(random.Random(0 if seed is None else seed)))
        self._update_length()

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        pools = {}
        for g in self.group_keys:
            pool = list(self.groups[g])
            rng.shuffle(pool)
            pools[g] = pool
        k = self.images_per_group
        batches = []
        while True:
            batch, exhausted = [], False
            for g in rng.sample(self.group_keys, self.n_groups):
                pool = pools[g]
                batch.extend(pool[-k:])
                del pool[-k:]
                exhausted = exhausted or len(pool) < k
            batches.append(batch)
            if exhausted:
                return batches


class RandomDomainSampler(_GroupBatchSampler):
    """Batches of ``n_domain`` random cameras (``camid``) x ``batch_size / n_domain`` random images each
    (Torchreid's sampler for domain generalisation; ``n_domain`` None or <= 0: every camera).

    For SoccerNet the camid slot holds the action, so a batch is ``n_domain`` actions.
    """

    def __init__(self, data_source: Records, batch_size: int, n_domain: Optional[int],
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, batch_size, n_domain, generator, seed, num_replicas, rank)


class RandomDatasetSampler(_GroupBatchSampler):
    """Batches of ``n_dataset`` random source datasets (``dsetid``) x ``batch_size / n_dataset`` random
    images each (Torchreid's sampler for multi-source training; ``n_dataset`` None or <= 0: all)."""

    _field = 3
    _what = 'dataset'
    _count_name = 'n_dataset'

    def __init__(self, data_source: Records, batch_size: int, n_dataset: Optional[int],
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None):
        super().__init__(data_source, batch_size, n_dataset, generator, seed, num_replicas, rank)


class SeededRandomSampler(RandomSampler):
    """torch's RandomSampler whose order, with ``seed`` set, depends only on ``(seed, epoch)``.

    A generator seeded once would restart its sequence on resume (epoch 5 would replay epoch 0);
    re-seeding per epoch, with ``set_epoch`` called by the engine, replays the right epoch. Without
    ``seed`` it draws from torch's global generator, like torch's RandomSampler.
    """

    def __init__(self, data_source: Records, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__(data_source, generator=generator)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.seed is not None:
            self.generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.epoch)
        self.epoch += 1
        return super().__iter__()


def build_train_sampler(data_source: Records, train_sampler: str, batch_size: int = 32, num_instances: int = 4,
                        num_cams: int = 1, num_datasets: int = 1, generator: Optional[torch.Generator] = None,
                        seed: Optional[int] = None, num_pids_per_action: Optional[int] = 4,
                        epoch_length: str = 'identities', num_replicas: Optional[int] = None,
                        rank: Optional[int] = None, **kwargs: Any) -> Sampler:
    """Build a training sampler by name (Torchreid's call shape).

    ``num_instances``: K of the identity/action samplers; ``num_cams`` / ``num_datasets``: cameras /
    datasets per batch of ``RandomDomainSampler`` / ``RandomDatasetSampler``; ``num_pids_per_action``:
    ``RandomActionSampler`` only; ``epoch_length``: identity/action samplers only (module docstring).
    ``num_replicas`` / ``rank``: data-parallel sharding (default: the initialised process group's, else one
    replica); with several replicas ``RandomSampler`` / ``SequentialSampler`` become torch's
    ``DistributedSampler`` (shuffled by ``seed`` (0 when None) and the epoch, or in order; the tail that does
    not divide is dropped). Other keywords are accepted and ignored, as in Torchreid.
    """
    num_replicas, rank = _replicas(num_replicas, rank)
    shard = dict(num_replicas=num_replicas, rank=rank)
    if train_sampler == 'RandomIdentitySampler':
        return RandomIdentitySampler(data_source, batch_size, num_instances, generator=generator, seed=seed,
                                     epoch_length=epoch_length, **shard)
    if train_sampler in ('RandomActionSampler', 'RandomActionGameSampler'):
        cls = RandomActionSampler if train_sampler == 'RandomActionSampler' else RandomActionGameSampler
        return cls(data_source, batch_size, num_instances, num_pids_per_action=num_pids_per_action,
                                   generator=generator, seed=seed, epoch_length=epoch_length, **shard)
    if train_sampler == 'RandomDomainSampler':
        return RandomDomainSampler(data_source, batch_size, num_cams, generator=generator, seed=seed, **shard)
    if train_sampler == 'RandomDatasetSampler':
        return RandomDatasetSampler(data_source, batch_size, num_datasets, generator=generator, seed=seed, **shard)
    if train_sampler in ('SequentialSampler', 'RandomSampler') and num_replicas > 1:
        return DistributedSampler(data_source, num_replicas=num_replicas, rank=rank,
                                  shuffle=train_sampler == 'RandomSampler', seed=0 if seed is None else int(seed),
                                  drop_last=True)
    if train_sampler == 'SequentialSampler':
        return SequentialSampler(data_source)
    if train_sampler == 'RandomSampler':
        return SeededRandomSampler(data_source, seed=seed, generator=generator)
    raise ValueError(f'unknown train sampler {train_sampler!r}; valid names (AVAILABLE_SAMPLERS): '
                     f'{", ".join(AVAILABLE_SAMPLERS)}')
