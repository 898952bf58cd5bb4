"""Fixtures for the engine tests."""
import pytest

from engine_helpers import make_datamanager


@pytest.fixture(scope='module')
def datamanager(tiny_root):
    """All three SoccerNet targets (valid, test, challenge)."""
    return make_datamanager(tiny_root)


@pytest.fixture(scope='module')
def dm_valid(tiny_root):
    """Only the valid target: cheaper end-of-training tests."""
    return make_datamanager(tiny_root, targets=['soccernetv3'])


@pytest.fixture(scope='module')
def dm_small(tiny_root):
    """Valid target only and a quarter of the training actions: many short epochs for loss-curve tests."""
    return make_datamanager(tiny_root, targets=['soccernetv3'], soccernetv3_training_subset=0.25)
