"""``FeatureExtractor``: features from a trained ReID model for images given in any common form."""
import logging
import os
import os.path as osp

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .model_utils import count_num_param, resolve_device
from .tools import read_image

logger = logging.getLogger(__name__)

__all__ = ['FeatureExtractor']

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _test_transform(height, width, mean, std):
    """The data manager's test transform, so features match the engine's extraction exactly."""
    from torchreid.data.transforms import build_transforms

    _, transform_te = build_transforms(height, width, transforms=None, norm_mean=mean, norm_std=std)
    return transform_te


class FeatureExtractor:
    """Extract features with a ReID model.

    Args:
        model_name (str): a name known to ``torchreid.models.build_model`` (ignored when ``model`` is given).
        model_path (str): weights loaded with ``torchreid.models.load_pretrained_weights``.
        image_size (tuple): ``(height, width)`` the images are resized to.
        pixel_mean, pixel_std (list): normalisation (ImageNet by default).
        pixel_norm (bool): normalise pixels (False: only resize and scale to [0, 1]).
        device (str or torch.device): None picks CUDA when available (see ``resolve_device``).
        verbose (bool): log the model summary.
        model (nn.Module): a ready model to use instead of building ``model_name``.
        batch_size (int): images per forward pass.
        num_classes (int): classifier width of the built model (unused at inference).
        pretrained (bool): ImageNet initialisation of the built model; default: only when no
            ``model_path`` is given (as Torchreid).

    ``extractor(input)`` accepts a path, a PIL image, an ``HxWx3`` uint8 RGB array, a list of those, or a
    tensor already preprocessed (``[B, 3, H, W]`` or ``[3, H, W]``); it returns a CPU tensor ``[N, D]``.

    Example::

        extractor = FeatureExtractor(model_name='osnet_x1_0', model_path='model.pth.tar', device='cuda')
        features = extractor(['a.jpg', 'b.jpg'])
    """

    def __init__(
        self,
        model_name='',
        model_path='',
        image_size=(256, 128),
        pixel_mean=IMAGENET_MEAN,
        pixel_std=IMAGENET_STD,
        pixel_norm=True,
        device=None,
        verbose=True,
        model=None,
        batch_size=64,
        num_classes=1,
        pretrained=None,
    ):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f'FeatureExtractor: batch_size must be a positive int, got {batch_size!r}')
        if len(image_size) != 2:
            raise ValueError(f'FeatureExtractor: image_size must be (height, width), got {image_size!r}')
        if model_path and not osp.isfile(model_path):
            raise FileNotFoundError(f'FeatureExtractor: model_path "{model_path}" is not a file')
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))

        if model is not None:
            if not isinstance(model, nn.Module):
                raise TypeError(f'FeatureExtractor: model must be an nn.Module, got {type(model).__name__}')
        else:
            if not model_name:
                raise ValueError('FeatureExtractor: give model_name (a registered model) or model (an nn.Module)')
            from torchreid.models import build_model

            if pretrained is None:
                pretrained = not model_path
            model = build_model(model_name, num_classes=num_classes, pretrained=pretrained)
        if model_path:
            from torchreid.models import load_pretrained_weights

            load_pretrained_weights(model, model_path)
        self.model = model.to(self.device).eval()
        if verbose:
            logger.info('FeatureExtractor: %s, %s test parameters, input %dx%d, device %s',
                        model_name or type(model).__name__, f'{count_num_param(self.model):,}',
                        self.image_size[0], self.image_size[1], self.device)

        mean, std = (list(pixel_mean), list(pixel_std)) if pixel_norm else ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
        self.preprocess = _test_transform(self.image_size[0], self.image_size[1], mean, std)

    # -- input conversion ------------------------------------------------------------------------------

    @staticmethod
    def _to_pil(item, index):
        if isinstance(item, (str, os.PathLike)):
            return read_image(os.fspath(item))
        if isinstance(item, Image.Image):
            return item.convert('RGB')
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] != 3):
                raise ValueError(
                    f'FeatureExtractor: input[{index}] is an array of shape {item.shape} and dtype {item.dtype}; '
                    'expected HxWx3 uint8 RGB (or HxW uint8 grayscale)'
                )
            return Image.fromarray(item).convert('RGB')
        raise TypeError(
            f'FeatureExtractor: input[{index}] has unsupported type {type(item).__name__}; expected a path, '
            'a PIL image or a numpy array (or pass one preprocessed torch tensor [B, 3, H, W])'
        )

    def _batches(self, input):
        """Yield preprocessed CPU batches ``[b, 3, H, W]``; images are decoded one batch at a time."""
        if isinstance(input, torch.Tensor):
            if input.dim() == 3:
                input = input.unsqueeze(0)
            if input.dim() != 4 or input.size(1) != 3:
                raise ValueError(
                    f'FeatureExtractor: a tensor input must be [B, 3, H, W] or [3, H, W], got {tuple(input.shape)}'
                )
            for start in range(0, input.size(0), self.batch_size):
                yield input[start:start + self.batch_size]
            return
        if isinstance(input, (str, os.PathLike, Image.Image, np.ndarray)):
            input = [input]
        if not isinstance(input, (list, tuple)):
            raise TypeError(
                f'FeatureExtractor: unsupported input type {type(input).__name__}; expected a path, PIL image, '
                'numpy array, a list of those, or a torch tensor'
            )
        for start in range(0, len(input), self.batch_size):
            chunk = input[start:start + self.batch_size]
            yield torch.stack([self.preprocess(self._to_pil(item, start + i)) for i, item in enumerate(chunk)])

    def __call__(self, input):
        outputs = []
        with torch.no_grad():
            for batch in self._batches(input):
                features = self.model(batch.to(self.device, dtype=torch.float32))
                if not isinstance(features, torch.Tensor):
                    raise TypeError(
                        f'FeatureExtractor: the model returned {type(features).__name__} in eval mode; '
                        'expected a feature tensor [B, D]'
                    )
                outputs.append(features.reshape(features.size(0), -1).float().cpu())
        if not outputs:
            feature_dim = getattr(self.model, 'feature_dim', None)
            if feature_dim is None:
                raise ValueError('FeatureExtractor: empty input and the model declares no feature_dim')
            return torch.empty((0, int(feature_dim)))
        return torch.cat(outputs, dim=0)
