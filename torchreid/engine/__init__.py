"""Engines: the training / evaluation loop (Torchreid's ``Engine`` template and its image subclasses), the
options it runs with and the checkpointer it saves and resumes through."""
from .checkpointer import Checkpointer
from .engine import Engine
from .options import EvalOptions, TrainOptions
from .softmax import ImageSoftmaxEngine
from .triplet import ImageTripletEngine

__all__ = ['Engine', 'EvalOptions', 'TrainOptions', 'Checkpointer', 'ImageSoftmaxEngine', 'ImageTripletEngine']
