"""Datasets: the record-list base classes, the registries, the image and the video datasets."""
from .dataset import Dataset, ImageDataset, UnreadableImageError, read_image
from .image import (CUHK01, CUHK02, CUHK03, CUHKSYSU, GRID, MSMT17, PRID, DatasetLayoutError, DukeMTMCreID,
                    GroundTruthMismatchError, Market1501, SenseReID, SoccerNetDataError, Soccernetv3,
                    Soccernetv3Challenge, Soccernetv3Test, SplitFileError, University1652, VIPeR, iLIDS)
from .registry import (init_image_dataset, init_video_dataset, list_image_datasets, list_video_datasets,
                       register_image_dataset, register_video_dataset)
from .video import PRID2011, DukeMTMCVidReID, Mars, VideoDataset, iLIDSVID

__all__ = ['Dataset', 'ImageDataset', 'VideoDataset', 'UnreadableImageError', 'read_image', 'register_image_dataset',
           'init_image_dataset', 'list_image_datasets', 'register_video_dataset', 'init_video_dataset',
           'list_video_datasets', 'Market1501', 'Soccernetv3', 'Soccernetv3Test', 'Soccernetv3Challenge',
           'SoccerNetDataError', 'GroundTruthMismatchError', 'CUHK01', 'CUHK02', 'CUHK03', 'CUHKSYSU', 'GRID',
           'MSMT17', 'PRID', 'DukeMTMCreID', 'SenseReID', 'University1652', 'VIPeR', 'iLIDS', 'Mars', 'iLIDSVID',
           'PRID2011', 'DukeMTMCVidReID', 'DatasetLayoutError', 'SplitFileError']
