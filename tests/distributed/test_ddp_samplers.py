"""Samplers sharded across ranks: disjoint, complete, equal-length shards; one rank yields what it did before."""
from collections import Counter

import pytest

from torchreid.data.samplers import (RandomActionSampler, RandomDomainSampler, RandomIdentitySampler,
                                     build_train_sampler)


def _records(num_actions=6, pids_per_action=5, images=4):
    """SoccerNet-like records: every action has its own identities; camid = action."""
    out = []
    for a in range(num_actions):
        for p in range(pids_per_action):
            out.extend((f'{a}_{p}_{i}.png', a * 100 + p, a, 0) for i in range(images))
    return out


def _steps(indices, batch_size):
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


@pytest.mark.parametrize('world', [2, 3])
def test_identity_shards_are_a_single_process_epoch_split_by_rank(world):
    records = _records()
    batch = 8  # P = 4 identities per rank
    shards = []
    for rank in range(world):
        sampler = RandomIdentitySampler(records, batch, 2, seed=3, num_replicas=world, rank=rank)
        sampler.set_epoch(4)
        shards.append(list(sampler))
    single = RandomIdentitySampler(records, batch * world, 2, seed=3, num_replicas=1, rank=0)
    single.set_epoch(4)
    whole = list(single)
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(whole) // world
    per_rank = [_steps(s, batch) for s in shards]
    for step, global_batch in enumerate(_steps(whole, batch * world)):
        # complete: the ranks' batches of a step are the single process's batch of that step, in rank order
        assert sum((per_rank[r][step] for r in range(world)), []) == global_batch
        # disjoint: an identity is in one rank's batch only
        pids = [{records[i][1] for i in per_rank[r][step]} for r in range(world)]
        assert sum(len(p) for p in pids) == len(set().union(*pids)) == 4 * world


def test_action_sampler_puts_each_action_on_one_rank_per_step():
    records = _records(num_actions=10, pids_per_action=4)
    batch, world = 8, 2  # P = 4, two identities per action: each rank's batch spans 2 actions
    shards = []
    for rank in range(world):
        sampler = RandomActionSampler(records, batch, 2, seed=1, num_pids_per_action=2, num_replicas=world, rank=rank)
        sampler.set_epoch(2)
        shards.append(_steps(list(sampler), batch))
    assert len(shards[0]) == len(shards[1]) > 1
    for step in range(len(shards[0])):
        actions = [{records[i][2] for i in shards[r][step]} for r in range(world)]
        assert not actions[0] & actions[1]
        assert all(len(a) == 2 for a in actions)
    one = RandomActionSampler(records, batch, 2, seed=1, num_pids_per_action=2, num_replicas=1, rank=0)
    default = RandomActionSampler(records, batch, 2, seed=1, num_pids_per_action=2)
    assert list(one) == list(default)  # without a process group: one replica


def test_domain_sampler_shards_are_equal_and_distinct_batches():
    records = _records()
    shards = [list(RandomDomainSampler(records, 8, 2, seed=0, num_replicas=2, rank=r)) for r in range(2)]
    single = list(RandomDomainSampler(records, 8, 2, seed=0, num_replicas=1, rank=0))
    assert len(shards[0]) == len(shards[1]) == (len(single) // 16) * 8
    steps = _steps(single + list(RandomDomainSampler(records, 8, 2, seed=0, num_replicas=1, rank=0)), 8)
    assert _steps(shards[0], 8) == steps[0:2 * len(shards[0]) // 8:2]
    assert _steps(shards[1], 8) == steps[1:2 * len(shards[1]) // 8:2]


def test_random_sampler_becomes_torch_distributed_sampler():
    records = _records(num_actions=2)
    shards = [list(build_train_sampler(records, 'RandomSampler', seed=7, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(records) // 2
    assert Counter(shards[0] + shards[1]) == Counter(range(len(records)))
    sampler = build_train_sampler(records, 'RandomSampler', seed=7, num_replicas=2, rank=0)
    sampler.set_epoch(1)
    assert list(sampler) != shards[0]  # a new order each epoch, the same on every rank


def test_shard_after_construction_and_refusals():
    records = _records(num_actions=2, pids_per_action=4)  # 8 identities
    sampler = RandomIdentitySampler(records, 8, 2, seed=0)
    assert sampler.num_replicas == 1 and len(sampler) == 32
    sampler.shard(2, 1)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, 1, 16)
    with pytest.raises(ValueError, match='P=4 x 3 ranks'):
        sampler.shard(3, 0)
    with pytest.raises(ValueError, match='rank must be'):
        RandomIdentitySampler(records, 8, 2, seed=0, num_replicas=2, rank=2)
