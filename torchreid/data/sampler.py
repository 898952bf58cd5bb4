"""Torchreid's module name for the training samplers (``torchreid.data.sampler``); they live in
:mod:`torchreid.data.samplers`, this module re-exports Torchreid's names so code importing them runs."""
from torch.utils.data import Sampler

from .samplers import (AVAI_SAMPLERS, RandomDatasetSampler, RandomDomainSampler, RandomIdentitySampler,
                       RandomSampler, SequentialSampler, build_train_sampler)

__all__ = ['AVAI_SAMPLERS', 'Sampler', 'RandomSampler', 'SequentialSampler', 'RandomIdentitySampler',
           'RandomDomainSampler', 'RandomDatasetSampler', 'build_train_sampler']
