"""``FeatureExtractor``: features from a trained ReID model for images given in any common form."""
import logging
import os
import os.path as osp
from typing import Iterator, Optional, Sequence, Union

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

#: One image as ``FeatureExtractor`` accepts it: a path, a PIL image or an ``HxWx3`` uint8 RGB array.
ImageInput = Union[str, 'os.PathLike[str]', Image.Image, np.ndarray]


def _test_transform(height: int, width: int, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """The data manager's test transform, so features match the engine's extraction exactly."""
    from torchreid.data.transforms import build_transforms

    _, transform_te = build_transforms(height, width, transforms=None, norm_mean=mean, norm_std=std)
    return transform_te


class FeatureExtractor:
    """Extract features with a ReID model.

    Args:
        model_name (str): a name known to ``torchreid.models.build_model`` (ignored when ``model`` is given).
        model_path (str): weights loaded with ``torchreid.models.load_pretrained_weights``; every tensor
            outside the classifier must load (otherwise a ValueError names what is missing).
        allow_unsafe_pickle (bool): read a ``model_path`` that needs full unpickling (legacy Torchreid
            checkpoints; unpickling can run code from the file: only for files you trust).
        image_size (tuple): ``(height, width)`` the images are resized to.
        pixel_mean, pixel_std (list): normalisation (ImageNet by default).
        pixel_norm (bool): normalise pixels (False: only resize and scale to [0, 1]).
        device (str or torch.device): ``'auto'`` (the default; also None) picks CUDA when available (see
            ``resolve_device``); or ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``.
        verbose (bool): log the model summary.
        model (nn.Module): a ready model to use instead of building ``model_name``.
        batch_size (int): images per forward pass.
        num_classes (int): classifier width of the built model (unused at inference).
        pretrained (bool): ImageNet initialisation of the built model; default: only when no
            ``model_path`` is given (as Torchreid).
        flip (bool): flip test-time averaging: each image's features averaged with those of its horizontal
            mirror (before any normalisation), as the engine's ``flip_test``.

    ``extractor(input)`` accepts a path, a PIL image, an ``HxWx3`` uint8 RGB array, a list of those, or a
    tensor already preprocessed (``[B, 3, H, W]`` or ``[3, H, W]``); it returns a CPU tensor ``[N, D]``.

    Example::

        extractor = FeatureExtractor(model_name='osnet_x1_0', model_path='model.pth.tar', device='cuda')
        features = extractor(['a.jpg', 'b.jpg'])

    A checkpoint that describes its model (written by the engine) needs nothing else:
    ``FeatureExtractor.from_checkpoint('log/model/model-best.pth.tar')``.
    """

    def __init__(
        self,
        model_name: str = '',
        model_path: Union[str, 'os.PathLike[str]'] = '',
        image_size: Sequence[int] = (256, 128),
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        pixel_norm: bool = True,
        device: Union[str, int, torch.device, None] = 'auto',
        verbose: bool = True,
        model: Optional[nn.Module] = None,
        batch_size: int = 64,
        num_classes: int = 1,
        pretrained: Optional[bool] = None,
        allow_unsafe_pickle: bool = False,
        flip: bool = False,
    ):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f'FeatureExtractor: batch_size must be a positive int, got {batch_size!r}')
        if len(image_size) != 2:
            raise ValueError(f'FeatureExtractor: image_size must be (height, width), got {image_size!r}')
        if model_path and not osp.isfile(model_path):
            raise FileNotFoundError(f'FeatureExtractor: model_path "{model_path}" is not a file')
        self.device = resolve_device(device)
        if self.device.type == 'cpu':
            from .cpu import tune_malloc

            tune_malloc()  # activation buffers stay mapped between batches: less page-fault time in extraction
        self.batch_size = int(batch_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.flip = bool(flip)

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

            report = load_pretrained_weights(model, model_path, allow_unsafe_pickle=allow_unsafe_pickle)
            if not report.complete:
                raise ValueError(f'FeatureExtractor: model_path "{model_path}" does not hold the weights of '
                                 f'{model_name or type(model).__name__} ({report}); its features would come from '
                                 f'a partly random network')
        self.model = model.to(self.device).eval()
        if verbose:
            logger.info('FeatureExtractor: %s, %s test parameters, input %dx%d, device %s',
                        model_name or type(model).__name__, f'{count_num_param(self.model):,}',
                        self.image_size[0], self.image_size[1], self.device)

        mean, std = (list(pixel_mean), list(pixel_std)) if pixel_norm else ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
        self.preprocess = _test_transform(self.image_size[0], self.image_size[1], mean, std)

    @classmethod
    def from_checkpoint(cls, path: Union[str, 'os.PathLike[str]'],
                        device: Union[str, int, torch.device, None] = 'auto', batch_size: int = 64,
                        verbose: bool = True, flip: bool = False) -> 'FeatureExtractor':
        """An extractor for the model a self-describing checkpoint records: its architecture and keywords
        (``model_spec``), weights (loaded strictly outside the classifier), input size (``input_size``) and
        normalisation (``normalization``).

        A checkpoint without ``input_size`` / ``normalization`` falls back to 256x128 / ImageNet statistics with
        a WARNING. One without ``model_spec`` raises ``torchreid.models.CheckpointError`` (a ValueError) saying
        to use ``FeatureExtractor(model_name=..., model_path=...)``; see
        :func:`torchreid.models.build_model_from_checkpoint` for the other errors. A checkpoint of a run that
        kept an EMA of its weights gives the EMA weights (those the run evaluated).
        """
        from torchreid.models import (build_model_from_checkpoint, checkpoint_input_size,
                                      checkpoint_normalization)

        from .checkpoint import load_checkpoint

        path = os.fspath(path)
        from torchreid.optim.ema import evaluation_checkpoint

        checkpoint = evaluation_checkpoint(load_checkpoint(path))
        model = build_model_from_checkpoint(checkpoint, device=device, source=path)
        image_size = checkpoint_input_size(checkpoint, source=path)
        if image_size is None:
            image_size = (256, 128)
            logger.warning('FeatureExtractor.from_checkpoint: "%s" records no input_size; using %dx%d', path,
                           *image_size)
        normalization = checkpoint_normalization(checkpoint, source=path)
        if normalization is None:
            normalization = {'mean': IMAGENET_MEAN, 'std': IMAGENET_STD}
            logger.warning('FeatureExtractor.from_checkpoint: "%s" records no normalization; using ImageNet '
                           'mean %s and std %s', path, IMAGENET_MEAN, IMAGENET_STD)
        return cls(model_name=model.model_spec.name if model.model_spec is not None else '', model=model,
                   image_size=image_size, pixel_mean=normalization['mean'], pixel_std=normalization['std'],
                   device=device, verbose=verbose, batch_size=batch_size, flip=flip)

    # -- input conversion ------------------------------------------------------------------------------

    @staticmethod
    def _to_pil(item: ImageInput, index: int) -> Image.Image:
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

    def _batches(self, input: Union[ImageInput, Sequence[ImageInput], torch.Tensor]) -> Iterator[torch.Tensor]:
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

    def __call__(self, input: Union[ImageInput, Sequence[ImageInput], torch.Tensor]) -> torch.Tensor:
        outputs = []
        with torch.no_grad():
            for batch in self._batches(input):
                batch = batch.to(self.device, dtype=torch.float32)
                features = self.model(batch)
                if self.flip and isinstance(features, torch.Tensor):
                    features = (features.float() + self.model(batch.flip(-1)).float()) / 2
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
