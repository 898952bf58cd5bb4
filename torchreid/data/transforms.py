"""Image transforms for training and testing, built on torchvision.transforms.v2.

``build_transforms(height, width, transforms='random_flip', norm_mean=None, norm_std=None)`` returns
``(transform_tr, transform_te)``, Torchreid's call shape. Names accepted in ``transforms``:

- ``resize``: resize to (height, width) (always applied; the name is accepted for clarity)
- ``random_flip``: horizontal flip with probability 0.5
- ``random_crop``: with probability 0.5, enlarge by 1/8 and crop (height, width) at a random place
  (Torchreid's Random2DTranslation)
- ``random_patch``: paste a patch taken from an earlier image (Torchreid's RandomPatch, Zhou & Xiang 2019)
- ``color_jitter``: brightness 0.2, contrast 0.15
- ``random_erase``: random erasing (Zhong et al. 2020) after normalisation
- ``normalize``: normalise with ``norm_mean``/``norm_std`` (always applied; the name is accepted)

Random draws come from torch's generator, which the DataLoader seeds per worker.
"""
import collections
import logging
import math
from typing import Any, Deque, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

logger = logging.getLogger(__name__)

__all__ = ['build_transforms', 'RandomTranslateCrop', 'Random2DTranslation', 'RandomPatch', 'RandomErasing',
           'ColorAugmentation', 'ToNormalizedTensor', 'AVAILABLE_TRANSFORMS', 'IMAGENET_MEAN', 'IMAGENET_STD']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AVAILABLE_TRANSFORMS = ('resize', 'random_flip', 'random_crop', 'random_patch', 'color_jitter',
                        'random_erase', 'normalize')


class RandomTranslateCrop(torch.nn.Module):
    """With probability ``p``, enlarge the image by ``scale`` and crop ``(height, width)`` at a random place.

    Otherwise the image is resized to ``(height, width)``. Works on PIL images and tensors.
    """

    def __init__(self, height: int, width: int, p: float = 0.5, scale: float = 1.125):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'p must be in [0, 1], got {p}')
        if scale < 1.0:
            raise ValueError(f'scale must be >= 1, got {scale}')
        self.height, self.width, self.p, self.scale = int(height), int(width), float(p), float(scale)

    def forward(self, img: Union[Image.Image, torch.Tensor]) -> Union[Image.Image, torch.Tensor]:
        if torch.rand(1).item() >= self.p:
            return F.resize(img, [self.height, self.width], antialias=True)
        new_h, new_w = int(round(self.height * self.scale)), int(round(self.width * self.scale))
        img = F.resize(img, [new_h, new_w], antialias=True)
        top = int(torch.randint(0, new_h - self.height + 1, (1,)).item())
        left = int(torch.randint(0, new_w - self.width + 1, (1,)).item())
        return F.crop(img, top, left, self.height, self.width)

    def extra_repr(self) -> str:
        return f'height={self.height}, width={self.width}, p={self.p}, scale={self.scale}'


# Torchreid's name for the same transform.
Random2DTranslation = RandomTranslateCrop


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high))


