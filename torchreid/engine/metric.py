"""Engine for metric learning with any combination of the registered losses (:mod:`torchreid.losses`).

The SoccerNet 2022-2023 winners trained with an in-batch contrastive loss (InfoNCE / supervised contrastive) on
action-grouped batches, some with a centroid loss beside a triplet and an identity loss, FastReID's recipes with
circle / CosFace / ArcFace margins. :class:`ImageMetricEngine` trains any weighted sum of them:

    loss = sum_i metric_weights[i] * metric_losses[i](features, pids, actions) + weight_x * CE(logits, pids)

* ``metric_losses``: names of :func:`torchreid.losses.build_loss` losses on the features (``'triplet'``,
  ``'supcon'`` / ``'infonce'``, ``'centroid'``, ``'circle'``), each built with its ``metric_options[name]``
  keywords; with ``action_aware`` every one of them gets the batch's actions (``camid``: the SoccerNet action
  index), so identities of other actions are neither positives nor negatives.
* the identity loss uses the model's classifier: a plain linear layer, or a CosFace / ArcFace head put in its
  place by :func:`use_margin_classifier` before the optimizer is built (the engine then adds the margin to the
  target logit; the head's weights are the model's ``classifier.*``, so they are checkpointed and restored
  with it).
* a loss with parameters (``supcon`` / ``infonce`` with ``learnable_scale=True``: CLIP's learnt logit scale) has
  them added to the optimizer as one more param group (no weight decay, scheduled like the others), and saved
  in every checkpoint under ``criterion_state`` (restored on resume, so resuming stays exact).
"""
import logging
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from torchreid.losses import ArcFace, CosFace, CrossEntropyLoss, build_loss

from .engine import Engine
from .softmax import accuracy

__all__ = ['ImageMetricEngine', 'use_margin_classifier', 'MARGIN_CLASSIFIERS', 'METRIC_LOSSES']

logger = logging.getLogger(__name__)

#: ``loss.classifier`` values: the model's own linear layer, or a margin head put in its place.
MARGIN_CLASSIFIERS = ('linear', 'cosface', 'arcface')
#: Losses on the features the engine knows how to call: ``loss(features, pids, actions=...)``.
METRIC_LOSSES = ('triplet', 'supcon', 'infonce', 'centroid', 'circle')


def use_margin_classifier(model: nn.Module, kind: str, num_classes: Optional[int] = None,
                          scale: Optional[float] = None, margin: Optional[float] = None) -> nn.Module:
    """Replace ``model.classifier`` by a CosFace / ArcFace head of the same size (``kind='linear'``: unchanged).

    Call it before building the optimizer (the new head's weights must be in it). ``scale`` / ``margin`` None
    keep the head's defaults. Returns the model.
    """
    if kind not in MARGIN_CLASSIFIERS:
        raise ValueError(f'use_margin_classifier: kind must be one of {MARGIN_CLASSIFIERS}, got {kind!r}')
    if kind == 'linear':
        return model
    old = getattr(model, 'classifier', None)
    if not isinstance(old, nn.Linear):
        raise TypeError(f'use_margin_classifier: the model needs a linear "classifier" to replace, got '
                        f'{type(old).__name__}')
    options = {k: v for k, v in (('scale', scale), ('margin', margin)) if v is not None}
    head = (CosFace if kind == 'cosface' else ArcFace)(old.in_features, num_classes or old.out_features, **options)
    model.classifier = head.to(old.weight.device)
    logger.info('Classifier: %r', head)
    return model


