"""Shared fixtures: one tiny synthetic SoccerNet-v3 ReID set per test session."""
import pytest


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory):
    """A data root holding ``soccernetv3/reid/...`` generated with the 'tiny' preset, seed 0."""
    from torchreid.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp('tiny_data')
    generate_dataset(str(root), preset='tiny', seed=0)
    return str(root)
