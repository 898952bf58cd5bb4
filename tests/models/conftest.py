"""Fixtures for the model tests."""
import pytest
import torch


@pytest.fixture(scope='module', autouse=True)
def single_thread_torch():
    """One intra-op thread: the inputs are tiny, and on a shared 2-core machine a second OpenMP thread makes
    runs slower and erratic (spinning threads competing with other processes), not faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
