"""Data: datasets (records + metadata), transforms, samplers and the ImageDataManager.

Imports torch, torchvision, PIL, numpy and :mod:`torchreid.soccernet_format` (never engine, models or metrics).
"""
from .datamanager import DataManager, ImageDataManager
from .datasets import (Dataset, ImageDataset, UnreadableImageError, init_image_dataset, list_image_datasets,
                       register_image_dataset)
from .samplers import AVAILABLE_SAMPLERS, RandomActionSampler, RandomIdentitySampler, build_train_sampler
from .transforms import AVAILABLE_TRANSFORMS, build_transforms

__all__ = ['DataManager', 'ImageDataManager', 'Dataset', 'ImageDataset', 'UnreadableImageError',
           'init_image_dataset', 'list_image_datasets', 'register_image_dataset', 'AVAILABLE_SAMPLERS',
           'RandomActionSampler', 'RandomIdentitySampler', 'build_train_sampler', 'AVAILABLE_TRANSFORMS',
           'build_transforms']
