import numpy as np
import pytest
import torch

from torchreid.metrics import distance as D
from torchreid.metrics import compute_distance_matrix


def _brute(a, b, metric, normalize):
    a, b = a.double(), b.double()
    if normalize or metric == 'cosine':
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
        b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = torch.empty(len(a), len(b), dtype=torch.float64)
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = ((a[i] - b[j]) ** 2).sum() if metric == 'euclidean' else 1 - (a[i] * b[j]).sum()
    return out


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
@pytest.mark.parametrize('normalize', [False, True])
def test_matches_brute_force(metric, normalize):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(9, 5, generator=g)
    out = compute_distance_matrix(a, b, metric=metric, normalize=normalize)
    assert isinstance(out, torch.Tensor) and out.shape == (7, 9) and out.dtype == torch.float32
    assert torch.allclose(out.double(), _brute(a, b, metric, normalize), atol=1e-5)


def test_numpy_input_and_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((13, 8)).astype(np.float32)
    full = compute_distance_matrix(a, b)
    monkeypatch.setattr(D, '_BLOCK_ELEMENTS', 13 * 3)  # 3 rows per block
    blocked = compute_distance_matrix(a, b)
    assert torch.allclose(full, blocked, atol=1e-5)
    assert torch.allclose(compute_distance_matrix(a, b, 'cosine'), D.cosine_distance(torch.from_numpy(a),
                                                                                      torch.from_numpy(b)))
    assert torch.allclose(full.double(), _brute(torch.from_numpy(a), torch.from_numpy(b), 'euclidean', False),
                          atol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match='feature dimensions differ'):
        compute_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='Unknown distance metric'):
        compute_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 3), metric='manhattan')
    with pytest.raises(ValueError, match='2-D'):
        compute_distance_matrix(torch.zeros(3), torch.zeros(2, 3))
    with pytest.raises(TypeError):
        compute_distance_matrix([[1.0]], torch.zeros(1, 1))


def test_empty():
    assert compute_distance_matrix(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
