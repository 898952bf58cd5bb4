"""OSNet-AIN (Zhou et al., "Learning Generalisable Omni-Scale Representations for Person Re-Identification",
TPAMI'21): OSNet with instance normalisation placed where the paper's architecture search put it, for
cross-domain generalisation.

Written here from the paper's description, reusing this package's OSNet blocks:

* the stem normalises with InstanceNorm;
* "IN-in" blocks normalise the expanded residual branch with InstanceNorm instead of BatchNorm (before the
  residual sum), so style statistics are removed from what the block adds while the identity path keeps
  them; the gated multi-stream aggregation (the attention-style unified aggregation gate) is unchanged;
* placement per stage: conv2 [IN, IN], conv3 [plain, IN], conv4 [IN, plain].

No torchvision weights exist: ``pretrained=True`` looks for ``osnet_ain_x1_0_imagenet.pth`` locally.
"""
from typing import Any, Dict, List

from .head import ReIDModel
from .osnet import build_osnet
from .registry import register_model

__all__ = ['osnet_ain_x1_0', 'AIN_BLOCK_OPTIONS']

_IN = {'instance_norm_branch': True}
#: kwargs of each OS block, per stage (conv2, conv3, conv4)
AIN_BLOCK_OPTIONS: List[List[Dict[str, Any]]] = [[_IN, _IN], [{}, _IN], [_IN, {}]]


@register_model('osnet_ain_x1_0')
def osnet_ain_x1_0(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_osnet('osnet_ain_x1_0', num_classes, loss, pretrained, kwargs, width=1.0, stem_norm='in',
                       block_options=AIN_BLOCK_OPTIONS)
