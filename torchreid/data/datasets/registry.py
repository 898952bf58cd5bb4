"""Dataset registry: ``init_image_dataset(name, **kwargs)`` builds a registered dataset by name."""
from typing import Any, Dict, List, Type

from .dataset import ImageDataset
from .image import Market1501, Soccernetv3, Soccernetv3Challenge, Soccernetv3Test

_IMAGE_DATASETS: Dict[str, Type[ImageDataset]] = {
    'market1501': Market1501,
    'soccernetv3': Soccernetv3,
    'soccernetv3_test': Soccernetv3Test,
    'soccernetv3_challenge': Soccernetv3Challenge,
}


def list_image_datasets() -> List[str]:
    """The registered image dataset names, sorted."""
    return sorted(_IMAGE_DATASETS)


def register_image_dataset(name: str, dataset: Type[ImageDataset]) -> None:
    """Register ``dataset`` (a class or factory taking Torchreid's dataset kwargs) under ``name``.

    Re-registering a name with a different object is an error: a silent override would change which
    data an existing config trains on.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f'dataset name must be a non-empty string, got {name!r}')
    if not callable(dataset):
        raise TypeError(f'dataset {name!r} must be a class or callable, got {type(dataset).__name__}')
    current = _IMAGE_DATASETS.get(name)
    if current is not None and current is not dataset:
        raise ValueError(f'an image dataset named {name!r} is already registered ({current!r}); '
                         f'known names: {", ".join(list_image_datasets())}')
    _IMAGE_DATASETS[name] = dataset


def init_image_dataset(name: str, **kwargs: Any) -> ImageDataset:
    """Build the image dataset registered as ``name``; an unknown name lists the known ones.

    ``kwargs`` go to the dataset's constructor: a keyword it neither declares nor lists in
    ``SHARED_DATASET_OPTIONS`` raises ``TypeError`` (with a "did you mean" suggestion).
    """
    if name not in _IMAGE_DATASETS:
        raise ValueError(f'unknown image dataset {name!r}; known names: {", ".join(list_image_datasets())}')
    return _IMAGE_DATASETS[name](**kwargs)
