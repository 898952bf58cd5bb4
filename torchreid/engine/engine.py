"""The training / evaluation template every engine derives from (Torchreid's ``Engine``).

A subclass registers its model(s) with :meth:`Engine.register_model` and overrides
:meth:`Engine.forward_backward`, which takes one training batch and returns a dict of named scalars
(losses, accuracy). The base class runs the epochs, progress bars, logging, TensorBoard, evaluation on every
target, ranking export, visualisation and checkpoints.

Evaluation asks each target dataset how it is evaluated (``dataset.eval_metric``: ``'soccernetv3'`` ranks
every query among the gallery items of its own action, never building the full query x gallery matrix;
``'default'`` / ``'cuhk03'`` use the full distance matrix) and whether its labels are hidden
(``dataset.hidden_labels``: no metrics, rankings can still be exported). The evaluation options are
gathered once in :class:`EvalOptions`.

Checkpoints and resuming: a checkpoint is written every ``save_freq`` epochs (default: every epoch, so an
interrupted run loses at most one epoch) and always after the last one, to
``<save_dir>/<model name>/model.pth.tar-<epoch>`` (Torchreid's layout). It holds the weights, optimizer,
scheduler and AMP scaler states, the Python / NumPy / torch RNG states at the end of the epoch and the best
value of the declared ``checkpoint_metric``. ``run(resume=path)`` (or :meth:`Engine.resume`) restores all of
it; evaluation never consumes training randomness (the RNG states are put back after each test), so an
interrupted-and-resumed run ends with the same weights as an uninterrupted one.
"""
import contextlib
import dataclasses
import datetime
import logging
import math
import os.path as osp
import sys
import time
import warnings
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchreid.losses import DeepSupervision
from torchreid.metrics.rank import EVAL_METRICS
from torchreid.utils.checkpoint import load_checkpoint, restore_checkpoint_state, save_checkpoint
from torchreid.utils.loggers import MetricMeter, find_file_handler, remove_logging, setup_logging
from torchreid.utils.model_utils import open_specified_layers, resolve_device
from torchreid.utils.tools import get_rng_state, set_rng_state

__all__ = ['Engine', 'EvalOptions']

logger = logging.getLogger(__name__)

_METRIC_ALIASES = {'map': 'mAP', 'rank1': 'rank1', 'rank-1': 'rank1', 'r1': 'rank1', 'minp': 'mINP'}
_PRECISIONS = {
    None: None, False: None, 'fp32': None, 'float32': None, 'none': None,
    'fp16': torch.float16, 'float16': torch.float16, 'half': torch.float16,
    'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16,
}


@dataclasses.dataclass
class EvalOptions:
    """Everything that decides how the targets are evaluated, gathered once.

    Attributes:
        dist_metric: ``'euclidean'`` (squared, as Torchreid) or ``'cosine'``.
        normalize_feature: L2-normalise features before computing distances.
        rerank: k-reciprocal re-ranking (per action for SoccerNet targets), with ``rerank_k1``,
            ``rerank_k2``, ``rerank_lambda`` (Zhong et al.'s k1, k2, lambda).
        query_expansion: average query expansion (SoccerNet targets).
        inverted_softmax: rank by the action's inverted softmax (SoccerNet targets; the queries of an action
            are different people, so a gallery box shows at most one of them), with
            ``inverted_softmax_temperature`` (see :func:`torchreid.metrics.inverted_softmax`).
        ranks: CMC ranks to report.
        use_metric_cuhk03: evaluate ``'default'`` targets with the CUHK03 protocol (Torchreid's flag).
        eval_metric: force a metric for every target; ``None`` (the default) asks each dataset.
        visrank / visrank_topk / visrank_max_queries: draw ranked results to ``<save_dir>/visrank_<target>``.
        export_ranking_results: write ``ranking_results_<target>_<time>.json`` (challenge format).
        save_dir: where exports and pictures go.
        max_rank: length of the CMC curve.
        use_cython: use the compiled ranking code when it is built.
    """

    dist_metric: str = 'euclidean'
    normalize_feature: bool = False
    rerank: bool = False
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    query_expansion: bool = False
    inverted_softmax: bool = False
    inverted_softmax_temperature: float = 0.3
    ranks: Sequence[int] = (1, 5, 10, 20)
    use_metric_cuhk03: bool = False
    eval_metric: Optional[str] = None
    visrank: bool = False
    visrank_topk: int = 10
    visrank_max_queries: Optional[int] = None
    export_ranking_results: bool = False
    save_dir: str = 'log'
    max_rank: int = 50
    use_cython: bool = True

    def __post_init__(self):
        if self.dist_metric not in ('euclidean', 'cosine'):
            raise ValueError(f"EvalOptions.dist_metric must be 'euclidean' or 'cosine', got {self.dist_metric!r}")
        if isinstance(self.ranks, int):
            self.ranks = (self.ranks,)
        self.ranks = tuple(int(r) for r in self.ranks)
        if any(r < 1 for r in self.ranks):
            raise ValueError(f'EvalOptions.ranks must be positive ints, got {self.ranks}')
        if self.eval_metric is not None and self.eval_metric not in EVAL_METRICS:
            raise ValueError(f'EvalOptions.eval_metric must be None or one of {EVAL_METRICS}, '
                             f'got {self.eval_metric!r}')
        if int(self.max_rank) < 1:
            raise ValueError(f'EvalOptions.max_rank must be >= 1, got {self.max_rank!r}')
        if int(self.rerank_k1) < 1 or int(self.rerank_k2) < 1 or not 0.0 <= float(self.rerank_lambda) <= 1.0:
            raise ValueError('EvalOptions: rerank_k1 and rerank_k2 must be >= 1 and rerank_lambda in [0, 1], got '
                             f'{self.rerank_k1}, {self.rerank_k2}, {self.rerank_lambda}')
        t = float(self.inverted_softmax_temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError('EvalOptions.inverted_softmax_temperature must be a finite number > 0, got '
                             f'{self.inverted_softmax_temperature!r}')
        if int(self.visrank_topk) < 1:
            raise ValueError(f'EvalOptions.visrank_topk must be >= 1, got {self.visrank_topk!r}')


def _ask_progress(progress):
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)


