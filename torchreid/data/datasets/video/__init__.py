"""Video ReID datasets (tracklets): the VideoDataset base and Torchreid's public video datasets."""
from .dukemtmcvidreid import DukeMTMCVidReID
from .ilidsvid import iLIDSVID
from .mars import Mars
from .prid2011 import PRID2011
from .video_dataset import SAMPLE_METHODS, VideoDataset, sample_frame_indices

__all__ = ['VideoDataset', 'SAMPLE_METHODS', 'sample_frame_indices', 'Mars', 'iLIDSVID', 'PRID2011',
           'DukeMTMCVidReID']
