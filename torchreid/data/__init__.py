"""Data: datasets (records + metadata), transforms, samplers and the image / video data managers.

Imports torch, torchvision, PIL, numpy and :mod:`torchreid.soccernet_format` (never engine, models or metrics).
"""
from .datamanager import DataManager, ImageDataManager, VideoDataManager
from .datasets import (Dataset, ImageDataset, UnreadableImageError, VideoDataset, init_image_dataset,
                       init_video_dataset, list_image_datasets, list_video_datasets, register_image_dataset,
                       register_video_dataset)
from .samplers import (AVAILABLE_SAMPLERS, RandomActionSampler, RandomDatasetSampler, RandomDomainSampler,
                       RandomIdentitySampler, build_train_sampler)
from .transforms import AVAILABLE_TRANSFORMS, build_transforms

__all__ = ['DataManager', 'ImageDataManager', 'VideoDataManager', 'Dataset', 'ImageDataset', 'VideoDataset',
           'UnreadableImageError', 'init_image_dataset', 'init_video_dataset', 'list_image_datasets',
           'list_video_datasets', 'register_image_dataset', 'register_video_dataset', 'AVAILABLE_SAMPLERS',
           'RandomActionSampler', 'RandomIdentitySampler', 'RandomDomainSampler', 'RandomDatasetSampler',
           'build_train_sampler', 'AVAILABLE_TRANSFORMS',
           'build_transforms']
