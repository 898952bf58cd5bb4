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

__all__ = ['build_transforms', 'RandomTranslateCrop', 'Random2DTranslation', 'RandomPatch', 'ToNormalizedTensor',
           'AVAILABLE_TRANSFORMS', 'IMAGENET_MEAN', 'IMAGENET_STD']

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


class RandomPatch(torch.nn.Module):
    """Paste a patch cut from an earlier image onto this one (occlusion-like augmentation).

    Once the pool holds ``min_sample_size`` patches, with probability ``prob_happen`` a pooled patch,
    optionally flipped, is pasted at a random place; then a random patch of the input joins the pool
    (up to ``pool_capacity``, oldest dropped first). Input: a uint8 or float tensor ``[C, H, W]`` (use after
    ``ToImage``). The pool lives in each DataLoader worker.
    """

    def __init__(self, prob_happen: float = 0.5, pool_capacity: int = 50000, min_sample_size: int = 100,
                 patch_min_area: float = 0.01, patch_max_area: float = 0.5, patch_min_ratio: float = 0.1,
                 prob_flip_leftright: float = 0.5):
        super().__init__()
        if not 0.0 < patch_min_area <= patch_max_area < 1.0:
            raise ValueError('need 0 < patch_min_area <= patch_max_area < 1')
        if pool_capacity < 1 or min_sample_size < 1:
            raise ValueError('pool_capacity and min_sample_size must be >= 1')
        self.prob_happen = prob_happen
        self.pool_capacity = int(pool_capacity)
        self.min_sample_size = int(min_sample_size)
        self.patch_min_area = patch_min_area
        self.patch_max_area = patch_max_area
        self.patch_min_ratio = patch_min_ratio
        self.prob_flip_leftright = prob_flip_leftright
        self.patchpool: Deque[torch.Tensor] = collections.deque(maxlen=self.pool_capacity)

    def _patch_size(self, h: int, w: int) -> Optional[Tuple[int, int]]:
        for _ in range(100):
            area = h * w * float(torch.empty(1).uniform_(self.patch_min_area, self.patch_max_area))
            ratio = float(torch.empty(1).uniform_(self.patch_min_ratio, 1.0 / self.patch_min_ratio))
            ph, pw = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < ph < h and 0 < pw < w:
                return ph, pw
        return None

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise TypeError('RandomPatch expects a [C, H, W] tensor; place it after ToImage')
        h, w = img.shape[-2:]
        out = img
        # Paste from the pool first, then add a patch of this image: never paste an image onto itself.
        if len(self.patchpool) >= self.min_sample_size and torch.rand(1).item() <= self.prob_happen:
            patch = self.patchpool[int(torch.randint(0, len(self.patchpool), (1,)))]
            if torch.rand(1).item() < self.prob_flip_leftright:
                patch = patch.flip(-1)
            ph, pw = patch.shape[-2:]
            if ph <= h and pw <= w:  # a patch from a larger image may not fit this one
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
                f'min_sample_size={self.min_sample_size}')


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