class RandomPatch(torch.nn.Module):
    """Paste a patch cut from an earlier image onto this one (occlusion-like augmentation).

    Once the pool holds ``min_sample_size`` patches, with probability ``prob_happen`` a pooled patch,
    flipped left-right with probability ``prob_flip_leftright`` and rotated by a random whole angle in
    [-10, 10] degrees with probability ``prob_rotate``, is pasted at a random place; then a random patch of
    the input joins the pool (up to ``pool_capacity``, oldest dropped first). Torchreid's constructor
    arguments. Input: a uint8 or float tensor ``[C, H, W]`` (after ``ToImage``) or a PIL image (returned as
    a PIL image). The pool lives in each DataLoader worker. Unlike Torchreid, an image's own patch is pooled
    after the paste, so an image never receives a patch of itself.
    """

    def __init__(self, prob_happen: float = 0.5, pool_capacity: int = 50000, min_sample_size: int = 100,
                 patch_min_area: float = 0.01, patch_max_area: float = 0.5, patch_min_ratio: float = 0.1,
                 prob_rotate: float = 0.5, prob_flip_leftright: float = 0.5):
        super().__init__()
        if not 0.0 < patch_min_area <= patch_max_area < 1.0:
            raise ValueError('need 0 < patch_min_area <= patch_max_area < 1')
        if pool_capacity < 1 or min_sample_size < 1:
            raise ValueError('pool_capacity and min_sample_size must be >= 1')
        for name, p in (('prob_happen', prob_happen), ('prob_rotate', prob_rotate),
                        ('prob_flip_leftright', prob_flip_leftright)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'RandomPatch: {name} must be in [0, 1], got {p}')
        self.prob_happen = prob_happen
        self.pool_capacity = int(pool_capacity)
        self.min_sample_size = int(min_sample_size)
        self.patch_min_area = patch_min_area
        self.patch_max_area = patch_max_area
        self.patch_min_ratio = patch_min_ratio
        self.prob_rotate = prob_rotate
        self.prob_flip_leftright = prob_flip_leftright
        self.patchpool: Deque[torch.Tensor] = collections.deque(maxlen=self.pool_capacity)

    def _patch_size(self, h: int, w: int) -> Optional[Tuple[int, int]]:
        for _ in range(100):
            area = h * w * _uniform(self.patch_min_area, self.patch_max_area)
            ratio = _uniform(self.patch_min_ratio, 1.0 / self.patch_min_ratio)
            ph, pw = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < ph < h and 0 < pw < w:
                return ph, pw
        return None

    def _transform_patch(self, patch: torch.Tensor) -> torch.Tensor:
        if torch.rand(1).item() < self.prob_flip_leftright:
            patch = patch.flip(-1)
        if torch.rand(1).item() < self.prob_rotate:
            angle = int(torch.randint(-10, 11, (1,)))
            patch = F.rotate(patch, angle, fill=0)  # same size, corners filled with black (as PIL's rotate)
        return patch

    def forward(self, img: Union[Image.Image, torch.Tensor]) -> Union[Image.Image, torch.Tensor]:
        if isinstance(img, Image.Image):
            return F.to_pil_image(self.forward(F.pil_to_tensor(img)), mode=img.mode)
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise TypeError('RandomPatch expects a [C, H, W] tensor (place it after ToImage) or a PIL image, '
                            f'got {type(img).__name__}')
        h, w = img.shape[-2:]
        out = img
        # Paste from the pool first, then add a patch of this image: never paste an image onto itself.
        if len(self.patchpool) >= self.min_sample_size and torch.rand(1).item() <= self.prob_happen:
            patch = self._transform_patch(self.patchpool[int(torch.randint(0, len(self.patchpool), (1,)))])
            ph, pw = patch.shape[-2:]
            if ph <= h and pw <= w and patch.shape[0] == img.shape[0]:  # a larger image's patch may not fit
                top = int(torch.randint(0, h - ph + 1, (1,)))
                left = int(torch.randint(0, w - pw + 1, (1,)))
                out = img.clone()
                out[:, top:top + ph, left:left + pw] = patch.to(img.dtype)
        size = self._patch_size(h, w)
        if size is not None:
            ph, pw = size
            top = int(torch.randint(0, h - ph + 1, (1,)))
            left = int(torch.randint(0, w - pw + 1, (1,)))
            self.patchpool.append(img[:, top:top + ph, left:left + pw].clone())
        return out

    def extra_repr(self) -> str:
        return (f'prob_happen={self.prob_happen}, pool_capacity={self.pool_capacity}, '
                f'min_sample_size={self.min_sample_size}, prob_rotate={self.prob_rotate}, '
                f'prob_flip_leftright={self.prob_flip_leftright}')


class RandomErasing(torch.nn.Module):
    """Torchreid's random erasing (Zhong et al., AAAI 2020) of a float tensor ``[C, H, W]``.

    With probability ``probability``, up to 100 tries draw an area fraction uniform in ``[sl, sh]`` and an
    aspect ratio (height / width) uniform in ``[r1, 1 / r1]``; the first rectangle strictly smaller than the
    image is filled with ``mean`` (channel ``c`` with ``mean[c]``; a 1-channel image with ``mean[0]``).
    Torchreid's ``build_transforms`` passed the normalisation mean, so the fill is that value in
    *normalised* units. ``torchvision``'s RandomErasing draws the ratio log-uniformly and the area from its
    own defaults, so it is not the same transform. The input is not modified in place.
    """

    def __init__(self, probability: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 mean: Sequence[float] = (0.4914, 0.4822, 0.4465)):
        super().__init__()
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f'RandomErasing: probability must be in [0, 1], got {probability}')
        if not 0.0 < sl <= sh <= 1.0:
            raise ValueError(f'RandomErasing: need 0 < sl <= sh <= 1, got sl={sl}, sh={sh}')
        if not 0.0 < r1 <= 1.0:
            raise ValueError(f'RandomErasing: r1 (minimum aspect ratio) must be in (0, 1], got {r1}')
        self.probability, self.sl, self.sh, self.r1 = float(probability), float(sl), float(sh), float(r1)
        self.mean = [float(m) for m in mean]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise TypeError(f'RandomErasing expects a [C, H, W] tensor (after normalisation), got '
                            f'{type(img).__name__}')
        if torch.rand(1).item() > self.probability:
            return img
        c, h, w = img.shape
        if c != 1 and c > len(self.mean):
            raise ValueError(f'RandomErasing: the image has {c} channels but mean has {len(self.mean)} values')
        for _ in range(100):
            area = _uniform(self.sl, self.sh) * h * w
            ratio = _uniform(self.r1, 1.0 / self.r1)
            eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if ew < w and eh < h:
                top = int(torch.randint(0, h - eh + 1, (1,)))
                left = int(torch.randint(0, w - ew + 1, (1,)))
                out = img.clone()
                fill = torch.tensor(self.mean[:c] if c > 1 else self.mean[:1], dtype=img.dtype)
                out[:, top:top + eh, left:left + ew] = fill.view(-1, 1, 1)
                return out
        return img

    def extra_repr(self) -> str:
        return f'probability={self.probability}, sl={self.sl}, sh={self.sh}, r1={self.r1}, mean={self.mean}'


