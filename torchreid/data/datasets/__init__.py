"""Datasets: the record-list base classes, the registry and the image datasets."""
from .dataset import Dataset, ImageDataset, UnreadableImageError, read_image
from .image import (GroundTruthMismatchError, Market1501, SoccerNetDataError, Soccernetv3, Soccernetv3Challenge,
                    Soccernetv3Test)
from .registry import init_image_dataset, list_image_datasets, register_image_dataset

__all__ = ['Dataset', 'ImageDataset', 'UnreadableImageError', 'read_image', 'register_image_dataset',
           'init_image_dataset', 'list_image_datasets', 'Market1501', 'Soccernetv3', 'Soccernetv3Test',
           'Soccernetv3Challenge', 'SoccerNetDataError', 'GroundTruthMismatchError']
