"""Shared fixtures: one intra-op thread for torch, one tiny synthetic SoccerNet-v3 ReID set per session, and a
toy ranking step (a new ranking step is one class: the tests register it and see it everywhere)."""
import dataclasses
from typing import ClassVar

import pytest

from torchreid.metrics import OptionError, RankingStep, register_ranking_step, unregister_ranking_step


@dataclasses.dataclass(frozen=True)
class FarthestFirst(RankingStep):
    """A toy ranking step: every gallery item ranked by minus its distance times ``weight`` (farthest first)."""

    key: ClassVar[str] = 'toy_farthest_first'
    prefix: ClassVar[str] = 'toy'

    weight: float = 1.0

    def __post_init__(self):
        if not self.weight > 0:
            raise OptionError('toy_weight', f'must be > 0, got {self.weight!r}')

    def __call__(self, block):
        return block.replace(dist=-self.weight * block.distances())


@pytest.fixture
def toy_ranking_step():
    """:class:`FarthestFirst` registered for one test."""
    register_ranking_step(FarthestFirst)
    try:
        yield FarthestFirst
    finally:
        unregister_ranking_step(FarthestFirst.key)


@pytest.fixture(scope='session', autouse=True)
def single_torch_thread():
    """The suite's models and images are tiny: a second OpenMP thread adds synchronisation cost, and on a
    busy 2-core machine spinning threads make runs 10-20x slower and erratic rather than faster."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory):
    """A data root holding ``soccernetv3/reid/...`` generated with the 'tiny' preset, seed 0."""
    from torchreid.synthetic import generate_dataset

    root = tmp_path_factory.mktemp('tiny_data')
    generate_dataset(str(root), preset='tiny', seed=0)
    return str(root)
