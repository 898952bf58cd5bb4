"""Datasets: the record-list base classes, the registry and the image datasets (loaded on first access)."""
from torchreid._lazy import lazy_exports

_EXPORTS = {
    'Dataset': '.dataset', 'ImageDataset': '.dataset', 'UnreadableImageError': '.dataset', 'read_image': '.dataset',
    'register_image_dataset': '.registry', 'init_image_dataset': '.registry', 'list_image_datasets': '.registry',
    'Market1501': '.image', 'Soccernetv3': '.image', 'Soccernetv3Test': '.image', 'Soccernetv3Challenge': '.image',
    'SoccerNetDataError': '.image', 'GroundTruthMismatchError': '.image',
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
