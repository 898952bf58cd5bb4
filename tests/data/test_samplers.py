"""Sampler properties over many batches and seeds."""
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from torchreid.data.samplers import (AVAILABLE_SAMPLERS, RandomActionSampler, RandomDatasetSampler,
                                     RandomDomainSampler, RandomIdentitySampler, build_train_sampler)


def make_records(sizes_per_action, dsetid=0, pid_start=0):
    """``sizes_per_action``: list (per action) of lists (per identity) of image counts."""
    records, pid = [], pid_start
    for action, sizes in enumerate(sizes_per_action):
        for n in sizes:
            for k in range(n):
                records.append((f'a{action}_p{pid}_{k}.png', pid, action, dsetid))
            pid += 1
    return records


def batches_of(sampler, batch_size):
    indices = list(iter(sampler))
    assert len(indices) == len(sampler)
    assert len(indices) % batch_size == 0
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


action_layouts = st.lists(  # actions, each 1..9 identities of 1..7 images
    st.lists(st.integers(1, 7), min_size=1, max_size=9), min_size=2, max_size=12)


@settings(max_examples=40, deadline=None)
@given(layout=action_layouts, k=st.sampled_from([1, 2, 4]), p=st.integers(2, 6), seed=st.integers(0, 2 ** 31))
def test_identity_sampler_p_by_k(layout, k, p, seed):
    records = make_records(layout)
    n_pids = len({r[1] for r in records})
    if n_pids < p:
        with pytest.raises(ValueError, match='at least P'):
            RandomIdentitySampler(records, p * k, k)
        return
    torch.manual_seed(seed)
    sampler = RandomIdentitySampler(records, p * k, k)
    # Torchreid's epoch: each identity once as max(1, n // K) chunks of K
    per_pass = sum(k * max(1, n // k) for sizes in layout for n in sizes)
    assert len(sampler) == max(1, per_pass // (p * k)) * p * k
    for batch in batches_of(sampler, p * k):
        counts = Counter(records[i][1] for i in batch)
        assert len(counts) == p and set(counts.values()) == {k}
        # instances of one identity are consecutive K-blocks
        for j in range(0, p * k, k):
            assert len({records[i][1] for i in batch[j:j + k]}) == 1


@settings(max_examples=60, deadline=None)
@given(layout=action_layouts, k=st.sampled_from([1, 2, 4]), p=st.integers(2, 6), m=st.sampled_from([None, 2, 3]),
       seed=st.integers(0, 2 ** 31))
def test_action_sampler_composition(layout, k, p, m, seed):
    records = make_records(layout)
    # identities a batch can gather: at most M from each action that has >= 2
    fill = sum(min(m or p, p, len(a)) for a in layout if len(a) >= 2)
    if fill < p:
        with pytest.raises(ValueError, match='at least 2 identities|at least P'):
            RandomActionSampler(records, p * k, k, num_pids_per_action=m)
        return
    torch.manual_seed(seed)
    sampler = RandomActionSampler(records, p * k, k, num_pids_per_action=m)
    lone = {r[1] for r in records if len(layout[r[2]]) == 1}
    for batch in batches_of(sampler, p * k):
        pids = Counter(records[i][1] for i in batch)
        assert len(pids) == p and set(pids.values()) == {k}  # P distinct ids x K each
        assert not lone & set(pids)  # an identity alone in its action has no negative: never sampled
        by_action = defaultdict(set)
        for i in batch:
            by_action[records[i][2]].add(records[i][1])
        groups = sorted(len(ids) for ids in by_action.values())
        # an action-aware triplet finds a negative: >= 2 ids share an action; only the last group may be 1
        assert groups[-1] >= 2 and groups.count(1) <= 1
        assert groups[-1] <= (m or p)
        if m is None:  # fewest actions: every action but the one giving the most ids is used to fill
            assert len(groups) <= 1 + p - groups[-1]


def test_action_sampler_single_action_batches_when_possible():
    # every action has 8 identities with 4 images: with P=8, K=4 and whole actions each batch is one action
    records = make_records([[4] * 8 for _ in range(10)])
    torch.manual_seed(0)
    sampler = RandomActionSampler(records, 32, 4, num_pids_per_action=None)
    batches = batches_of(sampler, 32)
    assert len(batches) == 10
    assert all(len({records[i][2] for i in b}) == 1 for b in batches)
    assert sorted(records[b[0]][2] for b in batches) == list(range(10))  # each action once


def test_action_sampler_groups_of_m_identities():
    # 8 identities per action, P=8, M=4 (the default): each batch is 4 identities from each of 2 actions,
    # and one epoch uses every identity once
    records = make_records([[4] * 8 for _ in range(10)])
    torch.manual_seed(0)
    sampler = RandomActionSampler(records, 32, 4)
    assert sampler.num_pids_per_action == 4
    batches = batches_of(sampler, 32)
    assert len(batches) == 10
    for batch in batches:
        by_action = Counter(records[i][2] for i in batch)
        assert sorted(by_action.values()) == [16, 16]
    assert sorted(i for b in batches for i in b) == list(range(len(records)))


@pytest.mark.parametrize('m', [1, 0, 2.5])
def test_action_sampler_rejects_bad_group_size(m):
    with pytest.raises(ValueError, match='num_pids_per_action'):
        RandomActionSampler(make_records([[2, 2, 2]]), 4, 2, num_pids_per_action=m)


def test_action_sampler_warns_about_lone_identities(caplog):
    records = make_records([[2, 2], [3], [2]])
    with caplog.at_level('WARNING'):
        RandomActionSampler(records, 4, 2)
    assert '2 identities are alone in their action' in caplog.text


def test_action_sampler_separates_datasets():
    # same camid in two datasets: different actions
    records = make_records([[2, 2]]) + make_records([[2, 2]], dsetid=1, pid_start=2)
    sampler = RandomActionSampler(records, 4, 2)
    for batch in batches_of(sampler, 4):
        assert len({records[i][3] for i in batch}) == 1


@pytest.mark.parametrize('cls', [RandomIdentitySampler, RandomActionSampler])
def test_reproducible_from_global_rng(cls):
    records = make_records([[3, 1, 5, 2], [2, 2, 2], [6, 1], [1, 1, 1, 4]])
    sampler = cls(records, 8, 2)
    torch.manual_seed(123)
    first = [list(sampler), list(sampler)]
    state = torch.get_rng_state()
    third = list(sampler)
    torch.manual_seed(123)
    assert [list(sampler), list(sampler)] == first  # same seed, same epochs
    assert first[0] != first[1]  # epochs differ
    torch.set_rng_state(state)  # what a checkpoint restores
    assert list(sampler) == third
    # Python's and NumPy's RNGs are not touched
    py, npy = random.getstate(), np.random.get_state()[1].copy()
    list(sampler)
    assert random.getstate() == py and (np.random.get_state()[1] == npy).all()


@pytest.mark.parametrize('cls', [RandomIdentitySampler, RandomActionSampler])
def test_seeded_sampler_set_epoch(cls):
    records = make_records([[3, 1, 5, 2], [2, 2, 2], [6, 1]])
    a, b = cls(records, 8, 2, seed=7), cls(records, 8, 2, seed=7)
    epochs = [list(a) for _ in range(3)]
    b.set_epoch(2)  # a resumed run jumps to epoch 2
    assert list(b) == epochs[2]
    assert epochs[0] != epochs[1]


def test_epoch_length_images_option():
    # 100 ids with one image each: P x K sampling with replacement would give 4x the images per pass
    records = make_records([[1] * 10 for _ in range(10)])
    sampler = RandomIdentitySampler(records, 16, 4, epoch_length='images')
    assert len(sampler) == 96 and len(list(sampler)) == 96
    # many images per id: an epoch needing more than one pass still has the promised length
    records = make_records([[40, 40]])
    sampler = RandomActionSampler(records, 8, 4, epoch_length='images')
    assert len(list(sampler)) == len(sampler) == 80


def test_epoch_length_identities_is_torchreids_default():
    # ids with 1, 2, 5 and 9 images, K=4: Torchreid's __len__ is 4 + 4 + 4 + 8 = 20 images per identity pass
    records = make_records([[1, 2, 5, 9] * 5])   # 20 ids: 100 images per pass, 85 in the dataset
    sampler = RandomIdentitySampler(records, 8, 4)
    assert sampler.epoch_length == 'identities'
    assert len(sampler) == 96 and len(list(sampler)) == 96           # 100 rounded down to whole batches
    assert len(RandomIdentitySampler(records, 8, 4, epoch_length='images')) == 80   # 85 images
    torch.manual_seed(0)
    epoch = list(sampler)
    counts = Counter(records[i][1] for i in epoch[:80])
    # the first pass gives every identity its chunks: 1-, 2- and 5-image ids one chunk, 9-image ids two
    assert sum(counts.values()) == 80 and set(counts.values()) <= {4, 8}
    # the action sampler counts the identities it can draw: the lone identity of action 1 is left out
    records = make_records([[1, 2, 5, 9], [7]])
    action = RandomActionSampler(records, 8, 4, num_pids_per_action=2)
    assert len(action) == 16 and len(list(action)) == 16             # (4 + 4 + 4 + 8) // 8 batches
    assert len(RandomActionSampler(records, 8, 4, num_pids_per_action=2, epoch_length='images')) == 24
    with pytest.raises(ValueError, match="epoch_length must be one of"):
        RandomIdentitySampler(records, 8, 4, epoch_length='pids')
    built = build_train_sampler(records, 'RandomIdentitySampler', 8, 4, epoch_length='images')
    assert built.epoch_length == 'images' and len(built) == 24


def camera_records(images_per_cam, dsetid=0):
    """``images_per_cam``: image counts per camera; pids cycle over 3 identities."""
    records = []
    for cam, n in enumerate(images_per_cam):
        records += [(f'c{cam}_{i}.jpg', i % 3, cam, dsetid) for i in range(n)]
    return records


@pytest.mark.parametrize('seed', [None, 3])
def test_random_domain_sampler_batches(seed):
    records = camera_records([12, 9, 20, 6, 2])   # camera 4 has fewer images than a batch's share
    torch.manual_seed(0)
    sampler = RandomDomainSampler(records, 8, 2, seed=seed)
    assert 4 not in sampler.group_keys and sampler.images_per_group == 4
    for _ in range(3):   # every epoch: whole batches of 2 cameras x 4 distinct images, len() kept
        batches = batches_of(sampler, 8)
        assert len(batches) * 8 == len(sampler) > 0
        for batch in batches:
            cams = Counter(records[i][2] for i in batch)
            assert len(cams) == 2 and set(cams.values()) == {4} and len(set(batch)) == 8
    # a pass never draws an image twice and stops right after the first batch that leaves a camera with
    # fewer than 4 images (Torchreid's rule)
    for pass_seed in range(5):
        batches = sampler._one_pass(random.Random(pass_seed))
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))
        left = Counter(r[2] for r in records if r[2] != 4)
        for j, batch in enumerate(batches):
            left.subtract(records[i][2] for i in batch)
            assert (min(left.values()) < 4) == (j == len(batches) - 1)


def test_random_domain_sampler_checks(caplog):
    with caplog.at_level('WARNING'):
        RandomDomainSampler(camera_records([12, 9, 20, 2]), 8, 2)
    assert '1 camera(s) with fewer than 4 images (batch_size / n_domain) are never sampled: 3' in caplog.text
    records = camera_records([12, 9, 20])
    with pytest.raises(ValueError, match='multiple of n_domain'):
        RandomDomainSampler(records, 9, 2)
    with pytest.raises(ValueError, match=r'needs 3 cameras \(n_domain\) with at least 4 images'):
        RandomDomainSampler(camera_records([12, 9, 3]), 12, 3)
    all_cams = RandomDomainSampler(records, 9, None)
    assert all_cams.n_groups == 3 and all_cams.images_per_group == 3
    batch = list(all_cams)[:9]
    assert sorted(Counter(records[i][2] for i in batch).values()) == [3, 3, 3]


def test_random_dataset_sampler_and_reproducibility():
    records = camera_records([10, 10], dsetid=0) + camera_records([30], dsetid=1)
    sampler = build_train_sampler(records, 'RandomDatasetSampler', batch_size=6, num_datasets=2)
    assert isinstance(sampler, RandomDatasetSampler)
    for batch in batches_of(sampler, 6):
        assert sorted(Counter(records[i][3] for i in batch).values()) == [3, 3]
    torch.manual_seed(9)
    first = [list(sampler), list(sampler)]
    torch.manual_seed(9)
    assert [list(sampler), list(sampler)] == first and first[0] != first[1]
    seeded = build_train_sampler(records, 'RandomDatasetSampler', batch_size=6, num_datasets=2, seed=4)
    epochs = [list(seeded) for _ in range(3)]
    seeded.set_epoch(2)
    assert list(seeded) == epochs[2]
    domain = build_train_sampler(records, 'RandomDomainSampler', batch_size=6, num_cams=2)
    assert isinstance(domain, RandomDomainSampler) and domain.n_groups == 2


def test_torchreid_sampler_module():
    from torchreid.data import sampler as torchreid_sampler

    for name in ('RandomSampler', 'SequentialSampler', 'RandomIdentitySampler', 'RandomDomainSampler',
                 'RandomDatasetSampler', 'build_train_sampler', 'AVAI_SAMPLERS'):
        assert hasattr(torchreid_sampler, name), name
    records = make_records([[4, 4, 4, 4]])
    # Torchreid's call shape: positional (data_source, train_sampler, batch_size, num_instances, num_cams, ...)
    built = torchreid_sampler.build_train_sampler(records, 'RandomIdentitySampler', 8, 2, 1, 1)
    assert isinstance(built, torchreid_sampler.RandomIdentitySampler) and len(built) == 16
    assert set(torchreid_sampler.AVAI_SAMPLERS) >= {'RandomIdentitySampler', 'SequentialSampler', 'RandomSampler',
                                                   'RandomDomainSampler', 'RandomDatasetSampler'}


def test_batch_size_must_be_multiple():
    records = make_records([[4, 4, 4]])
    for cls in (RandomIdentitySampler, RandomActionSampler):
        with pytest.raises(ValueError, match='multiple of num_instances'):
            cls(records, 10, 4)


def test_action_sampler_needs_an_action_with_two_ids():
    with pytest.raises(ValueError, match='at least 2 identities'):
        RandomActionSampler(make_records([[3], [3], [3]]), 4, 2)


def test_build_train_sampler_names():
    records = make_records([[4, 4, 4, 4]])
    assert isinstance(build_train_sampler(records, 'RandomIdentitySampler', 8, 4), RandomIdentitySampler)
    assert isinstance(build_train_sampler(records, 'RandomActionSampler', 8, 4), RandomActionSampler)
    assert list(build_train_sampler(records, 'SequentialSampler')) == list(range(16))
    assert sorted(build_train_sampler(records, 'RandomSampler')) == list(range(16))
    with pytest.raises(ValueError) as err:
        build_train_sampler(records, 'RandomDomainSamplerX')
    assert all(name in str(err.value) for name in AVAILABLE_SAMPLERS)
    assert 'AVAILABLE_SAMPLERS' in str(err.value)


def test_torchreid_sampler_alias_is_the_same_tuple():
    import torchreid.data.samplers as samplers

    assert samplers.AVAI_SAMPLERS is samplers.AVAILABLE_SAMPLERS is AVAILABLE_SAMPLERS
    assert 'AVAI_SAMPLERS' in samplers.__all__


def test_identity_sampler_scales_linearly():
    # 20k identities: the O(n) per-removal version took minutes at the real 124k-identity scale
    records = [(str(i), i, i // 20, 0) for i in range(20_000)]
    sampler = RandomIdentitySampler(records, 32, 4)
    indices = list(sampler)
    # one pass: every identity once, its single image drawn 4 times (2500 batches of 8 ids x 4 copies)
    assert len(indices) == 80_000 and len(set(indices)) == 20_000
    assert set(Counter(indices).values()) == {4}


def test_seeded_random_sampler_resumes_by_epoch():
    records = make_records([[5, 5, 5, 5]])
    a = build_train_sampler(records, 'RandomSampler', seed=11)
    b = build_train_sampler(records, 'RandomSampler', seed=11)
    epochs = [list(a) for _ in range(3)]
    assert epochs[0] != epochs[1] and sorted(epochs[2]) == list(range(20))
    b.set_epoch(2)
    assert list(b) == epochs[2]
    # unseeded: the global generator decides (restored from a checkpoint on resume)
    c = build_train_sampler(records, 'RandomSampler')
    torch.manual_seed(5)
    first = list(c)
    torch.manual_seed(5)
    assert list(c) == first
