"""Engine for metric learning: batch-hard triplet loss plus (optionally) cross entropy."""
import logging
from typing import Any, Dict, Union

import torch
import torch.nn as nn

from torchreid.losses import CrossEntropyLoss, TripletLoss

from .engine import Engine
from .softmax import accuracy

__all__ = ['ImageTripletEngine']

logger = logging.getLogger(__name__)


class ImageTripletEngine(Engine):
    """Triplet + softmax engine.

    Args:
        datamanager: an ``ImageDataManager`` (use a P x K sampler, e.g. ``RandomIdentitySampler``).
        model (nn.Module): returns ``(logits, features)`` in train mode (built with ``loss='triplet'``).
        optimizer: a torch optimizer.
        margin (float): triplet margin.
        weight_t (float): weight of the triplet loss.
        weight_x (float): weight of the cross-entropy loss.
        scheduler: an LR scheduler stepped once per epoch (optional).
        device: ``'auto'`` (the default: CUDA when available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``.
        label_smooth (bool): label smoothing in the cross entropy.
        action_aware (bool): mine triplets only inside one action (SoccerNet identities are per action);
            the batch's ``camid`` (= action index) is given to the triplet loss.
        **kwargs: ``use_gpu`` (deprecated), ``mixed_precision``, ``channels_last``, ``grad_clip``,
            ``progress``, ``tensorboard`` (see :class:`Engine`).
    """

    def __init__(self, datamanager: Any, model: nn.Module, optimizer: torch.optim.Optimizer, margin: float = 0.3,
                 weight_t: float = 1, weight_x: float = 1, scheduler: Any = None,
                 device: Union[None, str, torch.device] = 'auto', label_smooth: bool = True, action_aware: bool = False,
                 **kwargs: Any):
        super().__init__(datamanager, device=device, **kwargs)
        if weight_t < 0 or weight_x < 0:
            raise ValueError(f'weight_t and weight_x must be >= 0, got {weight_t}, {weight_x}')
        if weight_t + weight_x <= 0:
            raise ValueError('weight_t + weight_x must be > 0 (nothing to train otherwise)')
        sampler = getattr(getattr(self.datamanager, 'train_loader', None), 'sampler', None)
        if weight_t > 0 and getattr(sampler, 'num_instances', 2) < 2:
            # One image per identity in a batch: no positive pair, so the triplet loss is exactly 0.
            raise ValueError(f'{type(sampler).__name__} draws num_instances={sampler.num_instances} image per '
                             'identity: the triplet loss needs at least 2 (a positive pair); use num_instances >= 2 '
                             'or weight_t=0')
        self.register_model('model', model, optimizer, scheduler)  # also self.model / optimizer / scheduler
        self.weight_t = weight_t
        self.weight_x = weight_x
        self.action_aware = bool(action_aware)
        self.criterion_t = TripletLoss(margin=margin, action_aware=action_aware)
        self.criterion_x = CrossEntropyLoss(num_classes=self.datamanager.num_train_pids, label_smooth=label_smooth)
        if self.weight_x == 0:
            self.ddp_find_unused_parameters = True  # the classifier gets no gradient: DDP must not wait for it
            # The classifier gets no gradient: its accuracy would be that of random weights (about 0).
            logger.info('weight_x=0: the identity classifier is not trained, so no training accuracy is reported')

    def forward_backward(self, data: Dict[str, Any]) -> Dict[str, float]:
        outputs, pids = self.forward_train_batch(data)
        if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
            raise TypeError('ImageTripletEngine: the model must return (logits, features) in train mode; '
                            "build it with loss='triplet'")
        logits, features = outputs
        loss = 0.0
        summary = {}
        if self.weight_t > 0:
            actions = data['camid'].to(self.device) if self.action_aware else None
            # gather_embeddings in a data-parallel run: mined over every rank's batch (a no-op otherwise)
            features_t, pids_t, actions = self.gather_for_loss(features, pids, actions)
            extra = {'actions': actions} if self.action_aware else {}
            loss_t = self.compute_loss(self.criterion_t, features_t, pids_t, **extra)
            loss = loss + self.weight_t * loss_t
            summary['loss_t'] = loss_t.item()
        if self.weight_x > 0:
            loss_x = self.compute_loss(self.criterion_x, logits, pids)
            loss = loss + self.weight_x * loss_x
            summary['loss_x'] = loss_x.item()
        self.backward_and_step(loss)
        summary['loss'] = loss.item()
        if self.weight_x > 0:
            summary['acc'] = accuracy(logits, pids)
        return summary