class ColorAugmentation(torch.nn.Module):
    """Torchreid's PCA colour augmentation (Krizhevsky et al., NIPS 2012) of an RGB float tensor.

    With probability ``p``, adds ``(eigval * alpha) @ eigvec`` to every pixel, ``alpha ~ N(0, 0.1^2)`` per
    principal component, with the ImageNet RGB eigenvalues/eigenvectors Torchreid uses.
    """

    EIGVAL = (0.2175, 0.0188, 0.0045)
    EIGVEC = ((0.4009, 0.7192, -0.5675), (-0.8140, -0.0045, -0.5808), (0.4203, -0.6948, -0.5836))

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'ColorAugmentation: p must be in [0, 1], got {p}')
        self.p = float(p)
        self.eig_val = torch.tensor([self.EIGVAL])
        self.eig_vec = torch.tensor(self.EIGVEC)

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3 or tensor.shape[0] != 3:
            raise TypeError('ColorAugmentation expects an RGB float tensor [3, H, W], got '
                            f'{getattr(tensor, "shape", type(tensor).__name__)}')
        if torch.rand(1).item() > self.p:
            return tensor
        alpha = torch.randn(self.eig_val.shape) * 0.1
        shift = (self.eig_val * alpha) @ self.eig_vec
        return tensor + shift.view(3, 1, 1).to(tensor.dtype)

    def extra_repr(self) -> str:
        return f'p={self.p}'


class ToNormalizedTensor(torch.nn.Module):
    """uint8 image tensor ``[C, H, W]`` -> normalised float32, in one pass.

    Same result as ``ToDtype(float32, scale=True)`` then ``Normalize(mean, std)``, but folds the 1/255
    scale into the normalisation: about half the time per image in the loader workers.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self._shift = torch.tensor(self.mean).view(-1, 1, 1) * 255.0
        self._scale = 1.0 / (torch.tensor(self.std).view(-1, 1, 1) * 255.0)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            raise TypeError(f'ToNormalizedTensor expects a uint8 image tensor, got {img.dtype}')
        return img.as_subclass(torch.Tensor).to(torch.float32).sub_(self._shift).mul_(self._scale)

    def extra_repr(self) -> str:
        return f'mean={self.mean}, std={self.std}'


def _as_list(transforms: Union[None, str, Sequence[str]]) -> List[str]:
    if transforms is None:
        return []
    if isinstance(transforms, str):
        transforms = [transforms]
    names = [t.lower() for t in transforms]
    unknown = [t for t in names if t not in AVAILABLE_TRANSFORMS]
    if unknown:
        raise ValueError(f'unknown transform(s) {", ".join(map(repr, unknown))}; '
                         f'valid names: {", ".join(AVAILABLE_TRANSFORMS)}')
    return names


def build_transforms(height: int, width: int, transforms: Union[None, str, Sequence[str]] = 'random_flip',
                     norm_mean: Optional[Sequence[float]] = None, norm_std: Optional[Sequence[float]] = None,
                     **kwargs: Any) -> Tuple[v2.Compose, v2.Compose]:
    """Build ``(transform_tr, transform_te)`` for PIL images; both end with a normalised float tensor."""
    if height <= 0 or width <= 0:
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    names = _as_list(transforms)
    norm_mean = list(IMAGENET_MEAN if norm_mean is None else norm_mean)
    norm_std = list(IMAGENET_STD if norm_std is None else norm_std)
    if len(norm_mean) != 3 or len(norm_std) != 3 or any(s <= 0 for s in norm_std):
        raise ValueError(f'norm_mean/norm_std need 3 values each (std > 0), got {norm_mean} / {norm_std}')
    normalize = ToNormalizedTensor(norm_mean, norm_std)

    # random_crop resizes to (height, width) itself (enlarged when it crops): a Resize before it would
    # resize every training image twice and crop from an already shrunk copy.
    train: list = [RandomTranslateCrop(height, width) if 'random_crop' in names
                   else v2.Resize((height, width), antialias=True)]
    if 'random_flip' in names:
        train.append(v2.RandomHorizontalFlip())
    if 'color_jitter' in names:
        train.append(v2.ColorJitter(brightness=0.2, contrast=0.15, saturation=0, hue=0))
    train.append(v2.ToImage())
    if 'random_patch' in names:
        train.append(RandomPatch())
    train.append(normalize)
    if 'random_erase' in names:
        # Erased pixels get random values, as in the random-erasing paper (mean-valued in old Torchreid).
        train.append(v2.RandomErasing(p=0.5, value='random'))
    logger.info('Training transforms: %s', ', '.join(type(t).__name__ for t in train))

    test = [v2.Resize((height, width), antialias=True), v2.ToImage(), normalize]
    return v2.Compose(train), v2.Compose(test)