def _canonical_metric_name(name):
    key = str(name).lower()
    if key not in _METRIC_ALIASES:
        raise ValueError(f"checkpoint_metric must be one of 'mAP', 'rank1', 'mINP', got {name!r}")
    return _METRIC_ALIASES[key]


class Engine:
    """Base engine (a template).

    Args:
        datamanager: an ``ImageDataManager`` (anything with ``train_loader``, ``test_loader``,
            ``num_train_pids`` works).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``, a ``torch.device``, or None (CUDA when
            available).
        use_gpu: deprecated; ``False`` means ``device='cpu'``, ``True`` the automatic choice.
        mixed_precision: None (fp32), ``'fp16'`` or ``'bf16'``: forward passes under ``torch.autocast``;
            fp16 on CUDA also uses a gradient scaler.
        channels_last: put the model and the input batches in channels-last memory format.
        grad_clip: clip the global gradient norm of each model to this value (None: no clipping).
        progress: tqdm progress bars; None shows them only when stderr is a terminal.
        tensorboard: write TensorBoard scalars to ``save_dir``.
    """

    def __init__(self, datamanager, device=None, use_gpu=None, mixed_precision=None, channels_last=False,
                 grad_clip=None, progress=None, tensorboard=True):
        if isinstance(device, bool):
            # Torchreid's positional ``Engine(datamanager, use_gpu)`` lands here.
            use_gpu, device = device, None
        if use_gpu is not None:
            warnings.warn('Engine(use_gpu=...) is deprecated; pass device="cuda" / "cpu" instead',
                          DeprecationWarning, stacklevel=3)
            if device is None and not use_gpu:
                device = 'cpu'
        self.device = resolve_device(device)
        key = mixed_precision.lower() if isinstance(mixed_precision, str) else mixed_precision
        if key not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be None, 'fp16' or 'bf16', got {mixed_precision!r}")
        self.amp_dtype = _PRECISIONS[key]
        self.mixed_precision = {None: None, torch.float16: 'fp16', torch.bfloat16: 'bf16'}[self.amp_dtype]
        self.scaler = None
        if self.amp_dtype == torch.float16:
            if self.device.type == 'cuda':
                self.scaler = torch.amp.GradScaler('cuda')
            else:
                logger.warning("mixed_precision='fp16' on %s runs without a gradient scaler (small gradients "
                               "may underflow); 'bf16' is the safer choice there", self.device)
        self.channels_last = bool(channels_last)
        if grad_clip is not None and not float(grad_clip) > 0:
            raise ValueError(f'grad_clip must be None or a positive number, got {grad_clip!r}')
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.progress = progress
        self.tensorboard = bool(tensorboard)

        self.datamanager = datamanager
        self.train_loader = getattr(datamanager, 'train_loader', None)
        self.test_loader = getattr(datamanager, 'test_loader', None)
        self.writer = None
        self.epoch = 0
        self.max_epoch = 0
        self.num_batches = 0
        self.global_step = 0
        self.last_grad_norm = None
        self.history = []  # per-epoch averages of forward_backward's outputs
        self.best_metric = None
        self.best_epoch = None
        self.checkpoint_metric = 'mAP'
        self._last_results = None
        self._warned_no_metric = False
        self._trainable_before_fixbase = None  # [(parameter, requires_grad)] saved by the fixbase phase

        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()

    # ------------------------------------------------------------------ registry (Torchreid API)
    @property
    def use_gpu(self):
        """Deprecated view of :attr:`device` (True on CUDA)."""
        return self.device.type == 'cuda'

    def register_model(self, name='model', model=None, optim=None, sched=None):
        """Register a model with its optimizer and scheduler; the model is moved to the engine's device."""
        if self.__dict__.get('_models') is None:
            raise AttributeError('call super().__init__() before register_model()')
        if model is None or not isinstance(model, nn.Module):
            raise TypeError(f'register_model({name!r}): model must be an nn.Module, got {type(model).__name__}')
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in self._models]
        if unknown:
            raise KeyError(f'unknown model name(s) {unknown}; registered: {names_real}')
        return list(names)

    def set_model_mode(self, mode='train', names=None):
        if mode not in ('train', 'eval', 'test'):
            raise ValueError(f"mode must be 'train', 'eval' or 'test', got {mode!r}")
        for name in self.get_model_names(names):
            self._models[name].train(mode == 'train')

    def get_current_lr(self, names=None):
        name = self.get_model_names(names)[0]
        optim = self._optims[name]
        if optim is None:
            raise ValueError(f'model {name!r} has no optimizer registered')
        return optim.param_groups[-1]['lr']

    def update_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    @property
    def rank1(self):
        """Rank-1 of the last target with labels at the last test (what Torchreid's ``test()`` returned)."""
        if not self._last_results:
            return None
        value = None
        for res in self._last_results.values():
            if res.get('rank1') is not None:
                value = res['rank1']
        return value

    @property
    def last_results(self):
        """The dict returned by the last :meth:`test`."""
        return self._last_results

    # ------------------------------------------------------------------ precision / device helpers
    def autocast(self):
        """Context for forward passes: ``torch.autocast`` with the engine's precision, or a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, imgs):
        """Move an input batch to the device (channels-last when asked)."""
        imgs = imgs.to(self.device, non_blocking=True)
        if self.channels_last and imgs.dim() == 4:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        return imgs

    def forward_train_batch(self, data):
        """Move a training batch to the device and run ``self.model`` under autocast: ``(outputs, pids)``."""
        imgs, pids = self.parse_data_for_train(data)
        imgs = self.to_device(imgs)
        pids = pids.to(self.device)
        with self.autocast():
            outputs = self.model(imgs)
        return outputs, pids

    def backward_and_step(self, loss, names=None):
        """Zero the grads, backpropagate ``loss``, clip, and step the optimizers of ``names``.

        Handles the fp16 gradient scaler (gradients are unscaled before clipping). With ``grad_clip`` the
        total norm before clipping is kept in :attr:`last_grad_norm`.
        """
        names = self.get_model_names(names)
        optims = [(n, self._optims[n]) for n in names if self._optims[n] is not None]
        for _, optim in optims:
            optim.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        norms = []
        for name, optim in optims:
            if self.grad_clip is not None:
                if self.scaler is not None:
                    self.scaler.unscale_(optim)
                params = [p for p in self._models[name].parameters() if p.grad is not None]
                norms.append(float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip)))
            if self.scaler is not None:
                self.scaler.step(optim)
            else:
                optim.step()
        if self.scaler is not None:
            self.scaler.update()
        if norms:
            self.last_grad_norm = math.sqrt(sum(n * n for n in norms))

    # ------------------------------------------------------------------ checkpoints
    def save_model(self, epoch, rank1=None, save_dir='log', is_best=False, keep_last=None, metric=None):
        """Save every registered model to ``<save_dir>/<name>/model.pth.tar-<epoch+1>``.

        ``epoch`` is 0-based (Torchreid's convention); the file carries the number of completed epochs.
        """
        rng_state = get_rng_state()
        paths = {}
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                'state_dict': self._models[name].state_dict(),
                'epoch': epoch + 1,
                'rank1': rank1,
                'optimizer': optim.state_dict() if optim is not None else None,
                'scheduler': sched.state_dict() if sched is not None else None,
                'scaler': self.scaler.state_dict() if self.scaler is not None else None,
                'rng_state': rng_state,
                'metric_name': self.checkpoint_metric,
                'metric': metric,
                'best_metric': self.best_metric,
                'best_epoch': self.best_epoch,
                'mixed_precision': self.mixed_precision,
            }
            paths[name] = save_checkpoint(state, osp.join(save_dir, name), is_best=is_best, keep_last=keep_last)
        return paths

    def resume(self, fpath, restore_rng=True):
        """Restore weights, optimizer, scheduler, scaler, RNG states and best metric from checkpoint(s).

        Args:
            fpath: a path (single registered model) or a dict ``{model name: path}``.

        Returns:
            int: the epoch to start from (epochs already completed).
        """
        names = self.get_model_names()
        if isinstance(fpath, dict):
            paths = dict(fpath)
            missing = [n for n in names if n not in paths]
            if missing:
                raise KeyError(f'resume: no checkpoint given for model(s) {missing}')
        else:
            if len(names) != 1:
                raise ValueError(f'resume: {len(names)} models are registered ({names}); '
                                 'pass a dict {name: checkpoint path}')
            paths = {names[0]: fpath}
        start_epochs = set()
        for i, name in enumerate(names):
            ckpt = load_checkpoint(paths[name])
            start_epochs.add(restore_checkpoint_state(
                ckpt, self._models[name], self._optims[name], self._scheds[name],
                self.scaler if i == 0 else None, restore_rng=restore_rng and i == 0, fpath=paths[name]))
            if i == 0:
                if ckpt.get('metric_name') is not None:
                    self.checkpoint_metric = ckpt['metric_name']
                self.best_metric = ckpt.get('best_metric')
                self.best_epoch = ckpt.get('best_epoch')
        if len(start_epochs) != 1:
            raise ValueError(f'resume: the checkpoints were saved at different epochs {sorted(start_epochs)}')
        return start_epochs.pop()

    # ------------------------------------------------------------------ main loop
    def run(self, save_dir='log', max_epoch=0, start_epoch=0, print_freq=10, fixbase_epoch=0, open_layers=None,
            start_eval=0, eval_freq=-1, test_only=False, checkpoint_metric='mAP', save_freq=1, keep_last=None,
            resume=None, **eval_options):
        """Train for ``max_epoch`` epochs and/or evaluate (Torchreid's keywords, plus ours).

        ``**eval_options`` are the fields of :class:`EvalOptions` (Torchreid's ``dist_metric``,
        ``normalize_feature``, ``visrank``, ``visrank_topk``, ``use_metric_cuhk03``, ``ranks``, ``rerank``,
        ``export_ranking_results``; ours ``query_expansion``, ``inverted_softmax``, ``visrank_max_queries``,
        ``rerank_k1`` / ``rerank_k2`` / ``rerank_lambda``, ``eval_metric``, ...); exports and pictures go to
        ``save_dir``.
        Also ours: ``checkpoint_metric`` (``'mAP'``, ``'rank1'`` or ``'mINP'`` of the first target with labels
        decides ``model-best.pth.tar``), ``save_freq`` (checkpoint every N epochs and after the last),
        ``keep_last`` (keep only the newest N epoch checkpoints), ``resume`` (checkpoint path, or dict
        name -> path, to continue from; overrides ``start_epoch``).

        Intermediate tests (``eval_freq``) neither export rankings nor draw pictures; the final test
        (after the last epoch, or ``test_only``) does what is asked.

        Returns:
            dict: the results of the last test (see :meth:`test`), or None when no test ran.
        """
        options = EvalOptions(save_dir=save_dir, **eval_options)
        if options.visrank and not test_only:
            logger.info('visrank is applied at the final test only')
        self.checkpoint_metric = _canonical_metric_name(checkpoint_metric)
        if save_freq is not None and int(save_freq) < 1:
            raise ValueError(f'save_freq must be a positive int or None (only the last epoch), got {save_freq!r}')
        if max_epoch < 0 or start_epoch < 0:
            raise ValueError(f'max_epoch and start_epoch must be >= 0, got {max_epoch}, {start_epoch}')
        if not self._models:
            raise RuntimeError('no model registered: call register_model() in the engine constructor')

        handler = None
        if find_file_handler(save_dir=save_dir) is None:
            handler = setup_logging(save_dir, 'test.log' if test_only else 'train.log')
        own_writer = False
        if self.tensorboard and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=save_dir)
            own_writer = True
        try:
            if resume:
                requested = self.checkpoint_metric
                start_epoch = self.resume(resume)
                if self.checkpoint_metric != requested:
                    logger.warning('The checkpoint tracked the best %s; this run tracks %s from scratch',
                                   self.checkpoint_metric, requested)
                    self.checkpoint_metric, self.best_metric, self.best_epoch = requested, None, None
            if test_only:
                results = self.test(options, final=True)
                self._log_results_table(results)
                return results
            return self._train_loop(options, save_dir, max_epoch, start_epoch, print_freq, fixbase_epoch,
                                    open_layers, start_eval, eval_freq, save_freq, keep_last)
        finally:
            if own_writer:
                # One event file per run, in that run's save_dir.
                self.writer.close()
                self.writer = None
            remove_logging(handler)

    def _train_loop(self, options, save_dir, max_epoch, start_epoch, print_freq, fixbase_epoch, open_layers,
                    start_eval, eval_freq, save_freq, keep_last):
        self.max_epoch = max_epoch
        results = None
        if start_epoch >= max_epoch:
            if max_epoch > 0:
                logger.info('Nothing to train (start_epoch %d >= max_epoch %d): final test only',
                            start_epoch, max_epoch)
                results = self._test_keep_rng(options, epoch=max_epoch, final=True)
                self._log_results_table(results)
            return results

        time_start = time.time()
        logger.info('=> Start training (epochs %d..%d)', start_epoch + 1, max_epoch)
        for self.epoch in range(start_epoch, max_epoch):
            done = self.epoch + 1
            self.train(print_freq=print_freq, fixbase_epoch=fixbase_epoch, open_layers=open_layers)
            is_last = done == max_epoch
            do_eval = is_last or (eval_freq is not None and eval_freq > 0 and done >= start_eval
                                  and done % eval_freq == 0)
            metric = None
            is_best = False
            if do_eval:
                results = self._test_keep_rng(options, epoch=done, final=is_last)
                metric = self._checkpoint_metric_value(results)
                if metric is not None and (self.best_metric is None or metric > self.best_metric):
                    self.best_metric, self.best_epoch, is_best = metric, done, True
                    logger.info('New best %s: %.2f%% (epoch %d)', self.checkpoint_metric, 100 * metric, done)
            if is_last or is_best or (save_freq is not None and done % int(save_freq) == 0):
                # The RNG states saved are those right after training (the test put them back), so a
                # resumed run replays the same randomness.
                self.save_model(self.epoch, rank1=self.rank1 if do_eval else None, save_dir=save_dir,
                                is_best=is_best, keep_last=keep_last, metric=metric)
        elapsed = datetime.timedelta(seconds=round(time.time() - time_start))
        logger.info('Elapsed %s', elapsed)
        if results is not None:
            self._log_results_table(results)
        return results

    def _test_keep_rng(self, options, epoch, final):
        # Evaluation must not consume training randomness (DataLoader iterators draw a seed from torch's
        # generator): put the states back afterwards so eval_freq does not change the trained weights.
        state = get_rng_state()
        try:
            return self.test(options, epoch=epoch, final=final)
        finally:
            set_rng_state(state)

    def _checkpoint_metric_value(self, results):
        for name, res in results.items():
            if res.get(self.checkpoint_metric) is not None:
                return float(res[self.checkpoint_metric])
        if not self._warned_no_metric:
            logger.warning('No target with labels: model-best.pth.tar is not written')
            self._warned_no_metric = True
        return None

    def train(self, print_freq=10, fixbase_epoch=0, open_layers=None):
        """One epoch over ``train_loader``; returns the epoch averages of ``forward_backward``'s outputs."""
        from tqdm.auto import tqdm

        if self.train_loader is None:
            raise RuntimeError('the datamanager has no train_loader; build it with sources to train')
        meters = MetricMeter()
        if hasattr(self.datamanager, 'set_epoch'):
            # Seeded samplers order each epoch by (seed, epoch); telling them the epoch keeps a resumed
            # run on the same sequence.
            self.datamanager.set_epoch(self.epoch)
        self.set_model_mode('train')
        self.two_stepped_transfer_learning(self.epoch, fixbase_epoch, open_layers)
        self.num_batches = len(self.train_loader)
        batch_time_sum, end = 0.0, time.time()
        bar = tqdm(self.train_loader, total=self.num_batches, desc=f'epoch {self.epoch + 1}/{self.max_epoch}',
                   disable=not _ask_progress(self.progress), leave=False, dynamic_ncols=True)
        for batch_idx, data in enumerate(bar):
            summary = self.forward_backward(data)
            meters.update(summary)
            batch_time = time.time() - end
            batch_time_sum += batch_time
            end = time.time()
            # From the epoch, so a resumed run continues the TensorBoard curves where they stopped.
            self.global_step = self.epoch * self.num_batches + batch_idx + 1
            if summary and not bar.disable:
                bar.set_postfix({k: f'{v:.3f}' for k, v in meters.averages().items()}, refresh=False)
            if print_freq and (batch_idx + 1) % print_freq == 0:
                remaining = (self.num_batches - batch_idx - 1
                             + (self.max_epoch - self.epoch - 1) * self.num_batches)
                eta = datetime.timedelta(seconds=int(batch_time_sum / (batch_idx + 1) * remaining))
                logger.info('epoch: [%d/%d][%d/%d]  time %.3f  eta %s  %s  lr %.6g', self.epoch + 1,
                            self.max_epoch, batch_idx + 1, self.num_batches, batch_time, eta, meters,
                            self.get_current_lr())
            if self.writer is not None:
                for name, meter in meters.meters.items():
                    self.writer.add_scalar('Train/' + name, meter.val, self.global_step)
                self.writer.add_scalar('Train/lr', self.get_current_lr(), self.global_step)
                if self.last_grad_norm is not None and self.grad_clip is not None:
                    self.writer.add_scalar('Train/grad_norm', self.last_grad_norm, self.global_step)
        bar.close()
        averages = meters.averages()
        self.history.append({'epoch': self.epoch + 1, **averages})
        logger.info('epoch %d/%d done: %s  lr %.6g', self.epoch + 1, self.max_epoch,
                    '  '.join(f'{k} {v:.4f}' for k, v in averages.items()), self.get_current_lr())
        if self.writer is not None:
            for name, value in averages.items():
                self.writer.add_scalar('Epoch/' + name, value, self.epoch + 1)
            self.writer.add_scalar('Epoch/lr', self.get_current_lr(), self.epoch + 1)
        self.update_lr()
        return averages

    def forward_backward(self, data):
        """One optimisation step on a batch; returns ``{name: float}`` (losses, accuracy...)."""
        raise NotImplementedError(f'{type(self).__name__} must implement forward_backward(data)')

    def two_stepped_transfer_learning(self, epoch, fixbase_epoch, open_layers, model=None):
        """For the first ``fixbase_epoch`` epochs train only ``open_layers``; then what was trainable before.

        Parameters the model keeps frozen itself (the BNNeck bias) or that the user froze stay frozen, in
        ``open_layers`` too: the ``requires_grad`` flags are saved before the first fixbase epoch and put back
        after the last one, rather than every parameter being opened (Torchreid's ``open_all_layers``) at
        every epoch.
        """
        model = self._models[self.get_model_names()[0]] if model is None else model
        if (epoch + 1) <= fixbase_epoch and open_layers is not None:
            logger.info('* Only train %s (epoch: %d/%d)', open_layers, epoch + 1, fixbase_epoch)
            if self._trainable_before_fixbase is None:
                self._trainable_before_fixbase = [(p, p.requires_grad) for p in model.parameters()]
            open_specified_layers(model, open_layers)
            for p, trainable in self._trainable_before_fixbase:
                if not trainable:
                    p.requires_grad_(False)
        elif self._trainable_before_fixbase is not None:
            for p, trainable in self._trainable_before_fixbase:
                p.requires_grad_(trainable)
            self._trainable_before_fixbase = None

    # ------------------------------------------------------------------ evaluation
    def test(self, options=None, *, epoch=None, final=True, **overrides):
        """Evaluate every target; Torchreid's keywords (``dist_metric=...``) work as overrides.

        Args:
            options (EvalOptions, optional): evaluation options; keyword overrides are applied on top.
            epoch (int, optional): for TensorBoard (epochs completed).
            final (bool): export rankings / draw pictures when asked (False for intermediate tests).

        Returns:
            dict: ``{target: {'mAP', 'rank1', 'mINP', 'cmc', 'ranks', 'num_queries', 'num_valid_queries',
            'eval_metric', 'hidden_labels', 'ranking_path'}}``; metrics are None for hidden labels.
            Torchreid's single rank-1 is :attr:`rank1`.
        """
        if options is None:
            options = EvalOptions(**overrides)
        elif not isinstance(options, EvalOptions):
            raise TypeError(f'test(): options must be an EvalOptions, got {type(options).__name__} '
                            '(pass Torchreid options as keywords, e.g. test(dist_metric="cosine"))')
        elif overrides:
            options = dataclasses.replace(options, **overrides)
        if self.test_loader is None or len(self.test_loader) == 0:
            raise RuntimeError('the datamanager has no test loaders (no targets)')
        self.set_model_mode('eval')
        results = OrderedDict()
        for name in self._target_names():
            loaders = self.test_loader[name]
            logger.info('##### Evaluating %s #####', name)
            results[name] = self._evaluate_target(name, loaders['query'], loaders['gallery'], options, final)
        self._last_results = results
        if self.writer is not None and epoch is not None:
            for name, res in results.items():
                for key in ('mAP', 'rank1', 'mINP'):
                    if res.get(key) is not None:
                        self.writer.add_scalar(f'Test/{name}/{key}', res[key], epoch)
        return results

    def _target_names(self):
        targets = getattr(self.datamanager, 'targets', None)
        names = list(self.test_loader.keys())
        if targets:
            ordered = [t for t in targets if t in self.test_loader]
            return ordered + [n for n in names if n not in ordered]
        return names

    def _evaluate_target(self, name, query_loader, gallery_loader, opts, final):
        from torchreid import metrics

        qset = query_loader.dataset
        gset = gallery_loader.dataset
        eval_metric = getattr(qset, 'eval_metric', 'default') or 'default'
        if opts.eval_metric is not None and opts.eval_metric != eval_metric:
            logger.warning('%s: eval_metric=%r requested, the dataset declares %r; using %r',
                           name, opts.eval_metric, eval_metric, opts.eval_metric)
            eval_metric = opts.eval_metric
        if eval_metric == 'default' and opts.use_metric_cuhk03:
            eval_metric = 'cuhk03'
        if eval_metric not in EVAL_METRICS:
            raise ValueError(f'{name}: dataset declares eval_metric={eval_metric!r}; expected one of {EVAL_METRICS}')
        hidden = bool(getattr(qset, 'hidden_labels', False))
        for option in ('query_expansion', 'inverted_softmax'):
            if getattr(opts, option) and eval_metric != 'soccernetv3':
                raise ValueError(f'{name}: {option} is implemented for soccernetv3 targets only '
                                 f'(this target uses {eval_metric!r})')

        t0 = time.time()
        qf, q_pids, q_camids = self.extract_features(query_loader, desc=f'{name} query')
        gf, g_pids, g_camids = self.extract_features(gallery_loader, desc=f'{name} gallery')
        logger.info('Extracted features: query %s, gallery %s (%.1f s)', tuple(qf.shape), tuple(gf.shape),
                    time.time() - t0)
        self._check_aligned(name, 'query', qset, qf)
        self._check_aligned(name, 'gallery', gset, gf)

        res = {'eval_metric': eval_metric, 'hidden_labels': hidden, 'num_queries': int(qf.size(0)),
               'num_gallery': int(gf.size(0)), 'mAP': None, 'rank1': None, 'mINP': None, 'cmc': None,
               'ranks': {}, 'num_valid_queries': None, 'ranking_path': None}
        t0 = time.time()
        distmat = None
        if eval_metric == 'soccernetv3':
            rank_kwargs = dict(metric=opts.dist_metric, normalize=opts.normalize_feature, rerank=opts.rerank,
                               k1=opts.rerank_k1, k2=opts.rerank_k2, lambda_value=opts.rerank_lambda,
                               query_expansion=opts.query_expansion, inverted_softmax=opts.inverted_softmax,
                               inverted_softmax_temperature=opts.inverted_softmax_temperature)
            if hidden:
                rankings = metrics.rank_by_action(qf, gf, q_camids, g_camids, **rank_kwargs)
                result = None
            else:
                result, rankings = metrics.evaluate_soccernetv3(
                    qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=opts.max_rank,
                    use_cython=opts.use_cython, **rank_kwargs)
        else:
            if opts.normalize_feature:
                qf, gf = F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1)
            distmat = metrics.compute_distance_matrix(qf, gf, opts.dist_metric).cpu().numpy()
            if opts.rerank:
                logger.info('Applying re-ranking')
                distmat_qq = metrics.compute_distance_matrix(qf, qf, opts.dist_metric).cpu().numpy()
                distmat_gg = metrics.compute_distance_matrix(gf, gf, opts.dist_metric).cpu().numpy()
                distmat = metrics.re_ranking(distmat, distmat_qq, distmat_gg, k1=opts.rerank_k1, k2=opts.rerank_k2,
                                             lambda_value=opts.rerank_lambda)
            rankings = np.argsort(distmat, axis=1, kind='stable')
            result = None if hidden else metrics.evaluate_rank(
                distmat, q_pids, g_pids, q_camids, g_camids, max_rank=opts.max_rank, eval_metric=eval_metric,
                use_cython=opts.use_cython, return_result=True)
        logger.info('Ranked %d queries (%.1f s)', len(rankings), time.time() - t0)

        if result is None:
            logger.info("%s: labels are hidden, so CMC / mAP are not computed", name)
        else:
            cmc = np.asarray(result.cmc, dtype=np.float64)
            res.update(mAP=float(result.mAP), mINP=float(result.mINP), cmc=cmc, rank1=float(cmc[0]),
                       num_valid_queries=int(result.num_valid_queries))
            res['ranks'] = {r: float(cmc[r - 1]) for r in opts.ranks if r <= len(cmc)}
            logger.info('** Results (%s) **', name)
            logger.info('mAP: %.1f%%  mINP: %.1f%%  (valid queries: %d/%d)', 100 * res['mAP'], 100 * res['mINP'],
                        res['num_valid_queries'], res['num_queries'])
            logger.info('CMC curve')
            for r, v in res['ranks'].items():
                logger.info('Rank-%-3d: %.1f%%', r, 100 * v)

        if final and opts.export_ranking_results:
            res['ranking_path'] = self._export(name, qset, gset, rankings, q_camids, g_camids, eval_metric,
                                               opts.save_dir)
        if final and opts.visrank:
            from torchreid.utils.reidtools import visualize_ranked_results

            out_dir = osp.join(opts.save_dir, 'visrank_' + name)
            # SoccerNet: the per-action rankings; others: the distance matrix, so the drawing drops
            # Torchreid's junk (same identity, same camera) as the metric does.
            to_draw = list(rankings) if eval_metric == 'soccernetv3' else distmat
            visualize_ranked_results(to_draw, qset.data, gset.data, out_dir, topk=opts.visrank_topk,
                                     width=getattr(self.datamanager, 'width', 128),
                                     height=getattr(self.datamanager, 'height', 256),
                                     hidden_labels=hidden, max_queries=opts.visrank_max_queries)
            logger.info('Ranked results drawn in "%s"', out_dir)
        return res

    @staticmethod
    def _check_aligned(name, which, dataset, feats):
        data = getattr(dataset, 'data', None)
        if data is not None and len(data) != feats.size(0):
            raise RuntimeError(f'{name} {which}: {feats.size(0)} features extracted for {len(data)} records; '
                               'the test loader must visit every record once, in order (no sampler, no drop_last)')

    @staticmethod
    def _export(name, qset, gset, rankings, q_camids, g_camids, eval_metric, save_dir):
        from torchreid import metrics

        q_info = getattr(qset, 'data_info', None)
        g_info = getattr(gset, 'data_info', None)
        if eval_metric != 'soccernetv3' or q_info is None or g_info is None:
            logger.warning('%s: ranking export needs a SoccerNet-format target (per-sample bbox_idx and '
                           'action); not exported', name)
            return None
        q_bbox = np.asarray([s.bbox_idx for s in q_info], dtype=np.int64)
        g_bbox = np.asarray([s.bbox_idx for s in g_info], dtype=np.int64)
        path = metrics.export_ranking_results(rankings, q_bbox, g_bbox, q_camids, g_camids, save_dir, name)
        logger.info('Ranking results of %s exported to "%s"', name, path)
        return path

    def _log_results_table(self, results):
        lines = ['| target | metric | mAP | rank-1 | mINP |', '|---|---|---|---|---|']
        for name, res in results.items():
            def pct(v):
                return '-' if v is None else f'{100 * v:.2f}'
            lines.append(f"| {name} | {res['eval_metric']}{' (hidden)' if res['hidden_labels'] else ''} | "
                         f"{pct(res['mAP'])} | {pct(res['rank1'])} | {pct(res['mINP'])} |")
        logger.info('Results\n%s', '\n'.join(lines))

    # ------------------------------------------------------------------ features
    def extract_features(self, loader, desc='features'):
        """Features of every image a test loader yields, in order.

        Args:
            loader: an iterable of batches (dicts with ``'img'``, ``'pid'``, ``'camid'``). A tensor is also
                accepted (Torchreid's ``extract_features(imgs)``): the model's output is returned for it.

        Returns:
            ``(features FloatTensor [N, D] on the CPU, pids np.ndarray [N], camids np.ndarray [N])``.
        """
        from tqdm.auto import tqdm

        model = self._models[self.get_model_names()[0]]
        if isinstance(loader, torch.Tensor):
            # Torchreid's call shape: a batch in, the model output out.
            with self.autocast():
                return model(self.to_device(loader))
        was_training = model.training
        model.eval()
        feats, pids, camids = [], [], []
        try:
            with torch.inference_mode():
                total = len(loader) if hasattr(loader, '__len__') else None
                for data in tqdm(loader, total=total, desc=desc, disable=not _ask_progress(self.progress),
                                 leave=False, dynamic_ncols=True):
                    imgs, batch_pids, batch_camids = self.parse_data_for_eval(data)
                    with self.autocast():
                        out = model(self.to_device(imgs))
                    feats.append(out.float().cpu())
                    pids.append(np.asarray(batch_pids))
                    camids.append(np.asarray(batch_camids))
        finally:
            model.train(was_training)
        if not feats:
            raise RuntimeError(f'{desc}: the loader yielded no batch')
        return torch.cat(feats, 0), np.concatenate(pids), np.concatenate(camids)

    # ------------------------------------------------------------------ Torchreid helpers
    def compute_loss(self, criterion, outputs, targets, *args, **kwargs):
        if isinstance(outputs, (tuple, list)):
            return DeepSupervision(criterion, outputs, targets, *args, **kwargs)
        return criterion(outputs, targets, *args, **kwargs)

    def parse_data_for_train(self, data):
        return data['img'], data['pid']

    def parse_data_for_eval(self, data):
        return data['img'], data['pid'], data['camid']
