"""Engines: the training / evaluation loop (Torchreid's ``Engine`` template and its image and video subclasses), the
options it runs with and the checkpointer it saves and resumes through."""
from .checkpointer import Checkpointer
from .engine import Engine, NonFiniteLossError
from .ensemble import FeatureEnsemble
from .metric import ImageMetricEngine, use_margin_classifier
from .options import EvalOptions, TrainOptions
from .softmax import ImageSoftmaxEngine
from .triplet import ImageTripletEngine
from .video import VideoSoftmaxEngine, VideoTripletEngine

__all__ = ['Engine', 'NonFiniteLossError', 'EvalOptions', 'TrainOptions', 'Checkpointer', 'ImageSoftmaxEngine',
           'ImageTripletEngine', 'ImageMetricEngine', 'use_margin_classifier', 'FeatureEnsemble',
           'VideoSoftmaxEngine', 'VideoTripletEngine']
