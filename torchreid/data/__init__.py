"""Data: datasets (records + metadata), transforms, samplers and the ImageDataManager.

Imports only torch, torchvision, PIL and numpy (never engine, models or metrics). Names load on first
access, so the synthetic generator and the format module run without importing torch.
"""
from torchreid._lazy import lazy_exports

_EXPORTS = {
    'DataManager': '.datamanager', 'ImageDataManager': '.datamanager',
    **{name: '.datasets' for name in ('Dataset', 'ImageDataset', 'UnreadableImageError', 'init_image_dataset',
                                      'list_image_datasets', 'register_image_dataset')},
    **{name: '.samplers' for name in ('AVAILABLE_SAMPLERS', 'RandomActionSampler', 'RandomIdentitySampler',
                                      'build_train_sampler')},
    'AVAILABLE_TRANSFORMS': '.transforms', 'build_transforms': '.transforms',
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
