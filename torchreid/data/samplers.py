"""Training samplers: random, sequential, P identities x K instances, and per-action P x K.

Randomness: each epoch draws one seed from a torch generator (``generator`` if given, else torch's
global generator, which ``set_random_seed`` seeds and a checkpoint restores) and builds the whole
epoch's order from it, so a resumed run reproduces the same batches. With ``seed`` set, the epoch
order depends only on ``(seed, epoch)`` instead (``set_epoch`` as in DistributedSampler).

Epoch length: an identity sampler yields ``len(data_source)`` indices rounded down to whole batches
(at least one batch), so an epoch sees about as many images as the dataset has, whatever the number
of instances per identity. Identities with fewer than K images are sampled with replacement
(Torchreid semantics); when one pass over the identities gives fewer batches than an epoch needs,
another pass is drawn.
"""
import logging
import random
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
from torch.utils.data import RandomSampler, Sampler, SequentialSampler

logger = logging.getLogger(__name__)

__all__ = ['RandomIdentitySampler', 'RandomActionSampler', 'RandomSampler', 'SequentialSampler', 'SeededRandomSampler',
           'build_train_sampler', 'AVAILABLE_SAMPLERS', 'AVAI_SAMPLERS']

AVAILABLE_SAMPLERS = ('RandomSampler', 'SequentialSampler', 'RandomIdentitySampler', 'RandomActionSampler')
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


class _EpochSampler(Sampler):
    """Common epoch/seed handling: ``_epoch_indices(rng)`` builds one epoch from a ``random.Random``."""

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        self.data_source = data_source
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = _check_batch(self.batch_size, self.num_instances)
        self.generator = generator
        self.seed = seed
        self.epoch = 0
        n_batches = max(1, len(data_source) // self.batch_size)
        self.length = n_batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Only matters with ``seed``: the epoch's order is a function of (seed, epoch)."""
        self.epoch = int(epoch)

    def _rng(self) -> random.Random:
        if self.seed is not None:
            return random.Random(self.seed * 1_000_003 + self.epoch)
        draw = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return random.Random(int(draw.item()))

    def _chunks(self, indices: List[int], rng: random.Random) -> List[List[int]]:
        """Torchreid's K-instance chunks of one identity: with replacement when it has fewer than K."""
        k = self.num_instances
        if len(indices) < k:
            picked = [rng.choice(indices) for _ in range(k)]
            return [picked]
        picked = list(indices)
        rng.shuffle(picked)
        return [picked[i:i + k] for i in range(0, len(picked) - k + 1, k)]

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


class RandomIdentitySampler(_EpochSampler):
    """Batches of P identities x K instances (P = batch_size / num_instances).

    Args:
        data_source: records ``(img_path, pid, camid, dsetid)``.
        batch_size: images per batch, a multiple of ``num_instances``.
        num_instances: K, the images per identity in a batch.
    """

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        super().__init__(data_source, batch_size, num_instances, generator, seed)
        self.index_dic: Dict[object, List[int]] = defaultdict(list)
        for index, record in enumerate(data_source):
            self.index_dic[record[1]].append(index)
        self.pids = list(self.index_dic)
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
    one action). Several actions per batch train better: on the synthetic demo set
    (benchmarks/perf/bench_accuracy.py), whole-action batches, whose BatchNorm statistics and negatives
    all come from one scene, scored far below plain P x K sampling, and groups of 4 identities from
    several actions, with the action-aware triplet, scored above plain P x K with the plain triplet in
    the strong recipe (configs/strong.yaml). Figures: docs/results.md.
    """

    def __init__(self, data_source: Records, batch_size: int, num_instances: int,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 num_pids_per_action: Optional[int] = 4):
        super().__init__(data_source, batch_size, num_instances, generator, seed)
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
                        **kwargs: Any) -> Sampler:
    """Build a training sampler by name (Torchreid's call shape); ``num_pids_per_action`` is used by
    ``RandomActionSampler`` only."""
    if train_sampler == 'RandomIdentitySampler':
        return RandomIdentitySampler(data_source, batch_size, num_instances, generator=generator, seed=seed)
    if train_sampler == 'RandomActionSampler':
        return RandomActionSampler(data_source, batch_size, num_instances, num_pids_per_action=num_pids_per_action,
                                   generator=generator, seed=seed)
    if train_sampler == 'SequentialSampler':
        return SequentialSampler(data_source)
    if train_sampler == 'RandomSampler':
        return SeededRandomSampler(data_source, seed=seed, generator=generator)
    raise ValueError(f'unknown train sampler {train_sampler!r}; valid names (AVAILABLE_SAMPLERS): '
                     f'{", ".join(AVAILABLE_SAMPLERS)}')
