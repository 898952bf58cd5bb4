"""Models: a registry of ReID networks, each a backbone composed with one shared head.

    >>> import torchreid
    >>> model = torchreid.models.build_model('osnet_x1_0', num_classes=751, loss='softmax', pretrained=False)
    >>> torchreid.models.list_models()[:3]
    ['densenet121', 'mobilenetv2_x1_0', 'mobilenetv2_x1_4']

Train mode returns logits (loss 'softmax') or ``(logits, features)`` (loss 'triplet'); eval mode returns
features ``[B, model.feature_dim]``. See :mod:`torchreid.models.head` for the head's options and
:mod:`torchreid.models.weights` for where pretrained weights come from.
"""
from .registry import (SUPPORTED_LOSSES, UnknownModelError, build_model, list_models, register_model,
                       show_avai_models)
from .registry import ModelSpec, describe_model
from .registry import is_model, register_model_family
from .from_checkpoint import (CheckpointError, build_model_from_checkpoint, checkpoint_input_size,
                              checkpoint_normalization)
from .weights import (LoadReport, PretrainedWeightsError, PretrainedWeightsWarning, init_params,
                      load_pretrained_weights)
from .head import NEW_LAYER_NAMES, GeneralizedMeanPooling, HeadOptions, ReIDModel

# Importing the model modules registers their factories.
from .resnet import (resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d, resnext101_32x8d,
                     resnet50_fc512)
from .resnet_ibn_a import resnet50_ibn_a
from .mobilenetv2 import mobilenetv2_x1_0, mobilenetv2_x1_4
from .shufflenetv2 import shufflenet_v2_x0_5, shufflenet_v2_x1_0, shufflenet_v2_x1_5, shufflenet_v2_x2_0
from .densenet import densenet121, densenet169, densenet201, densenet161, densenet121_fc512
from .senet import se_resnet50, se_resnet50_fc512, se_resnet101, se_resnext50_32x4d, se_resnext101_32x4d
from .inception import inceptionv4, inceptionresnetv2
from .xception import xception
from .nasnet import nasnsetmobile, nasnetmobile
from .shufflenet import shufflenet
from .squeezenet import squeezenet1_0, squeezenet1_1, squeezenet1_0_fc512
from .osnet import osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25, osnet_ibn_x1_0
from .osnet_ain import osnet_ain_x1_0, osnet_ain_x0_75, osnet_ain_x0_5, osnet_ain_x0_25
from .resnet_ibn_b import resnet50_ibn_b
from .resnetmid import resnet50mid
from .pcb import pcb_p6, pcb_p4
from .mlfn import mlfn
from .hacnn import hacnn
from .mudeep import mudeep
from .timm_backbone import TIMM_PREFIX, TimmReIDModel  # registers the 'timm/<name>' family

__all__ = [
    'build_model', 'register_model', 'list_models', 'show_avai_models', 'load_pretrained_weights',
    'init_params', 'ReIDModel', 'HeadOptions', 'GeneralizedMeanPooling', 'NEW_LAYER_NAMES', 'LoadReport',
    'PretrainedWeightsWarning', 'PretrainedWeightsError', 'UnknownModelError', 'SUPPORTED_LOSSES',
    'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d', 'resnet50_fc512',
    'resnet50_ibn_a', 'mobilenetv2_x1_0', 'mobilenetv2_x1_4', 'shufflenet_v2_x0_5', 'shufflenet_v2_x1_0',
    'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0', 'densenet121', 'osnet_x1_0', 'osnet_x0_75', 'osnet_x0_5',
    'osnet_x0_25', 'osnet_ibn_x1_0', 'osnet_ain_x1_0',
    'osnet_ain_x0_75', 'osnet_ain_x0_5', 'osnet_ain_x0_25', 'resnet50_ibn_b', 'resnet50mid', 'pcb_p6', 'pcb_p4',
    'mlfn', 'hacnn', 'mudeep',
    'resnext101_32x8d', 'densenet169', 'densenet201', 'densenet161', 'densenet121_fc512', 'se_resnet50',
    'se_resnet50_fc512', 'se_resnet101', 'se_resnext50_32x4d', 'se_resnext101_32x4d', 'inceptionv4',
    'inceptionresnetv2', 'xception', 'nasnsetmobile', 'nasnetmobile', 'shufflenet', 'squeezenet1_0',
    'squeezenet1_1', 'squeezenet1_0_fc512',
    'ModelSpec', 'describe_model', 'build_model_from_checkpoint', 'checkpoint_input_size',
    'checkpoint_normalization', 'CheckpointError',
    'is_model', 'register_model_family', 'TIMM_PREFIX', 'TimmReIDModel',
]
