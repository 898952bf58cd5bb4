"""Engines: the training / evaluation loop (Torchreid's ``Engine`` template and its image subclasses)."""
from .engine import Engine, EvalOptions
from .softmax import ImageSoftmaxEngine
from .triplet import ImageTripletEngine

__all__ = ['Engine', 'EvalOptions', 'ImageSoftmaxEngine', 'ImageTripletEngine']