class ImageMetricEngine(Engine):
    """Weighted metric losses (+ optional identity loss, optionally with a margin head); see the module doc.

    Args:
        datamanager: an ``ImageDataManager`` (a P x K or per-action sampler: the losses need positives).
        model: returns ``(logits, features)`` in train mode (built with ``loss='triplet'``).
        optimizer: a torch optimizer over the model's parameters.
        scheduler: an lr scheduler stepped once per epoch (optional).
        metric_losses: loss names (``METRIC_LOSSES``), e.g. ``['infonce']`` or ``['triplet', 'centroid']``.
        metric_weights: one weight per loss (default 1 each).
        metric_options: ``{loss name: keywords of that loss}`` (e.g. ``{'infonce': {'temperature': 0.05}}``).
        weight_x: weight of the identity (cross-entropy) loss; 0 trains no classifier.
        label_smooth: label smoothing of the identity loss.
        action_aware: give every metric loss the batch's actions (``camid``).
        **kwargs: the :class:`Engine` keywords (``device``, ``mixed_precision``, ``grad_clip``...).
    """

    def __init__(self, datamanager: Any, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                 metric_losses: Sequence[str] = ('infonce',), metric_weights: Optional[Sequence[float]] = None,
                 metric_options: Optional[Mapping[str, Mapping[str, Any]]] = None, weight_x: float = 0.0,
                 label_smooth: bool = True, action_aware: bool = True,
                 device: Union[None, str, torch.device] = 'auto', **kwargs: Any):
        super().__init__(datamanager, device=device, **kwargs)
        names = [metric_losses] if isinstance(metric_losses, str) else list(metric_losses)
        unknown = [n for n in names if n not in METRIC_LOSSES]
        if unknown:
            raise ValueError(f'ImageMetricEngine: unknown metric loss(es) {unknown}; known: {METRIC_LOSSES}')
        if len(set(names)) != len(names):
            raise ValueError(f'ImageMetricEngine: metric_losses lists a loss twice: {names}')
        weights = [1.0] * len(names) if metric_weights is None or len(metric_weights) == 0 else \
            [float(w) for w in metric_weights]
        if len(weights) != len(names):
            raise ValueError(f'ImageMetricEngine: {len(weights)} metric_weights for {len(names)} metric_losses '
                             f'{names}')
        if any(w < 0 for w in weights) or weight_x < 0:
            raise ValueError(f'ImageMetricEngine: weights must be >= 0, got {weights} and weight_x={weight_x}')
        if sum(weights) + weight_x <= 0:
            raise ValueError('ImageMetricEngine: every loss weight is 0 (nothing to train)')
        options = {k: dict(v) for k, v in (metric_options or {}).items()}
        stray = sorted(set(options) - set(names))
        if stray:
            raise ValueError(f'ImageMetricEngine: metric_options for {stray}, which are not in metric_losses '
                             f'{names}')
        self.register_model('model', model, optimizer, scheduler)
        self.action_aware = bool(action_aware)
        self.weight_x = float(weight_x)
        self.metric_weights = dict(zip(names, weights))
        self.criteria = nn.ModuleDict({name: build_loss(name, **{'action_aware': self.action_aware,
                                                                 **options.get(name, {})})
                                       for name in names}).to(self.device)
        self.criterion_x = CrossEntropyLoss(num_classes=self.datamanager.num_train_pids, label_smooth=label_smooth)
        classifier = getattr(model, 'classifier', None)
        self.margin_head = classifier if isinstance(classifier, (CosFace, ArcFace)) else None
        self._add_criterion_params(optimizer, scheduler)

    def _add_criterion_params(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """The losses' own parameters (a learnt logit scale) join the optimizer as one group, no weight decay."""
        params = [p for p in self.criteria.parameters() if p.requires_grad]
        if not params or optimizer is None:
            return
        lr = max(group.get('initial_lr', group['lr']) for group in optimizer.param_groups)
        optimizer.add_param_group({'params': params, 'lr': lr, 'weight_decay': 0.0, 'initial_lr': lr})
        if scheduler is not None and hasattr(scheduler, 'base_lrs'):
            scheduler.base_lrs.append(lr)
            # the new group starts at the lr the schedule gives the others now
            factor = optimizer.param_groups[0]['lr'] / max(optimizer.param_groups[0].get('initial_lr', lr), 1e-30)
            optimizer.param_groups[-1]['lr'] = lr * factor
            if hasattr(scheduler, '_last_lr'):
                scheduler._last_lr = [g['lr'] for g in optimizer.param_groups]
        logger.info('ImageMetricEngine: %d loss parameter(s) added to the optimizer (lr %g, no weight decay)',
                    len(params), lr)

    # -- checkpoints: the losses' parameters travel with the model's --------------------------------------
    def _training_state(self, metric: Optional[float] = None, test_pending: bool = False) -> Dict[str, Any]:
        state = super()._training_state(metric, test_pending)
        state['criterion_state'] = {k: v.detach().cpu() for k, v in self.criteria.state_dict().items()}
        return state

    def resume(self, fpath: Any, restore_rng: bool = True) -> int:
        start_epoch = super().resume(fpath, restore_rng=restore_rng)
        if any(True for _ in self.criteria.parameters()):
            from torchreid.utils.checkpoint import load_checkpoint

            path = next(iter(fpath.values())) if isinstance(fpath, Mapping) else fpath
            saved = load_checkpoint(path).get('criterion_state')
            if saved is None:
                raise KeyError(f'"{path}" has no criterion_state: it was not written by an ImageMetricEngine with '
                               f'these losses ({list(self.criteria)}); cannot resume their parameters')
            self.criteria.load_state_dict(saved)
        return start_epoch

    # -- training -----------------------------------------------------------------------------------------
    def forward_backward(self, data: Dict[str, Any]) -> Dict[str, float]:
        outputs, pids = self.forward_train_batch(data)
        if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
            raise TypeError('ImageMetricEngine: the model must return (logits, features) in train mode; '
                            "build it with loss='triplet'")
        logits, features = outputs
        actions = data['camid'].to(self.device) if self.action_aware else None
        loss = 0.0
        summary = {}
        for name, criterion in self.criteria.items():
            weight = self.metric_weights[name]
            if weight == 0:
                continue
            value = criterion(features, pids, actions=actions)
            loss = loss + weight * value
            summary[f'loss_{name}'] = value.item()
            if getattr(criterion, 'logit_scale', None) is not None:
                summary[f'{name}_scale'] = float(criterion.scale().detach())
        if self.weight_x > 0:
            # the margin goes on the target logit for the loss only; the accuracy is that of the plain logits
            margin_logits = logits if self.margin_head is None else \
                self.margin_head.apply_margin(logits.float(), pids)
            loss_x = self.criterion_x(margin_logits, pids)
            loss = loss + self.weight_x * loss_x
            summary['loss_x'] = loss_x.item()
            summary['acc'] = accuracy(logits, pids)
        self.backward_and_step(loss)
        summary['loss'] = loss.item()
        return summary
