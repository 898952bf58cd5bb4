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
"""
import logging
import random
from collections import defaultdict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import torch
from torch.utils.data import RandomSampler, Sampler, SequentialSampler

logger = logging.getLogger(__name__)

__all__ = ['RandomIdentitySampler', 'RandomActionSampler', 'RandomDomainSampler', 'RandomDatasetSampler',
           'RandomSampler', 'SequentialSampler', 'SeededRandomSampler', 'build_train_sampler', 'AVAILABLE_SAMPLERS',
           'AVAI_SAMPLERS', 'EPOCH_LENGTHS']

AVAILABLE_SAMPLERS = ('RandomSampler', 'SequentialSampler', 'RandomIdentitySampler', 'RandomActionSampler',
                      'RandomDomainSampler', 'RandomDatasetSampler')
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


class _SeededSampler(Sampler):
    """Epoch/seed handling shared by the batch samplers: ``_one_pass(rng)`` returns a list of batches drawn
    with a ``random.Random``; an epoch is ``self.length`` indices taken from as many passes as needed."""

    def __init__(self, data_source: Records, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None):
        self.data_source = data_source
        self.generator = generator
        self.seed = seed
        self.epoch = 0
        self.length = 0

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
        indices: List[int] = []
        while len(indices) < self.length:
            batches = self._one_pass(rng)
            if not batches:
                raise RuntimeError(f'{type(self).__name__}: a pass over the data produced no batch')
            for batch in batches:
                indices.extend(batch)
                if len(indices) >= self.length:
                    break
        return iter(indices[:self.length])

    def __len__(self) -> int:
        return self.length


class _EpochSampler(_SeededSampler):
    """P x K samplers: ``num_instances`` images per identity, ``epoch_length`` as in the module docstring."""

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 epoch_length: str = 'identities'):
        super().__init__(data_source, generator, seed)
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = _check_batch(self.batch_size, self.num_instances)
        if epoch_length not in EPOCH_LENGTHS:
            raise ValueError(f'{type(self).__name__}: epoch_length must be one of {EPOCH_LENGTHS}, '
                             f'got {epoch_length!r}')
        self.epoch_length = epoch_length
        self.length = self._whole_batches(len(data_source))

    def _whole_batches(self, num_indices: int) -> int:
        return max(1, num_indices // self.batch_size) * self.batch_size

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
                 epoch_length: str = 'identities'):
        super().__init__(data_source, batch_size, num_instances, generator, seed, epoch_length)
        self.index_dic: Dict[object, List[int]] = defaultdict(list)
        for index, record in enumerate(data_source):
            self.index_dic[record[1]].append(index)
        self.pids = list(self.index_dic)
        self._set_identity_length(len(idx) for idx in self.index_dic.values())
        if len(self.pids) < self.num_pids_per_batch:
            raise ValueError(f'RandomIdentitySampler needs at least P={self.num_pids_per_batch} identities '
                             f'(batch_size {batch_size} / num_instances {num_instances}), got {len(self.pids)}')

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        chunks = {pid: self._chunks(self.index_dic[pid], rng) for pid in self.pids}
        available = list(self.pids)
        position = {pid: i for i, pid in enumerate(available)}
        batches = []
        while len(available) >= self.num_pids_per_batch:
            selected = rng.sample(available, self.num_pids_per_batch)
            batch = []
            for pid in selected:
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
                 num_pids_per_action: Optional[int] = 4, epoch_length: str = 'identities'):
        super().__init__(data_source, batch_size, num_instances, generator, seed, epoch_length)
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
        group = min(self.num_pids_per_action or self.num_pids_per_batch, self.num_pids_per_batch)
        fill = sum(min(group, len(p)) for p in self.actions.values() if len(p) >= 2)
        if fill < self.num_pids_per_batch:
            raise ValueError(
                f'RandomActionSampler needs at least P={self.num_pids_per_batch} identities (batch_size {batch_size} '
                f'/ num_instances {num_instances}) from actions with >= 2 identities, at most '
                f'{group} per action (num_pids_per_action); the data gives {fill}')
        self._set_identity_length(len(idx) for pids in self.actions.values() if len(pids) >= 2
                                  for idx in pids.values())
        alone = sum(1 for pids in self.actions.values() if len(pids) == 1)
        if alone:
            logger.warning('RandomActionSampler: %d identities are alone in their action and are never sampled '
                           '(they have no same-action negative)', alone)

    def _one_pass(self, rng: random.Random) -> List[List[int]]:
        p = self.num_pids_per_batch
        group = p if self.num_pids_per_action is None else min(self.num_pids_per_action, p)
        # action -> pid -> list of K-instance chunks, and the epoch's action order.
        pools = {a: {pid: self._chunks(idx, rng) for pid, idx in self.actions[a].items()} for a in self.action_keys}
        queue = list(self.action_keys)
        rng.shuffle(queue)
        head = 0  # queue[:head] is done (fewer than 2 identities left)
        batches = []
        while True:
            batch, taken, pos = [], 0, head
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
                return batches  # not enough identities left for a full batch
            batches.append(batch)


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
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        super().__init__(data_source, generator, seed)
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
        self.length = len(self._one_pass(random.Random(0 if seed is None else seed))) * self.batch_size

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
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        super().__init__(data_source, batch_size, n_domain, generator, seed)


class RandomDatasetSampler(_GroupBatchSampler):
    """Batches of ``n_dataset`` random source datasets (``dsetid``) x ``batch_size / n_dataset`` random
    images each (Torchreid's sampler for multi-source training; ``n_dataset`` None or <= 0: all)."""

    _field = 3
    _what = 'dataset'
    _count_name = 'n_dataset'

    def __init__(self, data_source: Records, batch_size: int, n_dataset: Optional[int],
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        super().__init__(data_source, batch_size, n_dataset, generator, seed)


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
                        epoch_length: str = 'identities', **kwargs: Any) -> Sampler:
    """Build a training sampler by name (Torchreid's call shape).

    ``num_instances``: K of the identity/action samplers; ``num_cams`` / ``num_datasets``: cameras /
    datasets per batch of ``RandomDomainSampler`` / ``RandomDatasetSampler``; ``num_pids_per_action``:
    ``RandomActionSampler`` only; ``epoch_length``: identity/action samplers only (module docstring).
    Other keywords are accepted and ignored, as in Torchreid.
    """
    if train_sampler == 'RandomIdentitySampler':
        return RandomIdentitySampler(data_source, batch_size, num_instances, generator=generator, seed=seed,
                                     epoch_length=epoch_length)
    if train_sampler == 'RandomActionSampler':
        return RandomActionSampler(data_source, batch_size, num_instances, num_pids_per_action=num_pids_per_action,
                                   generator=generator, seed=seed, epoch_length=epoch_length)
    if train_sampler == 'RandomDomainSampler':
        return RandomDomainSampler(data_source, batch_size, num_cams, generator=generator, seed=seed)
    if train_sampler == 'RandomDatasetSampler':
        return RandomDatasetSampler(data_source, batch_size, num_datasets, generator=generator, seed=seed)
    if train_sampler == 'SequentialSampler':
        return SequentialSampler(data_source)
    if train_sampler == 'RandomSampler':
        return SeededRandomSampler(data_source, seed=seed, generator=generator)
    raise ValueError(f'unknown train sampler {train_sampler!r}; valid names (AVAILABLE_SAMPLERS): '
                     f'{", ".join(AVAILABLE_SAMPLERS)}')
