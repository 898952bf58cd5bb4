"""Shared fixtures: one intra-op thread for torch, one tiny synthetic SoccerNet-v3 ReID set per session."""
import pytest


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
