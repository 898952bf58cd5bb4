"""Dataset registries: ``init_image_dataset(name, **kwargs)`` / ``init_video_dataset(name, **kwargs)`` build a
registered dataset by name (Torchreid's names)."""
from typing import Any, Callable, Dict, List

from .dataset import Dataset, ImageDataset
from .image import (CUHK01, CUHK02, CUHK03, CUHKSYSU, GRID, MSMT17, PRID, VIPeR, DukeMTMCreID, Market1501, SenseReID,
                    Soccernetv3, Soccernetv3Challenge, Soccernetv3Test, University1652, iLIDS)
from .video import PRID2011, DukeMTMCVidReID, Mars, VideoDataset, iLIDSVID

__all__ = ['register_image_dataset', 'init_image_dataset', 'list_image_datasets', 'register_video_dataset',
           'init_video_dataset', 'list_video_datasets']

_IMAGE_DATASETS: Dict[str, Callable[..., ImageDataset]] = {
    'market1501': Market1501,
    'cuhk03': CUHK03,
    'dukemtmcreid': DukeMTMCreID,
    'msmt17': MSMT17,
    'viper': VIPeR,
    'grid': GRID,
    'cuhk01': CUHK01,
    'ilids': iLIDS,
    'sensereid': SenseReID,
    'prid': PRID,
    'cuhk02': CUHK02,
    'university1652': University1652,
    'cuhksysu': CUHKSYSU,
    'soccernetv3': Soccernetv3,
    'soccernetv3_test': Soccernetv3Test,
    'soccernetv3_challenge': Soccernetv3Challenge,
}

_VIDEO_DATASETS: Dict[str, Callable[..., VideoDataset]] = {
    'mars': Mars,
    'ilidsvid': iLIDSVID,
    'prid2011': PRID2011,
    'dukemtmcvidreid': DukeMTMCVidReID,
}


def _register(registry: Dict[str, Callable[..., Dataset]], kind: str, name: str,
              dataset: Callable[..., Dataset]) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f'dataset name must be a non-empty string, got {name!r}')
    if not callable(dataset):
        raise TypeError(f'{kind} dataset {name!r} must be a class or callable, got {type(dataset).__name__}')
    current = registry.get(name)
    if current is not None and current is not dataset:
        # A silent override would change which data an existing config trains on.
        raise ValueError(f'a {kind} dataset named {name!r} is already registered ({current!r}); '
                         f'known names: {", ".join(sorted(registry))}')
    registry[name] = dataset


def _init(registry: Dict[str, Callable[..., Dataset]], kind: str, name: str, kwargs: Dict[str, Any]) -> Dataset:
    if name not in registry:
        other = _VIDEO_DATASETS if registry is _IMAGE_DATASETS else _IMAGE_DATASETS
        hint = f' ({name!r} is {"a video" if kind == "image" else "an image"} dataset)' if name in other else ''
        raise ValueError(f'unknown {kind} dataset {name!r}{hint}; known names: {", ".join(sorted(registry))}')
    return registry[name](**kwargs)


def list_image_datasets() -> List[str]:
    """The registered image dataset names, sorted."""
    return sorted(_IMAGE_DATASETS)


def list_video_datasets() -> List[str]:
    """The registered video dataset names, sorted."""
    return sorted(_VIDEO_DATASETS)


def register_image_dataset(name: str, dataset: Callable[..., ImageDataset]) -> None:
    """Register ``dataset`` (a class or factory taking Torchreid's dataset kwargs) under ``name``.

    Re-registering a name with a different object is an error.
    """
    _register(_IMAGE_DATASETS, 'image', name, dataset)


def register_video_dataset(name: str, dataset: Callable[..., VideoDataset]) -> None:
    """Register a video ``dataset`` (class or factory) under ``name``; same rules as the image registry."""
    _register(_VIDEO_DATASETS, 'video', name, dataset)


def init_image_dataset(name: str, **kwargs: Any) -> ImageDataset:
    """Build the image dataset registered as ``name``; an unknown name lists the known ones.

    ``kwargs`` go to the dataset's constructor: a keyword it neither declares nor lists in
    ``SHARED_DATASET_OPTIONS`` raises ``TypeError`` (with a "did you mean" suggestion).
    """
    return _init(_IMAGE_DATASETS, 'image', name, kwargs)


def init_video_dataset(name: str, **kwargs: Any) -> VideoDataset:
    """Build the video dataset registered as ``name`` (kwargs as :func:`init_image_dataset`, plus ``seq_len`` and
    ``sample_method``)."""
    return _init(_VIDEO_DATASETS, 'video', name, kwargs)
