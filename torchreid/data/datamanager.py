"""Data managers: datasets + transforms + samplers -> the train loader and per-target test loaders.

:class:`ImageDataManager` for image datasets, :class:`VideoDataManager` for tracklet (video) datasets.
"""
import logging
import os
import random
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from torchreid.utils.model_utils import resolve_device

from .datasets import ImageDataset, init_image_dataset, init_video_dataset
from .datasets.dataset import SHARED_DATASET_OPTIONS
from .datasets.video import SAMPLE_METHODS, VideoDataset
from .samplers import build_train_sampler
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

logger = logging.getLogger(__name__)

__all__ = ['DataManager', 'ImageDataManager', 'VideoDataManager', 'worker_init_fn']

_ID_SAMPLERS = ('RandomIdentitySampler', 'RandomActionSampler', 'RandomActionGameSampler')


def worker_init_fn(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs in each worker from torch's per-worker seed.

    Torch seeds each worker (base_seed + worker_id, the base drawn from the main process's generator);
    without this, transforms using ``random``/``numpy`` would repeat across workers and epochs.
    """
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def usable_workers(workers: int) -> int:
    """The number of loader worker processes to start: ``workers``, at most one per available core.

    More workers than cores only compete with the training process for the CPU (and each test loader starts
    its own set: 200 asked for meant hundreds of processes).
    """
    if isinstance(workers, bool) or int(workers) != workers or workers < 0:
        raise ValueError(f'workers must be an int >= 0, got {workers!r}')
    cores = available_cpus()
    if workers > cores:
        logger.info('workers=%d is more than the %d CPU cores available: using %d loader workers', workers,
                    cores, cores)
        return cores
    return int(workers)


def _as_list(names: Union[None, str, Sequence[str]]) -> List[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    return list(names)


def _resolve_device(device: Union[str, int, torch.device, None], use_gpu: Optional[bool]) -> torch.device:
    """The project's :func:`resolve_device`, after mapping the deprecated ``use_gpu`` flag.

    ``use_gpu=True`` means what it meant in Torchreid, "CUDA if there is one" (``'auto'``); ``False`` is
    ``'cpu'``. An explicit ``device`` wins. Which device exists is decided by ``resolve_device`` alone.
    """
    if use_gpu is not None:
        warnings.warn('use_gpu is deprecated; pass device="cuda" or device="cpu"', DeprecationWarning, stacklevel=3)
        if device is None:
            device = 'auto' if use_gpu else 'cpu'
    return resolve_device(device)


class DataManager:
    """Base data manager (Torchreid shape): sources, targets, transforms, device."""
    data_type = 'image'

    def __init__(self, sources: Union[str, Sequence[str], None] = None,
                 targets: Union[str, Sequence[str], None] = None, height: int = 256, width: int = 128,
                 transforms: Union[str, Sequence[str], None] = 'random_flip',
                 norm_mean: Optional[Sequence[float]] = None, norm_std: Optional[Sequence[float]] = None,
                 device: Union[str, int, torch.device, None] = None, use_gpu: Optional[bool] = None):
        self.sources = _as_list(sources)
        if not self.sources:
            raise ValueError('sources must name at least one dataset')
        self.targets = _as_list(targets) or list(self.sources)
        self.height = int(height)
        self.width = int(width)
        self.device = _resolve_device(device, use_gpu)
        self.use_gpu = self.device.type == 'cuda'  # kept for Torchreid code that reads it
        # The normalisation the test transform applies; checkpoints record it so a model is used as trained.
        self.norm_mean = [float(x) for x in (IMAGENET_MEAN if norm_mean is None else norm_mean)]
        self.norm_std = [float(x) for x in (IMAGENET_STD if norm_std is None else norm_std)]
        self.transform_tr, self.transform_te = build_transforms(
            self.height, self.width, transforms=transforms, norm_mean=self.norm_mean, norm_std=self.norm_std)

    @property
    def num_train_pids(self) -> int:
        return self._num_train_pids

    @property
    def num_train_cams(self) -> int:
        return self._num_train_cams

    def fetch_test_loaders(self, name: str) -> Tuple[DataLoader, DataLoader]:
        """``(query_loader, gallery_loader)`` of target ``name``."""
        if name not in self.test_loader:
            raise KeyError(f'{name!r} is not a target; targets: {", ".join(self.test_loader)}')
        return self.test_loader[name]['query'], self.test_loader[name]['gallery']

    def preprocess_pil_img(self, img: Image.Image) -> torch.Tensor:
        """Apply the test transform to a PIL image (for inference on single images)."""
        return self.transform_te(img)


class ImageDataManager(DataManager):
    """Builds the training loader from ``sources`` and a query and a gallery loader per target.

    Each dataset name is read once (its folders walked once); query/gallery loaders get views of the
    same object in 'query'/'gallery' mode with the test transform. Keyword arguments follow Torchreid;
    the dataset options named in ``SHARED_DATASET_OPTIONS`` (``split_id``, ``market1501_500k``,
    ``soccernetv3_training_subset``, ``download``...) are passed to every dataset (those that do not use
    one ignore it).
    ``seed``: when set, identity/action samplers order each epoch by (seed, epoch) and
    :meth:`set_epoch` must be called on resume; when None, they draw from torch's global generator.
    ``num_pids_per_action``: identities per action in a ``RandomActionSampler`` batch (None: whole actions).
    ``epoch_length``: what one epoch of the identity/action samplers is: ``'identities'`` (Torchreid's: every
    identity once, K images each) or ``'images'`` (as many images as the training set holds).
    ``workers``: loader processes, at most one per available CPU core (more only compete for the CPU).
    ``check_ground_truth`` (SoccerNet-v3): compare the thumbnails on disk with the ground truth when it is there
    (a deleted file or action is found before training, not at the final test). ``verify_images``: ``'off'``,
    ``'header'`` (open every file) or ``'full'`` (decode every image) before anything runs.
    """

    def __init__(self, root: str = '', sources: Union[str, Sequence[str], None] = None,
                 targets: Union[str, Sequence[str], None] = None, height: int = 256, width: int = 128,
                 transforms: Union[str, Sequence[str], None] = 'random_flip', k_tfm: int = 1,
                 norm_mean: Optional[Sequence[float]] = None, norm_std: Optional[Sequence[float]] = None,
                 device: Union[str, int, torch.device, None] = None, use_gpu: Optional[bool] = None,
                 split_id: int = 0, combineall: bool = False, load_train_targets: bool = False,
                 batch_size_train: int = 32, batch_size_test: int = 32, workers: int = 4, num_instances: int = 4,
                 num_cams: int = 1, num_datasets: int = 1, train_sampler: str = 'RandomSampler',
                 train_sampler_t: str = 'RandomSampler', cuhk03_labeled: bool = False,
                 cuhk03_classic_split: bool = False, market1501_500k: bool = False,
                 soccernetv3_training_subset: float = 1.0, seed: Optional[int] = None, download: bool = True,
                 num_pids_per_action: Optional[int] = 4, epoch_length: str = 'identities',
                 check_ground_truth: bool = True, verify_images: Union[bool, str] = 'off'):
        # Each shared option is a parameter of this constructor; SHARED_DATASET_OPTIONS is the one list of
        # which are forwarded to the datasets (taken before any other local variable exists).
        arguments = locals()
        shared_options = {name: arguments[name] for name in SHARED_DATASET_OPTIONS}
        super().__init__(sources=sources, targets=targets, height=height, width=width, transforms=transforms,
                         norm_mean=norm_mean, norm_std=norm_std, device=device, use_gpu=use_gpu)
        self.workers = usable_workers(workers)
        self.epoch_length = epoch_length
        self.seed = seed
        self.batch_size_train = batch_size_train
        self.batch_size_test = batch_size_test
        self.num_pids_per_action = num_pids_per_action
        pin_memory = self.device.type == 'cuda'
        self._dataset_kwargs = dict(root=root, k_tfm=k_tfm, combineall=combineall, **shared_options)
        self._datasets: Dict[str, ImageDataset] = {}
        loader_kwargs = dict(num_workers=self.workers, pin_memory=pin_memory,
                             worker_init_fn=worker_init_fn if self.workers > 0 else None,
                             persistent_workers=False)

        logger.info('=> Loading train (source) dataset(s): %s', ', '.join(self.sources))
        trainset = self._combined_trainset(self.sources, role='source')
        self._num_train_pids = trainset.num_train_pids
        self._num_train_cams = trainset.num_train_cams
        self.train_set = trainset
        self.train_loader = self._train_loader(trainset, train_sampler, batch_size_train, num_instances,
                                               num_cams, num_datasets, loader_kwargs)

        self.train_loader_t = None
        if load_train_targets:
            extra = [t for t in self.targets if t not in self.sources]
            if not extra:
                raise ValueError('load_train_targets=True needs a target that is not also a source')
            trainset_t = self._combined_trainset(extra, role='target')
            self.train_loader_t = self._train_loader(trainset_t, train_sampler_t, batch_size_train, num_instances,
                                                     num_cams, num_datasets, loader_kwargs)

        logger.info('=> Loading test (target) dataset(s): %s', ', '.join(self.targets))
        self.test_loader = {}
        self.test_dataset = {}
        for name in self.targets:
            dataset = self._dataset(name)
            loaders, records = {}, {}
            for mode in ('query', 'gallery'):
                view = dataset.with_mode(mode, transform=self.transform_te)
                loaders[mode] = DataLoader(view, batch_size=batch_size_test, shuffle=False, drop_last=False,
                                           **loader_kwargs)
                records[mode] = getattr(dataset, mode)
            self.test_loader[name] = loaders
            self.test_dataset[name] = records
        self.show_summary()

    # ----- building -----
    def _dataset(self, name: str) -> ImageDataset:
        if name not in self._datasets:
            self._datasets[name] = init_image_dataset(name, transform=None, mode='train', verbose=True,
                                                      **self._dataset_kwargs)
        return self._datasets[name]

    def _combined_trainset(self, names: Sequence[str], role: str) -> ImageDataset:
        parts = []
        for name in names:
            dataset = self._dataset(name)
            if not dataset.train:
                raise ValueError(f'{name!r} has no training data, so it cannot be a {role} dataset '
                                 '(it can only be a target: query/gallery)')
            parts.append(dataset.with_mode('train', transform=self.transform_tr))
        return sum(parts)  # a single part is returned as is; ``+`` keeps the first part's transform and mode

    def _train_loader(self, trainset: ImageDataset, sampler_name: str, batch_size: int, num_instances: int,
                      num_cams: int, num_datasets: int, loader_kwargs: Dict[str, Any]) -> DataLoader:
        sampler = build_train_sampler(trainset.train, sampler_name, batch_size=batch_size,
                                      num_instances=num_instances, num_cams=num_cams, num_datasets=num_datasets,
                                      num_pids_per_action=self.num_pids_per_action, seed=self.seed,
                                      epoch_length=self.epoch_length)
        return DataLoader(trainset, sampler=sampler, batch_size=batch_size, shuffle=False,
                          drop_last=self._drop_last(sampler_name, len(trainset.train), batch_size), **loader_kwargs)

    @staticmethod
    def _drop_last(sampler_name: str, num_items: int, batch_size: int) -> bool:
        # P x K batches must stay whole (Torchreid drops the tail). Random/sequential keep the tail,
        # unless it is a single image, which BatchNorm cannot train on.
        return sampler_name in _ID_SAMPLERS or num_items % batch_size == 1

    def set_epoch(self, epoch: int) -> None:
        """Tell seeded samplers the epoch (needed on resume when ``seed`` is set)."""
        for loader in (self.train_loader, self.train_loader_t):
            if loader is not None and hasattr(loader.sampler, 'set_epoch'):
                loader.sampler.set_epoch(epoch)

    # ----- reporting -----
    def summary_rows(self) -> List[Tuple[str, str, Union[int, str], int, int]]:
        rows = [('train', ', '.join(self.sources), self.num_train_pids, len(self.train_set.train),
                 self.num_train_cams)]
        for name in self.targets:
            for mode in ('query', 'gallery'):
                records = self.test_dataset[name][mode]
                hidden = self.test_loader[name][mode].dataset.hidden_labels
                ids = 'hidden' if hidden else len({r[1] for r in records})
                rows.append((mode, name, ids, len(records), len({r[2] for r in records})))
        return rows

    def show_summary(self) -> None:
        items = 'tracklets' if self.data_type == 'video' else 'images'
        lines = ['=> Loaded data',
                 f'  sources: {", ".join(self.sources)}  targets: {", ".join(self.targets)}',
                 f'  # train datasets: {len(self.sources)}  # train ids: {self.num_train_pids}  '
                 f'# train {items}: {len(self.train_set.train)}  # train cameras/actions: {self.num_train_cams}',
                 f'  image size: {self.height}x{self.width}  train batches/epoch: {len(self.train_loader)}']
        for subset, name, ids, images, cams in self.summary_rows()[1:]:
            lines.append(f'  {name} {subset}: {ids} ids, {images} {items}, {cams} cameras/actions')
        logger.info('\n'.join(lines))


class VideoDataManager(ImageDataManager):
    """Builds the loaders of video (tracklet) datasets: Torchreid's ``VideoDataManager``.

    Datasets come from the video registry (:func:`~torchreid.data.datasets.init_video_dataset`); a batch is
    ``[B, S, C, H, W]`` with ``S = seq_len`` frames per tracklet, chosen by ``sample_method`` (``'evenly'``,
    ``'random'`` or ``'all'``; the same for training and test, as in Torchreid). ``'all'`` gives clips of
    different lengths, so it needs ``batch_size_train=1`` and tests one tracklet per batch. The train loader
    drops an incomplete last batch (Torchreid). Everything else (sources / targets, samplers, ``seed``,
    ``device``, ``split_id``, ``download``...) works as in :class:`ImageDataManager`.
    """
    data_type = 'video'

    def __init__(self, root: str = '', sources: Union[str, Sequence[str], None] = None,
                 targets: Union[str, Sequence[str], None] = None, height: int = 256, width: int = 128,
                 transforms: Union[str, Sequence[str], None] = 'random_flip',
                 norm_mean: Optional[Sequence[float]] = None, norm_std: Optional[Sequence[float]] = None,
                 device: Union[str, int, torch.device, None] = None, use_gpu: Optional[bool] = None,
                 split_id: int = 0, combineall: bool = False, batch_size_train: int = 3, batch_size_test: int = 3,
                 workers: int = 4, num_instances: int = 4, num_cams: int = 1, num_datasets: int = 1,
                 train_sampler: str = 'RandomSampler', seq_len: int = 15, sample_method: str = 'evenly',
                 seed: Optional[int] = None, download: bool = True):
        if sample_method not in SAMPLE_METHODS:
            raise ValueError(f"sample_method must be one of {', '.join(SAMPLE_METHODS)}, got {sample_method!r}")
        if isinstance(seq_len, bool) or int(seq_len) != seq_len or int(seq_len) < 1:
            raise ValueError(f'seq_len must be a positive int, got {seq_len!r}')
        if sample_method == 'all':
            if batch_size_train != 1:
                raise ValueError("sample_method='all' gives every tracklet all its frames (clips of different "
                                 f'lengths), so batch_size_train must be 1, got {batch_size_train}')
            if batch_size_test != 1:
                logger.info("sample_method='all': test batches hold one tracklet (batch_size_test %s -> 1)",
                            batch_size_test)
                batch_size_test = 1
        self.seq_len = int(seq_len)
        self.sample_method = sample_method
        super().__init__(root=root, sources=sources, targets=targets, height=height, width=width,
                         transforms=transforms, norm_mean=norm_mean, norm_std=norm_std, device=device,
                         use_gpu=use_gpu, split_id=split_id, combineall=combineall,
                         batch_size_train=batch_size_train, batch_size_test=batch_size_test, workers=workers,
                         num_instances=num_instances, num_cams=num_cams, num_datasets=num_datasets,
                         train_sampler=train_sampler, seed=seed, download=download)

    def _dataset(self, name: str) -> VideoDataset:
        if name not in self._datasets:
            self._datasets[name] = init_video_dataset(name, transform=None, mode='train', verbose=True,
                                                      seq_len=self.seq_len, sample_method=self.sample_method,
                                                      **self._dataset_kwargs)
        return self._datasets[name]

    @staticmethod
    def _drop_last(sampler_name: str, num_items: int, batch_size: int) -> bool:
        return True  # Torchreid's video loader always drops an incomplete last batch
