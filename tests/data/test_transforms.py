"""Torchreid's transform classes: RandomErasing (mean fill), ColorAugmentation (PCA lighting), RandomPatch
(prob_rotate, PIL input), and build_transforms with Torchreid's names."""
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from torchreid.data.transforms import (AVAILABLE_TRANSFORMS, ColorAugmentation, RandomErasing, RandomPatch,
                                       build_transforms)


def test_random_erasing_fills_a_rectangle_with_the_mean():
    torch.manual_seed(0)
    erase = RandomErasing(probability=1.0, mean=[0.1, 0.2, 0.3])
    img = torch.full((3, 40, 20), 5.0)
    for _ in range(20):
        out = erase(img)
        assert torch.equal(img, torch.full((3, 40, 20), 5.0))   # the input is left alone
        erased = (out != 5.0)
        rows, cols = erased[0].any(dim=1).nonzero(), erased[0].any(dim=0).nonzero()
        h, w = len(rows), len(cols)
        assert 0 < h < 40 and 0 < w < 20
        # one axis-aligned rectangle, same in every channel, filled with that channel's mean
        assert erased[0].sum() == h * w and (erased == erased[0]).all()
        for c, value in enumerate([0.1, 0.2, 0.3]):
            assert torch.allclose(out[c][erased[c]], torch.tensor(value))
        # area within [sl, sh] of the image (rounding of the sides allows a little slack)
        assert 0.02 * 800 * 0.6 <= h * w <= 0.4 * 800 * 1.4


def test_random_erasing_probability_gray_and_checks():
    torch.manual_seed(1)
    img = torch.zeros(1, 30, 30)
    assert torch.equal(RandomErasing(probability=0.0)(img), img)
    out = RandomErasing(probability=1.0, mean=[0.7, 0.1, 0.1])(img)
    assert torch.allclose(out.unique(), torch.tensor([0.0, 0.7]))   # one channel: filled with mean[0]
    touched = sum(bool((RandomErasing(probability=0.5)(torch.zeros(3, 30, 30)) != 0).any()) for _ in range(200))
    assert 60 < touched < 140
    with pytest.raises(ValueError, match='probability'):
        RandomErasing(probability=1.5)
    with pytest.raises(ValueError, match='sl <= sh'):
        RandomErasing(sl=0.5, sh=0.1)
    with pytest.raises(TypeError, match=r'\[C, H, W\] tensor'):
        RandomErasing()(Image.new('RGB', (4, 4)))


def test_color_augmentation_adds_one_shift_per_channel():
    torch.manual_seed(2)
    aug = ColorAugmentation(p=1.0)
    img = torch.rand(3, 8, 4)
    out = aug(img)
    shift = (out - img).reshape(3, -1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)   # constant per channel
    assert shift.abs().max() > 0
    # the shift lies in the span of the eigenvectors scaled by the eigenvalues: recover alpha (~N(0, 0.1))
    eigvec, eigval = torch.tensor(ColorAugmentation.EIGVEC), torch.tensor(ColorAugmentation.EIGVAL)
    alpha = torch.linalg.solve(eigvec.T, shift[:, 0]) / eigval
    assert alpha.abs().max() < 0.6
    shifts = torch.stack([(aug(img) - img)[:, 0, 0] for _ in range(300)])
    alphas = torch.linalg.solve(eigvec.T, shifts.T).T / eigval
    assert torch.allclose(alphas.std(dim=0), torch.full((3,), 0.1), atol=0.02)
    assert torch.equal(ColorAugmentation(p=0.0)(img), img)
    with pytest.raises(TypeError, match='RGB'):
        aug(torch.rand(1, 8, 4))


def test_random_patch_rotation_and_pil_input():
    torch.manual_seed(3)
    patch = RandomPatch(prob_happen=1.0, min_sample_size=1, prob_flip_leftright=0.0, prob_rotate=1.0,
                        patch_min_area=0.3, patch_max_area=0.5)
    white = Image.new('RGB', (20, 40), (255, 255, 255))
    out = patch(white)
    assert isinstance(out, Image.Image) and out.size == (20, 40) and len(patch.patchpool) == 1
    black = Image.new('RGB', (20, 40), (0, 0, 0))
    pasted = pil_to_tensor(patch(black))
    assert (pasted == 255).all(dim=0).sum() > 0   # the white patch was pasted
    # rotated by a non-zero angle: black corners appear inside the pasted white patch's box
    rotated = [patch._transform_patch(torch.full((3, 12, 8), 255, dtype=torch.uint8)) for _ in range(20)]
    assert all(r.shape == (3, 12, 8) for r in rotated)
    assert any((r == 0).any() for r in rotated)
    with pytest.raises(ValueError, match='prob_rotate'):
        RandomPatch(prob_rotate=2.0)


def test_build_transforms_accepts_torchreid_names():
    for name in ('random_flip', 'random_crop', 'random_patch', 'color_jitter', 'random_erase'):
        assert name in AVAILABLE_TRANSFORMS
    torch.manual_seed(4)
    tr, te = build_transforms(32, 16, transforms=['random_flip', 'random_crop', 'random_patch', 'color_jitter',
                                                  'random_erase'], norm_mean=[0.5] * 3, norm_std=[0.5] * 3)
    img = Image.new('RGB', (30, 70), (10, 200, 30))
    assert tr(img).shape == te(img).shape == (3, 32, 16)
    assert torch.allclose(te(img)[:, 0, 0], (torch.tensor([10, 200, 30]) / 255 - 0.5) / 0.5, atol=1e-5)
