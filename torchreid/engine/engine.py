"""The training / evaluation template every engine derives from (Torchreid's ``Engine``).

A subclass registers its model(s) with :meth:`Engine.register_model` (or sets ``self.model``, ``self.optimizer``,
``self.scheduler`` as Torchreid code does: the same registry) and overrides :meth:`Engine.forward_backward`,
which takes one training batch and returns a dict of named scalars (losses, accuracy). The base class runs the
epochs (:class:`~torchreid.engine.options.TrainOptions`), progress bars, logging and TensorBoard; evaluation is
delegated to the evaluator of each target's protocol (:func:`torchreid.metrics.build_evaluator`, with the
:class:`~torchreid.engine.options.EvalOptions`); saving, retention and resuming to the
:class:`~torchreid.engine.checkpointer.Checkpointer`.

Resuming is exact: a checkpoint holds the weights, optimizer, scheduler and AMP scaler states, the RNG states
at the end of the epoch and the best value of the declared ``checkpoint_metric``; evaluation never consumes
training randomness (the RNG states are put back after each test), so an interrupted-and-resumed run ends with
the same weights as an uninterrupted one.

No work is lost: an epoch that is tested is saved before its test (a failing test, export or full disk costs
no training; the resumed run runs the test that did not finish), a non-finite loss stops the run before the
bad step is applied and saved, and a run holds its save_dir's lock, so a second run on the same folder is
refused instead of mixing checkpoints (see :mod:`torchreid.engine.checkpointer` for the best file).
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
from typing import Any, ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from torchreid import metrics
from torchreid.losses import DeepSupervision
from torchreid.utils import distributed as tdist
from torchreid.utils.cpu import auto_mixed_precision, log_cpu_precision_advice, tune_malloc
from torchreid.utils.io import RunLock
from torchreid.utils.loggers import (MetricMeter, find_file_handler, redirect_console_to_tqdm, remove_logging,
                                     setup_console_logging, setup_logging)
from torchreid.utils.model_utils import open_specified_layers, resolve_device
from torchreid.utils.tools import get_rng_state, set_rng_state

from .checkpointer import Checkpointer, ModelSlot
from .options import EvalOptions, TrainOptions, check_keywords

__all__ = ['Engine', 'EvalOptions', 'TrainOptions', 'NonFiniteLossError']

logger = logging.getLogger(__name__)

_PRECISIONS = {
    None: None, False: None, 'fp32': None, 'float32': None, 'none': None,
    'fp16': torch.float16, 'float16': torch.float16, 'half': torch.float16,
    'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16,
}
# The registry slot Torchreid's ``self.model`` / ``self.optimizer`` / ``self.scheduler`` stand for.
_DEFAULT_SLOT = 'model'
# Model names: one, several, or None for every registered model.
Names = Union[None, str, Sequence[str]]
# A checkpoint path, or one per registered model.
CheckpointPaths = Union[str, Mapping[str, str]]


def _ask_progress(progress):
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)


class NonFiniteLossError(FloatingPointError):
    """A loss (or another value ``forward_backward`` reported) became NaN or infinite during training."""


class Engine:
    """Base engine (a template).

    Args:
        datamanager: an ``ImageDataManager`` (anything with ``train_loader``, ``test_loader``,
            ``num_train_pids`` works).
        device: ``'auto'`` (the default; also None): CUDA when available, else the CPU; or ``'cpu'``,
            ``'cuda'``, ``'cuda:1'``, ``'mps'``, a ``torch.device``.
        use_gpu: deprecated; ``False`` means ``device='cpu'``, ``True`` the automatic choice.
        mixed_precision: None (fp32), ``'fp16'`` or ``'bf16'``: forward passes under ``torch.autocast``;
            fp16 on CUDA also uses a gradient scaler. ``'auto'``: bf16 where the device runs it natively (a CPU
            with AVX512-BF16 / AMX, a CUDA GPU with bf16 support), else fp32. On a CPU without native bf16,
            bf16 is emulated and many times slower (a warning says so).
        channels_last: put the model and the input batches in channels-last memory format.
        grad_clip: clip the global gradient norm of each model to this value (None: no clipping).
        progress: tqdm progress bars; None shows them only when stderr is a terminal.
        tensorboard: write TensorBoard scalars to ``save_dir``.
        sync_bn: data-parallel training (an initialised ``torch.distributed`` group, e.g. under torchrun):
            convert BatchNorm layers to ``SyncBatchNorm`` (CUDA only; batch statistics over the global batch).
        grad_accum_steps: accumulate the gradients of N consecutive batches before each optimizer step (the
            loss of each is divided by N; under DDP the gradients are averaged across ranks only at the last).
        gather_embeddings: data-parallel training: metric losses that call :meth:`gather_for_loss` (the triplet
            engine) see the embeddings of every rank's batch, with gradients (more in-batch negatives).

    Data-parallel training and evaluation (docs/distributed.md): when a process group with several ranks is
    initialised, :meth:`run` wraps the models in ``DistributedDataParallel`` for training (``self.model`` is
    then the wrapper), each rank extracts its share of every query / gallery and rank 0 ranks the gathered
    features once (the same numbers as one process), and only rank 0 writes logs, TensorBoard events,
    checkpoints, pictures and rankings. Batch sizes are per rank.
    """

    def __init__(self, datamanager: Any, device: Union[None, str, int, torch.device] = 'auto',
                 use_gpu: Optional[bool] = None,
                 mixed_precision: Optional[str] = None, channels_last: bool = False,
                 grad_clip: Optional[float] = None, progress: Optional[bool] = None, tensorboard: bool = True,
                 sync_bn: bool = False, grad_accum_steps: int = 1, gather_embeddings: bool = False):
        if isinstance(device, bool):
            # Torchreid's positional ``Engine(datamanager, use_gpu)`` lands here.
            use_gpu, device = device, 'auto'
        if use_gpu is not None:
            warnings.warn('Engine(use_gpu=...) is deprecated; pass device="cuda" / "cpu" instead',
                          DeprecationWarning, stacklevel=3)
            if device in (None, 'auto') and not use_gpu:
                device = 'cpu'
        self.device = resolve_device(device)
        key = mixed_precision.lower() if isinstance(mixed_precision, str) else mixed_precision
        if key == 'auto':  # bf16 where the device runs it natively, else fp32
            key = auto_mixed_precision(self.device.type)
        if key not in _PRECISIONS:
            raise ValueError(f"mixed_precision must be None, 'auto', 'fp16' or 'bf16', got {mixed_precision!r}")
        self.amp_dtype = _PRECISIONS[key]
        self.mixed_precision = {None: None, torch.float16: 'fp16', torch.bfloat16: 'bf16'}[self.amp_dtype]
        if self.device.type == 'cpu':
            log_cpu_precision_advice(self.mixed_precision)  # emulated bf16 warns; native bf16 hints
            # glibc keeps activation buffers in the heap instead of page-faulting them in every batch; now, so
            # the loader workers forked later inherit it (TORCHREID_TUNE_MALLOC=0 opts out; docs/results.md)
            tune_malloc()
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
        if isinstance(grad_accum_steps, bool) or int(grad_accum_steps) != grad_accum_steps or grad_accum_steps < 1:
            raise ValueError(f'grad_accum_steps must be an int >= 1, got {grad_accum_steps!r}')
        self.grad_accum_steps = int(grad_accum_steps)
        self.sync_bn = bool(sync_bn)
        self.gather_embeddings = bool(gather_embeddings)
        # DistributedDataParallel: only parameters that get a gradient in every step; an engine whose loss
        # leaves some out (a classifier with weight 0) sets this True.
        self.ddp_find_unused_parameters = False
        self._ddp: Dict[str, nn.Module] = {}  # {model name: its DistributedDataParallel wrapper}
        self._ddp_signature = None  # which parameters were trainable when the wrappers were built
        self._ddp_active = False  # self.model is the wrapper (training) or the bare model (evaluation)

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
        self.checkpoint_metric = TrainOptions.checkpoint_metric
        self.checkpointer: Optional[Checkpointer] = None
        self.config = None  # the run's configuration, recorded in checkpoints (``run(config=...)``)
        self.last_test_results: Optional[Dict[str, dict]] = None  # {target: results} of the last test()
        self.batch_idx = 0
        self._resume_sources: Optional[Dict[str, str]] = None  # {model name: folder} of the last resume()
        self._pending_test_epoch: Optional[int] = None  # resumed from an epoch saved before its test finished
        self._warned_no_metric = False
        self._trainable_before_fixbase = None  # [(parameter, requires_grad)] saved by the fixbase phase
        self.ema = None  # a ModelEMA of the first model (use_ema): evaluated, exported and checkpointed
        self.flip_test = False  # features of each image and its mirror averaged (EvalOptions.flip_test)

        self._models: Dict[str, nn.Module] = OrderedDict()
        self._optims: Dict[str, Any] = OrderedDict()
        self._scheds: Dict[str, Any] = OrderedDict()
        self._attribute_slot = False  # the 'model' slot was made by setting self.model, not by register_model

    # ------------------------------------------------------------------ registry (Torchreid API)
    @property
    def use_gpu(self) -> bool:
        """Deprecated view of :attr:`device` (True on CUDA)."""
        return self.device.type == 'cuda'

    def register_model(self, name: str = _DEFAULT_SLOT, model: Optional[nn.Module] = None,
                       optim: Optional[torch.optim.Optimizer] = None, sched: Any = None) -> None:
        """Register a model with its optimizer and scheduler; the model is moved to the engine's device."""
        self._require_init('register_model()')
        if model is None or not isinstance(model, nn.Module):
            raise TypeError(f'register_model({name!r}): model must be an nn.Module, got {type(model).__name__}')
        if name != _DEFAULT_SLOT and self._attribute_slot and self._models.get(_DEFAULT_SLOT) is model:
            # Torchreid code sets self.model before registering the same model under its own name: one slot.
            for registry in (self._models, self._optims, self._scheds):
                registry.pop(_DEFAULT_SLOT, None)
        self._attribute_slot = False
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    # Torchreid's engines keep ``self.model``, ``self.optimizer`` and ``self.scheduler``: here they are views of
    # the registry's 'model' slot (the only model when one is registered under another name), so there is one
    # copy of the state.
    def _require_init(self, what: str) -> None:
        if '_models' not in self.__dict__:
            raise AttributeError(f'call super().__init__() before {what}')

    def _slot_name(self) -> str:
        if _DEFAULT_SLOT in self._models or len(self._models) != 1:
            return _DEFAULT_SLOT
        return next(iter(self._models))

    @property
    def model(self) -> Optional[nn.Module]:
        if '_models' not in self.__dict__:
            return None
        name = self._slot_name()
        if self.__dict__.get('_ddp_active') and name in self._ddp:
            return self._ddp[name]
        return self._models.get(name)

    @model.setter
    def model(self, model: Optional[nn.Module]) -> None:
        self._require_init('setting self.model')
        if model is None:
            for registry in (self._models, self._optims, self._scheds):
                registry.pop(_DEFAULT_SLOT, None)
            return
        if any(registered is model for registered in self._models.values()):
            return                                   # already registered (under any name): nothing to add
        self.register_model(_DEFAULT_SLOT, model, self._optims.get(_DEFAULT_SLOT), self._scheds.get(_DEFAULT_SLOT))
        self._attribute_slot = True

    @property
    def optimizer(self) -> Optional[torch.optim.Optimizer]:
        return self._optims.get(self._slot_name()) if '_optims' in self.__dict__ else None

    @optimizer.setter
    def optimizer(self, optimizer: Optional[torch.optim.Optimizer]) -> None:
        self._require_init('setting self.optimizer')
        self._optims[self._slot_name()] = optimizer

    @property
    def scheduler(self) -> Any:
        return self._scheds.get(self._slot_name()) if '_scheds' in self.__dict__ else None

    @scheduler.setter
    def scheduler(self, scheduler: Any) -> None:
        self._require_init('setting self.scheduler')
        self._scheds[self._slot_name()] = scheduler

    def get_model_names(self, names: Names = None) -> List[str]:
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in self._models]
        if unknown:
            raise KeyError(f'unknown model name(s) {unknown}; registered: {names_real}')
        return list(names)

    def _slots(self) -> Dict[str, ModelSlot]:
        return OrderedDict((n, ModelSlot(self._models[n], self._optims.get(n), self._scheds.get(n)))
                           for n in self.get_model_names())

    def set_model_mode(self, mode: str = 'train', names: Names = None) -> None:
        if mode not in ('train', 'eval', 'test'):
            raise ValueError(f"mode must be 'train', 'eval' or 'test', got {mode!r}")
        for name in self.get_model_names(names):
            self._models[name].train(mode == 'train')

    def get_current_lr(self, names: Names = None) -> float:
        name = self.get_model_names(names)[0]
        optim = self._optims.get(name)
        if optim is None:
            raise ValueError(f'model {name!r} has no optimizer registered')
        return optim.param_groups[-1]['lr']

    def update_lr(self, names: Names = None) -> None:
        for name in self.get_model_names(names):
            if self._scheds.get(name) is not None:
                self._scheds[name].step()

    @property
    def rank1(self) -> Optional[float]:
        """Rank-1 of the last test, as Torchreid's ``test()`` returned it: that of the last target evaluated
        (Torchreid's loop keeps the last value), skipping targets whose labels are hidden; None when no
        target has labels."""
        if not self.last_test_results:
            return None
        value = None
        for res in self.last_test_results.values():
            if res.get('rank1') is not None:
                value = float(res['rank1'])
        return value

    @property
    def last_results(self) -> Optional[Dict[str, dict]]:
        """Same as :attr:`last_test_results` (``{target: results}`` of the last :meth:`test`)."""
        return self.last_test_results

    # ------------------------------------------------------------------ precision / device helpers
    def autocast(self) -> ContextManager:
        """Context for forward passes: ``torch.autocast`` with the engine's precision, or a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, imgs: torch.Tensor) -> torch.Tensor:
        """Move an input batch to the device (channels-last when asked)."""
        imgs = imgs.to(self.device, non_blocking=True)
        if self.channels_last and imgs.dim() == 4:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        return imgs

    def forward_train_batch(self, data: Dict[str, Any]) -> Tuple[Any, torch.Tensor]:
        """Move a training batch to the device and run ``self.model`` under autocast: ``(outputs, pids)``."""
        imgs, pids = self.parse_data_for_train(data)
        imgs = self.to_device(imgs)
        pids = pids.to(self.device)
        with self.autocast():
            outputs = self.model(imgs)
        return outputs, pids

    def backward_and_step(self, loss: torch.Tensor, names: Names = None) -> None:
        """Zero the grads, backpropagate ``loss``, clip, and step the optimizers of ``names``.

        Handles the fp16 gradient scaler (gradients are unscaled before clipping). With ``grad_clip`` the
        total norm before clipping is kept in :attr:`last_grad_norm`.
        """
        names = self.get_model_names(names)
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            # Before backward(): the step is not applied, so the weights in memory stay those of the last step.
            self._stop_non_finite('loss', float(loss.detach().float().reshape(-1)[0]))
        optims = [(n, self._optims[n]) for n in names if self._optims[n] is not None]
        first, last, window = self._accumulation_window()
        if first:
            for _, optim in optims:
                optim.zero_grad(set_to_none=True)
        if window > 1:
            loss = loss / window
        # Under DDP the gradients are averaged across ranks in the backward of the window's last batch only.
        with contextlib.ExitStack() as stack:
            if not last:
                for name in names:
                    if self._ddp_active and name in self._ddp:
                        stack.enter_context(self._ddp[name].no_sync())
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        if not last:
            return
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
        if self.ema is not None:
            self.ema.update(self._models[self.get_model_names()[0]])

    # ------------------------------------------------------------------ EMA of the weights
    def use_ema(self, decay: float, warmup_updates: int = 2000) -> None:
        """Keep an exponential moving average of the first model's weights (:class:`torchreid.optim.ModelEMA`),
        updated after each optimizer step of :meth:`backward_and_step`. Tests and exports then use the averaged
        weights, and checkpoints hold its state under ``'ema'`` (restored by :meth:`resume`). Call it before
        resuming. ``decay`` 0 turns it off."""
        if not decay:
            self.ema = None
            return
        from torchreid.optim import ModelEMA

        self.ema = ModelEMA(self._models[self.get_model_names()[0]], decay=decay, warmup_updates=warmup_updates)
        logger.info('EMA of the weights: %r', self.ema)

    @contextlib.contextmanager
    def evaluation_weights(self) -> Iterator[None]:
        """Context in which the first model holds the weights to evaluate: the EMA's when :meth:`use_ema` is on
        (the training weights are put back, bit for bit, on leaving), else its own."""
        if self.ema is None:
            yield
            return
        from torchreid.utils.model_utils import unwrap_model

        model = unwrap_model(self._models[self.get_model_names()[0]])
        training = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(training)

    def _accumulation_window(self) -> Tuple[bool, bool, int]:
        """``(first, last, size)`` of the gradient-accumulation window the current batch is in: gradients are
        zeroed at its first batch and applied at its last; the epoch's last window may be shorter."""
        n = self.grad_accum_steps
        if n == 1:
            return True, True, 1
        start = self.batch_idx - self.batch_idx % n
        size = n if not self.num_batches else max(1, min(n, self.num_batches - start))
        return self.batch_idx == start, self.batch_idx - start == size - 1, size

    # ------------------------------------------------------------------ data parallel
    def gather_for_loss(self, *tensors: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], ...]:
        """With ``gather_embeddings`` in a data-parallel run: every rank's ``tensors`` concatenated in rank order
        (gradients flow back to this rank's part, see :func:`torchreid.utils.distributed.all_gather_with_grad`);
        otherwise the tensors as they are. Call it with the embeddings and their labels (and actions)."""
        if not (self.gather_embeddings and self._ddp_active and tdist.is_distributed()) \
                or not all(t is None or isinstance(t, torch.Tensor) for t in tensors):
            return tensors  # (several heads' features: each head's loss on this rank's batch)
        return tuple(None if t is None else tdist.all_gather_with_grad(t) if t.requires_grad
                     else tdist.gather_in_order(t) for t in tensors)

    def _prepare_distributed(self) -> None:
        """Before training in a data-parallel run: shard the training sampler for this rank when it was built
        before the process group, and state the per-rank and global batch sizes."""
        if not tdist.is_distributed():
            return
        world, rank = tdist.get_world_size(), tdist.get_rank()
        sampler = getattr(self.train_loader, 'sampler', None)
        replicas = getattr(sampler, 'num_replicas', None)
        if replicas is None:
            raise RuntimeError(f'data-parallel training ({world} ranks) needs a sharded training sampler; '
                               f'{type(sampler).__name__} is not one: build the data manager after '
                               'torch.distributed.init_process_group (its samplers then shard themselves)')
        if replicas != world:
            if not hasattr(sampler, 'shard'):
                raise RuntimeError(f'the training sampler serves {replicas} ranks but the process group has '
                                   f'{world}: build the data manager after torch.distributed.init_process_group')
            sampler.shard(world, rank)
        batch = getattr(self.train_loader, 'batch_size', None)
        if batch:
            lr = self.get_current_lr() if self.optimizer is not None else None
            logger.info('Data-parallel training on %d ranks (backend %s): batch size %d per rank, %d global '
                        '(%d per optimizer step with grad_accum_steps %d); %d steps per epoch; learning rate %s '
                        '(as configured: not scaled with the number of ranks)', world,
                        torch.distributed.get_backend(), batch, batch * world, batch * world * self.grad_accum_steps,
                        self.grad_accum_steps, len(self.train_loader), 'n/a' if lr is None else f'{lr:g}')

    def _ensure_ddp(self) -> None:
        """Wrap every trainable model in ``DistributedDataParallel`` (again when the set of trainable parameters
        changed, e.g. after the fixbase epochs): DDP synchronises the parameters that required gradients when it
        was built."""
        if not tdist.is_distributed():
            self._ddp_active = False
            return
        signature = tuple((name, tuple(p.requires_grad for p in model.parameters()))
                          for name, model in self._models.items())
        if signature != self._ddp_signature:
            self._ddp = {}
            for name, model in self._models.items():
                if not any(p.requires_grad for p in model.parameters()):
                    continue
                if self.sync_bn:
                    if self.device.type == 'cuda':
                        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                        self._models[name] = model
                    elif self._ddp_signature is None:
                        logger.warning('sync_bn: SyncBatchNorm needs CUDA; on %s each rank normalises its own '
                                       'batch', self.device)
                ids = [self.device.index] if self.device.type == 'cuda' and self.device.index is not None else None
                self._ddp[name] = nn.parallel.DistributedDataParallel(
                    model, device_ids=ids, find_unused_parameters=self.ddp_find_unused_parameters)
            self._ddp_signature = signature
        self._ddp_active = True

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics, which each rank updates on its own batch
        between DDP's broadcasts), so every rank evaluates the weights rank 0 saves."""
        if not tdist.is_distributed():
            return
        comm = tdist.communication_device()
        for model in self._models.values():
            for buffer in model.buffers():
                data = buffer.data.to(comm)
                torch.distributed.broadcast(data, src=0)
                if data is not buffer.data:
                    buffer.data.copy_(data)

    # ------------------------------------------------------------------ checkpoints
    def _checkpointer(self, save_dir: str, keep_last: Optional[int]) -> Checkpointer:
        dm = self.datamanager
        size = (dm.height, dm.width) if hasattr(dm, 'height') and hasattr(dm, 'width') else None
        description = {name: Checkpointer.describe(slot.model, input_size=size,
                                                    norm_mean=getattr(dm, 'norm_mean', None),
                                                    norm_std=getattr(dm, 'norm_std', None), config=self.config)
                       for name, slot in self._slots().items()}
        return Checkpointer(save_dir, keep_last=keep_last, description=description, writes=tdist.is_main_process())

    def _training_state(self, metric: Optional[float] = None, test_pending: bool = False) -> Dict[str, Any]:
        """What a checkpoint records besides the model states. ``test_pending``: the epoch is saved before its
        test; a run resumed from it runs that test first (the best model may be this epoch)."""
        return {'rank1': self.rank1 if metric is not None else None, 'metric_name': self.checkpoint_metric,
                'metric': metric, 'best_metric': self.best_metric, 'best_epoch': self.best_epoch,
                'mixed_precision': self.mixed_precision, 'test_pending': bool(test_pending),
                'ema': self.ema.state_dict() if self.ema is not None else None}

    def save_model(self, epoch: int, rank1: Optional[float] = None, save_dir: str = 'log', is_best: bool = False,
                   keep_last: Optional[int] = None, metric: Optional[float] = None) -> Dict[str, str]:
        """Save every registered model to ``<save_dir>/<name>/model.pth.tar-<epoch+1>`` (Torchreid's call shape).

        ``epoch`` is 0-based (Torchreid's convention); the file carries the number of completed epochs.
        """
        state = dict(self._training_state(metric), rank1=rank1)
        return self._checkpointer(save_dir, keep_last).save(self._slots(), epoch + 1, state, scaler=self.scaler,
                                                             is_best=is_best)

    def resume(self, fpath: CheckpointPaths, restore_rng: bool = True) -> int:
        """Restore weights, optimizer, scheduler, scaler, RNG states and best metric from checkpoint(s).

        Args:
            fpath: a path (single registered model) or a dict ``{model name: path}``.

        Returns:
            int: the epoch to start from (epochs already completed).
        """
        start_epoch, state = Checkpointer.resume(fpath, self._slots(), scaler=self.scaler, restore_rng=restore_rng)
        if self.ema is not None:
            if not state.get('ema'):
                raise KeyError(f'resume: "{fpath}" holds no EMA state (trained without it); resume without '
                               'use_ema / train.ema_decay, or train anew')
            self.ema.load_state_dict(state['ema'])
        if state.get('metric_name') is not None:
            self.checkpoint_metric = state['metric_name']
        self.best_metric = state.get('best_metric')
        self.best_epoch = state.get('best_epoch')
        names = self.get_model_names()
        paths = dict(fpath) if isinstance(fpath, Mapping) else {names[0]: fpath}
        # The next run() checks that model-best.pth.tar holds best_epoch (a kill may have cost it).
        self._resume_sources = {name: osp.dirname(osp.abspath(str(paths[name]))) for name in names}
        self._pending_test_epoch = start_epoch if state.get('test_pending') else None
        return start_epoch

    # ------------------------------------------------------------------ main loop
    def run(self, save_dir: str = 'log', max_epoch: int = TrainOptions.max_epoch,
            start_epoch: int = TrainOptions.start_epoch, print_freq: int = TrainOptions.print_freq,
            fixbase_epoch: int = TrainOptions.fixbase_epoch,
            open_layers: Optional[Sequence[str]] = TrainOptions.open_layers,
            start_eval: int = TrainOptions.start_eval, eval_freq: int = TrainOptions.eval_freq,
            test_only: bool = False, checkpoint_metric: str = TrainOptions.checkpoint_metric,
            save_freq: Optional[int] = TrainOptions.save_freq, keep_last: Optional[int] = TrainOptions.keep_last,
            resume: Optional[CheckpointPaths] = None, config: Optional[Mapping] = None,
            **eval_options: Any) -> Optional[Dict[str, dict]]:
        """Train for ``max_epoch`` epochs and/or evaluate (Torchreid's keywords, plus ours).

        The training keywords are the fields of :class:`TrainOptions` (retention: the newest ``keep_last``
        epoch checkpoints and ``model-best.pth.tar``); ``**eval_options`` those of :class:`EvalOptions`
        (Torchreid's ``dist_metric``, ``normalize_feature``, ``visrank``, ``visrank_topk``,
        ``use_metric_cuhk03``, ``ranks``, ``rerank``, ``export_ranking_results``; ours ``rerank_k1`` /
        ``rerank_k2`` / ``rerank_lambda``, ``query_expansion`` / ``qe_k`` / ``qe_alpha``, ``inverted_softmax``
        / ``inverted_softmax_temperature``, ``visrank_max_queries``, ``eval_metric``, ...); exports and
        pictures go to ``save_dir``. ``resume``: a checkpoint path (or ``{model name: path}``) to continue
        from; it overrides ``start_epoch``; ``'auto'``: the newest checkpoint in ``save_dir`` when there is one
        (a run restarted by torchrun's ``--max-restarts`` continues where it stopped). ``config``: the run's
        configuration, recorded in the checkpoints.

        Intermediate tests (``eval_freq``) neither export rankings nor draw pictures; the final test
        (after the last epoch, or ``test_only``) does what is asked. An epoch that is tested is saved before
        its test and saved again with its metric after it (``model-best.pth.tar`` then follows).

        A training run holds ``<save_dir>/.torchreid.lock`` (:class:`~torchreid.utils.io.RunLock`) and, holding
        it, removes the temporary files killed writes left there; a test-only run takes no lock. The log goes to
        ``<save_dir>/train.log`` (``test.log``), and to the console when the user has set up no logging; the
        results table and where the files went close the run.

        Returns:
            dict: ``{target: results}`` of the last test (see :attr:`last_test_results`), or None when no
            test ran.

        Raises:
            torchreid.utils.io.SaveDirInUseError: another live run trains in ``save_dir``.
            NonFiniteLossError: a loss became NaN / infinite (the bad step is neither applied nor saved).
            torchreid.utils.io.DiskFullError: a checkpoint could not be written (the previous ones are intact).
        """
        check_keywords('Engine.run', eval_options, EvalOptions.accepted_keywords())
        options = EvalOptions(save_dir=save_dir, **eval_options)
        train = TrainOptions(max_epoch=max_epoch, start_epoch=start_epoch, print_freq=print_freq,
                             fixbase_epoch=fixbase_epoch, open_layers=open_layers, start_eval=start_eval,
                             eval_freq=eval_freq, save_freq=save_freq, keep_last=keep_last,
                             checkpoint_metric=checkpoint_metric)
        if options.visrank and not test_only:
            logger.info('visrank is applied at the final test only')
        if not self._models:
            raise RuntimeError('no model registered: call register_model() in the engine constructor')
        if config is not None:
            self.config = config

        handler = console = None
        main_rank = tdist.is_main_process()  # in a data-parallel run only rank 0 writes files and logs
        if main_rank and find_file_handler(save_dir=save_dir) is None:
            handler = setup_logging(save_dir, 'test.log' if test_only else 'train.log')
        if main_rank:
            console = setup_console_logging()  # None when the user's logging shows the records already
        own_writer = False
        lock = None
        try:
            if not test_only and main_rank:
                # Refuses a second live run on this folder before anything is written (or deleted) there.
                lock = RunLock(save_dir)
                lock.acquire()
            if self.tensorboard and self.writer is None and main_rank:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=save_dir)
                own_writer = True
            with redirect_console_to_tqdm(_ask_progress(self.progress)):
                if isinstance(resume, str) and resume == 'auto':
                    resume = self._newest_checkpoints(save_dir)
                if resume:
                    start = self.resume(resume)
                    train = dataclasses.replace(train, start_epoch=start)
                if self._resume_sources is not None and self.checkpoint_metric != train.checkpoint_metric:
                    logger.warning('The checkpoint tracked the best %s; this run tracks %s from scratch',
                                   self.checkpoint_metric, train.checkpoint_metric)
                    self.best_metric, self.best_epoch = None, None
                self.checkpoint_metric = train.checkpoint_metric
                if test_only:
                    self.test(options, final=True)
                    results = self.last_test_results
                    self._log_results_table(results)
                    self._log_outputs(save_dir, results, handler, checkpoints=False)
                    return results
                self._check_evaluation(options)
                self._prepare_distributed()
                self.checkpointer = self._checkpointer(save_dir, train.keep_last)
                self.checkpointer.remove_leftovers(self.get_model_names())  # ours to clean: we hold the lock
                self._check_resumed_best()
                results = self._train_loop(train, options)
                self._log_outputs(save_dir, results, handler, checkpoints=True)
                return results
        finally:
            self._resume_sources = None
            self._ddp_active = False  # self.model is the bare model again
            if own_writer:
                # One event file per run, in that run's save_dir.
                self.writer.close()
                self.writer = None
            if lock is not None:
                lock.release()
            remove_logging(console)
            remove_logging(handler)

    def _newest_checkpoints(self, save_dir: str) -> Optional[Dict[str, str]]:
        """``run(resume='auto')``: ``{model name: newest model.pth.tar-<epoch>}`` in ``save_dir`` when every model
        has one of the same epoch (a restarted run continues), else None (a fresh start). In a data-parallel run
        rank 0 looks and every rank gets its answer."""
        found = None
        if tdist.is_main_process():
            checkpointer = Checkpointer(save_dir, keep_last=None)
            paths = {name: checkpointer.last_saved(name) for name in self.get_model_names()}
            epochs = {osp.basename(p).rsplit('-', 1)[-1] for p in paths.values() if p}
            if paths and all(paths.values()) and len(epochs) == 1:
                found = paths
                logger.info('resume="auto": continuing from %s', ', '.join(paths.values()))
            else:
                logger.info('resume="auto": no checkpoint in %s, starting afresh', save_dir)
        return tdist.broadcast_object(found)

    def _check_resumed_best(self) -> None:
        """After a resume: model-best.pth.tar must hold the recorded best epoch. A kill during its write leaves
        the previous best (or none) and the resumed run would never write it again: it is restored from that
        epoch's file; when no file holds those weights any more, the best is tracked afresh."""
        sources, self._resume_sources = self._resume_sources, None
        if sources is None or self.best_epoch is None:
            return
        if not self.checkpointer.ensure_best(self.get_model_names(), self.best_epoch, sources,
                                             metric_name=self.checkpoint_metric):
            self.best_metric, self.best_epoch = None, None

    def _train_loop(self, train: TrainOptions, options: EvalOptions) -> Optional[Dict[str, dict]]:
        self.max_epoch = train.max_epoch
        results = None
        pending, self._pending_test_epoch = self._pending_test_epoch, None
        if pending is not None and 0 < pending == train.start_epoch and train.evaluates_after(pending):
            logger.info('Epoch %d was saved before its test, which did not finish: testing it now', pending)
            self.epoch = pending - 1
            results = self._test_and_keep(train, options, pending, saved_before=False)
        if train.start_epoch >= train.max_epoch:
            if train.max_epoch > 0:
                if results is None:
                    logger.info('Nothing to train (start_epoch %d >= max_epoch %d): final test only',
                                train.start_epoch, train.max_epoch)
                    results = self._test_keep_rng(options, epoch=train.max_epoch, final=True)
                self._log_results_table(results)
            return results

        time_start = time.time()
        logger.info('=> Start training (epochs %d..%d)', train.start_epoch + 1, train.max_epoch)
        for self.epoch in range(train.start_epoch, train.max_epoch):
            done = self.epoch + 1
            self.train(print_freq=train.print_freq, fixbase_epoch=train.fixbase_epoch, open_layers=train.open_layers)
            if train.evaluates_after(done):
                results = self._test_and_keep(train, options, done, saved_before=True)
            elif train.saves_after(done):
                self.checkpointer.save(self._slots(), done, self._training_state(), scaler=self.scaler)
        logger.info('Elapsed %s', datetime.timedelta(seconds=round(time.time() - time_start)))
        if results is not None:
            self._log_results_table(results)
        return results

    def _test_and_keep(self, train: TrainOptions, options: EvalOptions, done: int,
                       saved_before: bool) -> Dict[str, dict]:
        """Test after ``done`` epochs and keep what the test decides.

        ``saved_before``: the epoch is saved first (``test_pending``), so a failing test or export, or a kill,
        costs no training. Then the checkpoint is written again with the test's metric, and
        ``model-best.pth.tar`` follows when it is the best; a provisional file that is neither due
        (``save_freq``) nor the best is removed.
        """
        due = train.saves_after(done)
        if saved_before:
            # The RNG states saved are those right after training (the test puts them back).
            self.checkpointer.save(self._slots(), done, self._training_state(test_pending=True), scaler=self.scaler,
                                   retain=False)
        results = self._test_keep_rng(options, epoch=done, final=done == train.max_epoch)
        metric = self._checkpoint_metric_value(results)
        is_best = False
        if metric is not None and (self.best_metric is None or metric > self.best_metric):
            self.best_metric, self.best_epoch, is_best = metric, done, True
            logger.info('New best %s: %.2f%% (epoch %d)', self.checkpoint_metric, 100 * metric, done)
        if is_best or due:
            self.checkpointer.save(self._slots(), done, self._training_state(metric), scaler=self.scaler,
                                   is_best=is_best)
        elif saved_before:
            self.checkpointer.discard(self.get_model_names(), done)
        return results

    def _test_keep_rng(self, options: EvalOptions, epoch: int, final: bool) -> Dict[str, dict]:
        # Evaluation must not consume training randomness (DataLoader iterators draw a seed from torch's
        # generator): put the states back afterwards so eval_freq does not change the trained weights.
        state = get_rng_state()
        try:
            self.test(options, epoch=epoch, final=final)
        finally:
            set_rng_state(state)
        return self.last_test_results

    def _checkpoint_metric_value(self, results: Dict[str, dict]) -> Optional[float]:
        for res in results.values():
            if res.get(self.checkpoint_metric) is not None:
                return float(res[self.checkpoint_metric])
        if not self._warned_no_metric:
            logger.warning('No target with labels: model-best.pth.tar is not written')
            self._warned_no_metric = True
        return None

    def train(self, print_freq: int = TrainOptions.print_freq, fixbase_epoch: int = TrainOptions.fixbase_epoch,
              open_layers: Optional[Sequence[str]] = TrainOptions.open_layers) -> Dict[str, float]:
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
        self._ensure_ddp()
        self.num_batches = len(self.train_loader)
        batch_time_sum, end = 0.0, time.time()
        bar = tqdm(self.train_loader, total=self.num_batches, desc=f'epoch {self.epoch + 1}/{self.max_epoch}',
                   disable=not (_ask_progress(self.progress) and tdist.is_main_process()), leave=False,
                   dynamic_ncols=True)
        for batch_idx, data in enumerate(bar):
            self.batch_idx = batch_idx
            summary = self.forward_backward(data)
            self._check_finite(summary)
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

    def forward_backward(self, data: Dict[str, Any]) -> Dict[str, float]:
        """One optimisation step on a batch; returns ``{name: float}`` (losses, accuracy...)."""
        raise NotImplementedError(f'{type(self).__name__} must implement forward_backward(data)')

    def _check_finite(self, summary: Optional[Mapping[str, Any]]) -> None:
        """Stop on a NaN / infinite value in ``forward_backward``'s summary (a subclass that steps its optimizer
        itself is caught here; :meth:`backward_and_step` catches the loss before the step)."""
        for name, value in (summary or {}).items():
            value = value.item() if hasattr(value, 'item') else value
            if isinstance(value, (int, float)) and not math.isfinite(value):
                self._stop_non_finite(name, float(value))

    def _stop_non_finite(self, name: str, value: float) -> None:
        where = f'epoch {self.epoch + 1}, batch {self.batch_idx + 1}'
        if self.num_batches:
            where += f'/{self.num_batches}'
        last = None
        if self.checkpointer is not None:
            last = self.checkpointer.last_saved(self.get_model_names()[0])
        kept = (f'the last good checkpoint is "{last}" (resume from it, e.g. with a lower learning rate or '
                f'grad_clip)' if last else 'no checkpoint was written yet')
        message = (f'{name} is {value} at {where}: training stopped. This state was not saved; {kept}.')
        logger.error(message)
        raise NonFiniteLossError(message)

    def two_stepped_transfer_learning(self, epoch: int, fixbase_epoch: int, open_layers: Optional[Sequence[str]],
                                      model: Optional[nn.Module] = None) -> None:
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
    def test(self, options: Optional[EvalOptions] = None, *, epoch: Optional[int] = None, final: bool = True,
             **overrides) -> Optional[float]:
        """Evaluate every target; Torchreid's keywords (``dist_metric=...``) work as overrides.

        Args:
            options: evaluation options; keyword overrides are applied on top.
            epoch: for TensorBoard (epochs completed).
            final: export rankings / draw pictures when asked (False for intermediate tests).

        Returns:
            float: rank-1 as Torchreid's ``test()`` returns it (:attr:`rank1`: the last target evaluated that has
            labels; None when every target's labels are hidden). Every target's results are in
            :attr:`last_test_results`: ``{target: {'mAP', 'rank1', 'mINP', 'cmc', 'ranks', 'num_queries',
            'num_gallery', 'num_valid_queries', 'eval_metric', 'hidden_labels', 'ranking_path'}}`` (the scores
            are None for hidden labels).
        """
        if options is None:
            check_keywords('Engine.test', overrides, EvalOptions.accepted_keywords())
            options = EvalOptions(**overrides)
        elif not isinstance(options, EvalOptions):
            raise TypeError(f'test(): options must be an EvalOptions, got {type(options).__name__} '
                            '(pass Torchreid options as keywords, e.g. test(dist_metric="cosine"))')
        elif overrides:
            options = options.replace(**overrides)
        if self.test_loader is None or len(self.test_loader) == 0:
            raise RuntimeError('the datamanager has no test loaders (no targets)')
        training_wrapped, self._ddp_active = self._ddp_active, False  # evaluate the bare models
        try:
            self._sync_buffers()
            self.set_model_mode('eval')
            results = OrderedDict()
            for name in self._target_names():
                loaders = self.test_loader[name]
                logger.info('##### Evaluating %s #####', name)
                results[name] = self._evaluate_target(name, loaders['query'], loaders['gallery'], options, final)
            # Rank 0 computed the metrics (the other ranks extracted their shares): every rank gets its results.
            results = tdist.broadcast_object(results)
        finally:
            self._ddp_active = training_wrapped
        self.last_test_results = results
        if self.writer is not None and epoch is not None:
            for name, res in results.items():
                for key in ('mAP', 'rank1', 'mINP'):
                    if res.get(key) is not None:
                        self.writer.add_scalar(f'Test/{name}/{key}', res[key], epoch)
        return self.rank1

    def _target_names(self) -> List[str]:
        targets = getattr(self.datamanager, 'targets', None)
        names = list(self.test_loader.keys())
        if targets:
            ordered = [t for t in targets if t in self.test_loader]
            return ordered + [n for n in names if n not in ordered]
        return names

    def _build_evaluator(self, name: str, query_set, opts: EvalOptions) -> metrics.ReIDEvaluator:
        """The evaluator of target ``name``: the protocol its dataset declares (or the one forced)."""
        eval_metric = metrics.resolve_eval_metric(getattr(query_set, 'eval_metric', None), opts.eval_metric,
                                                  opts.use_metric_cuhk03, target=name)
        return metrics.build_evaluator(eval_metric, opts.ranking, max_rank=opts.max_rank, use_cython=opts.use_cython)

    def _check_evaluation(self, opts: EvalOptions) -> None:
        """Build every target's evaluator once before training: an option a protocol refuses fails at once,
        not after the last epoch."""
        for name in self._target_names() if self.test_loader else ():
            self._build_evaluator(name, self.test_loader[name]['query'].dataset, opts)

    def _evaluate_target(self, name: str, query_loader, gallery_loader, opts: EvalOptions, final: bool) -> dict:
        qset, gset = query_loader.dataset, gallery_loader.dataset
        # Built before the features are extracted: an option the protocol refuses fails at once.
        evaluator = self._build_evaluator(name, qset, opts)
        hidden = bool(getattr(qset, 'hidden_labels', False))

        t0 = time.time()
        self.flip_test = opts.flip_test
        with self.evaluation_weights():
            qf, q_pids, q_camids = self._extract_sharded(query_loader, desc=f'{name} query')
            gf, g_pids, g_camids = self._extract_sharded(gallery_loader, desc=f'{name} gallery')
        if not tdist.is_main_process():
            return None  # rank 0 ranks, scores and exports once; test() hands its results to every rank
        logger.info('Extracted features: query %s, gallery %s (%.1f s)', tuple(qf.shape), tuple(gf.shape),
                    time.time() - t0)
        self._check_aligned(name, 'query', qset, qf)
        self._check_aligned(name, 'gallery', gset, gf)

        evaluation = evaluator.evaluate(metrics.FeatureSet(qf, q_pids, q_camids),
                                        metrics.FeatureSet(gf, g_pids, g_camids), hidden_labels=hidden)
        logger.info('Ranked %d queries with %s (%.2f s)', len(evaluation.rankings), opts.ranking.describe(),
                    evaluation.seconds)
        res = evaluation.summary(opts.ranks)
        res.update(hidden_labels=hidden, num_gallery=int(gf.shape[0]), ranking_path=None)
        if evaluation.result is None:
            logger.info('%s: labels are hidden, so CMC / mAP are not computed', name)
        else:
            logger.info('** Results (%s) **', name)
            logger.info('mAP: %.1f%%  mINP: %.1f%%  (valid queries: %d/%d)', 100 * res['mAP'], 100 * res['mINP'],
                        res['num_valid_queries'], res['num_queries'])
            logger.info('CMC curve')
            for r, v in res['ranks'].items():
                logger.info('Rank-%-3d: %.1f%%', r, 100 * v)

        if final and opts.export_ranking_results:
            # (the exporter logs where it wrote the file)
            res['ranking_path'] = evaluator.export(evaluation, getattr(qset, 'data_info', None),
                                                   getattr(gset, 'data_info', None), opts.save_dir, name)
        if final and opts.visrank:
            from torchreid.utils.reidtools import visualize_ranked_results

            out_dir = osp.join(opts.save_dir, 'visrank_' + name)
            visualize_ranked_results(evaluation.rankings, qset, gset, out_dir, topk=opts.visrank_topk,
                                     data_type=getattr(self.datamanager, 'data_type', 'image'),
                                     width=getattr(self.datamanager, 'width', 128),
                                     height=getattr(self.datamanager, 'height', 256),
                                     hidden_labels=hidden, max_queries=opts.visrank_max_queries)
            logger.info('Ranked results drawn in "%s"', out_dir)
        return res

    @staticmethod
    def _check_aligned(name: str, which: str, dataset, feats) -> None:
        data = getattr(dataset, 'data', None)
        if data is not None and len(data) != feats.size(0):
            raise RuntimeError(f'{name} {which}: {feats.size(0)} features extracted for {len(data)} records; '
                               'the test loader must visit every record once, in order (no sampler, no drop_last)')

    def _log_results_table(self, results: Dict[str, dict]) -> None:
        lines = ['| target | metric | mAP | rank-1 | mINP |', '|---|---|---|---|---|']
        for name, res in results.items():
            def pct(v):
                return '-' if v is None else f'{100 * v:.2f}'
            lines.append(f"| {name} | {res['eval_metric']}{' (hidden)' if res['hidden_labels'] else ''} | "
                         f"{pct(res['mAP'])} | {pct(res['rank1'])} | {pct(res['mINP'])} |")
        logger.info('Results\n%s', '\n'.join(lines))

    def _log_outputs(self, save_dir: str, results: Optional[Dict[str, dict]], handler: Optional[logging.Handler],
                     checkpoints: bool) -> None:
        """Say where the run wrote its files."""
        from torchreid.utils.checkpoint import BEST_CHECKPOINT_NAME

        lines = []
        log_handler = handler or find_file_handler(save_dir=save_dir)
        if log_handler is not None:
            lines.append(f'log: {log_handler.baseFilename}')
        if self.tensorboard:
            lines.append(f'TensorBoard events: {osp.abspath(save_dir)} (tensorboard --logdir {save_dir})')
        if checkpoints and self.checkpointer is not None:
            for name in self.get_model_names():
                last = self.checkpointer.last_saved(name)
                best = osp.join(self.checkpointer.model_dir(name), BEST_CHECKPOINT_NAME)
                text = f'checkpoints: {osp.abspath(self.checkpointer.model_dir(name))}'
                if last:
                    text += f' (last: {osp.basename(last)}'
                    text += f', best: {BEST_CHECKPOINT_NAME} = epoch {self.best_epoch})' if \
                        self.best_epoch is not None and osp.isfile(best) else ')'
                lines.append(text)
        for name, res in (results or {}).items():
            if res.get('ranking_path'):
                lines.append(f'rankings of {name}: {res["ranking_path"]}')
        if lines:
            logger.info('Outputs\n  %s', '\n  '.join(lines))

    # ------------------------------------------------------------------ features
    def _extract_sharded(self, loader: Any, desc: str) -> Tuple[torch.Tensor, Any, Any]:
        """:meth:`extract_features_from_loader` over the whole loader; in a data-parallel run each rank extracts
        a contiguous run of the loader's batches (the same batches one process makes, so the same numbers)
        and the features come back in the original order on every rank."""
        if not tdist.is_distributed() or not isinstance(loader, torch.utils.data.DataLoader) \
                or loader.batch_size is None or not hasattr(loader.dataset, '__len__'):
            return self.extract_features_from_loader(loader, desc=desc)
        total, batch = len(loader.dataset), loader.batch_size
        batches = tdist.shard_range(math.ceil(total / batch))
        indices = range(batches.start * batch, min(batches.stop * batch, total))
        feats, pids, camids = None, None, None
        if len(indices):
            shard = torch.utils.data.DataLoader(
                torch.utils.data.Subset(loader.dataset, indices), batch_size=batch, shuffle=False, drop_last=False,
                num_workers=loader.num_workers, pin_memory=loader.pin_memory, collate_fn=loader.collate_fn,
                worker_init_fn=loader.worker_init_fn)
            feats, pids, camids = self.extract_features_from_loader(shard, desc=desc)
        # [(feature shape, pids, camids)] of every rank in rank order (a rank without a share, when there are
        # more ranks than batches, sends None).
        shares = tdist.gather_objects_in_order([None if feats is None else (tuple(feats.shape[1:]), pids, camids)])
        held = [share for share in shares if share is not None]
        if feats is None:
            feats = torch.zeros((0,) + held[0][0])
        return (tdist.gather_in_order(feats), np.concatenate([share[1] for share in held]),
                np.concatenate([share[2] for share in held]))

    def extract_features(self, input: torch.Tensor) -> torch.Tensor:
        """Features of one batch of images (Torchreid's extension point: override it to change how features
        are computed, e.g. to concatenate two heads). ``input`` is the batch, already on the engine's device
        when the evaluation calls it (under ``torch.inference_mode``, the models in eval mode, autocast on).

        Passing a loader here is the older call shape of :meth:`extract_features_from_loader` (deprecated).
        """
        if not isinstance(input, torch.Tensor):
            warnings.warn('Engine.extract_features(loader) is deprecated: it extracts one batch (Torchreid\'s '
                          'hook); use extract_features_from_loader(loader) for a whole loader',
                          DeprecationWarning, stacklevel=2)
            return self.extract_features_from_loader(input)
        return self._models[self.get_model_names()[0]](self.to_device(input))

    def extract_features_from_loader(self, loader: Any, desc: str = 'features',
                                     flip: Optional[bool] = None) -> Tuple[torch.Tensor, Any, Any]:
        """Features of every image a test loader yields, in order, through the per-batch
        :meth:`extract_features` hook.

        Args:
            loader: an iterable of batches (dicts with ``'img'``, ``'pid'``, ``'camid'``; see
                :meth:`parse_data_for_eval`).
            desc: label of the progress bar.
            flip: average each image's features with its mirror's (flip test-time averaging); None: the
                engine's :attr:`flip_test` (set from ``EvalOptions.flip_test`` by the evaluation).

        Returns:
            ``(features FloatTensor [N, D] on the CPU, pids np.ndarray [N], camids np.ndarray [N])``.
        """
        from tqdm.auto import tqdm

        models = [self._models[n] for n in self.get_model_names()]
        modes = [m.training for m in models]
        for m in models:
            m.eval()
        feats, pids, camids = [], [], []
        try:
            with torch.inference_mode():
                total = len(loader) if hasattr(loader, '__len__') else None
                for data in tqdm(loader, total=total, desc=desc, disable=not _ask_progress(self.progress),
                                 leave=False, dynamic_ncols=True):
                    imgs, batch_pids, batch_camids = self.parse_data_for_eval(data)
                    with self.autocast():
                        imgs = self.to_device(imgs)
                        out = self.extract_features(imgs)
                        if (self.flip_test if flip is None else flip) and isinstance(out, torch.Tensor):
                            # flip test-time averaging: the mirror image's features, averaged before any
                            # normalisation (the ranking normalises afterwards when asked)
                            out = (out.float() + self.extract_features(imgs.flip(-1)).float()) / 2
                    if not isinstance(out, torch.Tensor):
                        raise TypeError(f'{type(self).__name__}.extract_features returned {type(out).__name__}; '
                                        'expected a feature tensor [B, D]')
                    feats.append(out.float().cpu())
                    pids.append(np.asarray(batch_pids))
                    camids.append(np.asarray(batch_camids))
        finally:
            for m, mode in zip(models, modes):
                m.train(mode)
        if not feats:
            raise RuntimeError(f'{desc}: the loader yielded no batch')
        return torch.cat(feats, 0), np.concatenate(pids), np.concatenate(camids)

    # ------------------------------------------------------------------ Torchreid helpers
    def compute_loss(self, criterion: Any, outputs: Any, targets: torch.Tensor, *args: Any,
                     **kwargs: Any) -> torch.Tensor:
        if isinstance(outputs, (tuple, list)):
            return DeepSupervision(criterion, outputs, targets, *args, **kwargs)
        return criterion(outputs, targets, *args, **kwargs)

    def parse_data_for_train(self, data: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        return data['img'], data['pid']

    def parse_data_for_eval(self, data: Dict[str, Any]) -> Tuple[torch.Tensor, Any, Any]:
        return data['img'], data['pid'], data['camid']
