"""Engine for classification training with (label-smoothed) cross entropy."""
from typing import Any, Dict, Union

import torch
import torch.nn as nn

from torchreid import metrics
from torchreid.losses import CrossEntropyLoss

from .engine import Engine

__all__ = ['ImageSoftmaxEngine', 'accuracy']


def accuracy(logits: Any, targets: torch.Tensor) -> float:
    """Top-1 accuracy (a float in [0, 1]) of ``logits`` (or the first of several heads), for the logs."""
    return metrics.accuracy(logits, targets)[0].item() / 100.0


class ImageSoftmaxEngine(Engine):
    """Softmax (identity classification) engine.

    Args:
        datamanager: an ``ImageDataManager``.
        model (nn.Module): returns logits in train mode and features in eval mode.
        optimizer: a torch optimizer.
        scheduler: an LR scheduler stepped once per epoch (optional).
        device: ``'auto'`` (the default: CUDA when available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``.
        label_smooth (bool): label smoothing in the cross entropy.
        **kwargs: ``use_gpu`` (deprecated), ``mixed_precision``, ``channels_last``, ``grad_clip``,
            ``progress``, ``tensorboard`` (see :class:`Engine`).

    Examples::

        datamanager = torchreid.data.ImageDataManager(root='datasets', sources='soccernetv3')
        model = torchreid.models.build_model('resnet50_fc512', datamanager.num_train_pids, loss='softmax')
        optimizer = torchreid.optim.build_optimizer(model, optim='adam', lr=3e-4)
        engine = torchreid.engine.ImageSoftmaxEngine(datamanager, model, optimizer)
        engine.run(save_dir='log/resnet50', max_epoch=60, export_ranking_results=True)
    """

    def __init__(self, datamanager: Any, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                 device: Union[None, str, torch.device] = 'auto', label_smooth: bool = True, **kwargs: Any):
        super().__init__(datamanager, device=device, **kwargs)
        self.register_model('model', model, optimizer, scheduler)  # also self.model / optimizer / scheduler
        self.criterion = CrossEntropyLoss(num_classes=self.datamanager.num_train_pids, label_smooth=label_smooth)

    def forward_backward(self, data: Dict[str, Any]) -> Dict[str, float]:
        outputs, pids = self.forward_train_batch(data)
        # The loss is computed outside autocast, in float32 (the criterion casts the logits).
        loss = self.compute_loss(self.criterion, outputs, pids)
        self.backward_and_step(loss)
        return {'loss': loss.item(), 'acc': accuracy(outputs, pids)}
