"""Parameter initialisation and pretrained weights (torchvision's weights API, local files, the hub cache).

Where ImageNet weights come from, first match wins:

1. ``pretrained_path=<file>`` given to the model factory;
2. ``$TORCHREID_WEIGHTS_DIR/<model name>_imagenet.pth``;
3. ``<torch hub dir>/checkpoints/<model name>_imagenet.pth`` (Torchreid's cache convention; the hub dir is
   ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``);
4. torchvision's weights (``torchvision.models.ResNet50_Weights.IMAGENET1K_V1`` ...), read from the hub cache
   when present, otherwise downloaded into it (with a timeout, ``$TORCHREID_DOWNLOAD_TIMEOUT`` seconds, 30 by
   default, so an offline machine fails fast; the file's sha256 is checked against the prefix in its name).

When none can be had, the model keeps its random initialisation and a :class:`PretrainedWeightsWarning` says
which weights were wanted and where to put the file; with ``pretrained_strict=True`` it is a
:class:`PretrainedWeightsError` instead. ``TORCHREID_OFFLINE=1`` skips step 4's download (the cache is still
used).
"""
import dataclasses
import hashlib
import logging
import os
import os.path as osp
import pickle
import re
import sys
import urllib.parse
import urllib.request
import warnings
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn

from torchreid.utils.io import atomic_write

if TYPE_CHECKING:  # torchvision is imported by the model modules, not needed here at run time
    from torchvision.models import WeightsEnum

__all__ = [
    'init_params', 'init_classifier', 'load_pretrained_weights', 'load_matching_state_dict', 'LoadReport',
    'read_weights_file', 'save_weights', 'UnsafeWeightsFileError', 'UNSAFE_PICKLE_OPT_IN', 'is_head_key',
    'is_safetensors_file',
    'PretrainOptions', 'PretrainedWeightsWarning', 'PretrainedWeightsError', 'local_imagenet_candidates',
    'find_local_imagenet_file',
    'torchvision_weights_or_warn', 'load_local_imagenet_weights', 'report_unavailable',
]

logger = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = 'TORCHREID_WEIGHTS_DIR'
OFFLINE_ENV = 'TORCHREID_OFFLINE'
TIMEOUT_ENV = 'TORCHREID_DOWNLOAD_TIMEOUT'
_DEFAULT_TIMEOUT_S = 30.0
# torch.hub's HASH_REGEX: a file name like 'resnet18-f37072fd.pth' carries a prefix of its sha256.
_HASH_REGEX = re.compile(r'-([a-f0-9]*)\.')
_CHUNK = 1 << 20


class PretrainedWeightsWarning(UserWarning):
    """Pretrained weights were asked for but could not be (fully) loaded."""


_PKG_DIR = osp.dirname(osp.abspath(__file__))


def _warn(message):
    """``warnings.warn`` attributed to the first caller outside ``torchreid/models`` (the user's line)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and osp.dirname(osp.abspath(frame.f_code.co_filename)) == _PKG_DIR:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, PretrainedWeightsWarning, stacklevel=level)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were required (``pretrained_strict=True`` / ``strict=True``) but could not be loaded."""


# ----------------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------------
def init_params(module: nn.Module) -> None:
    """Torchreid's initialisation: kaiming-normal convs, norm layers weight 1 / bias 0, linears N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if getattr(m, 'weight', None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, 'bias', None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_classifier(linear: nn.Linear) -> None:
    """Classifier init from the BNNeck recipe: N(0, 0.001), zero bias (small logits at the start)."""
    if linear.weight.numel():  # num_classes=0 gives an empty layer; init of an empty tensor only warns
        nn.init.normal_(linear.weight, 0, 0.001)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# ----------------------------------------------------------------------------------------------------------
# loading a state dict by name and shape
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoadReport:
    """What :func:`load_pretrained_weights` did. Key names are the model's (``module.`` prefixes stripped)."""

    source: str
    loaded: List[str] = dataclasses.field(default_factory=list)
    #: ``(key, shape in the file, shape in the model)``
    shape_mismatch: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = dataclasses.field(default_factory=list)
    #: keys in the file that the model does not have
    unexpected: List[str] = dataclasses.field(default_factory=list)
    #: keys in the file deliberately left out (e.g. an ImageNet classifier)
    excluded: List[str] = dataclasses.field(default_factory=list)
    #: keys of the model that the file did not provide (they keep their current values)
    missing: List[str] = dataclasses.field(default_factory=list)

    @property
    def skipped(self) -> List[str]:
        """Every key of the file that was not loaded."""
        return [k for k, _, _ in self.shape_mismatch] + list(self.unexpected) + list(self.excluded)

    @property
    def backbone_missing(self) -> List[str]:
        """Model tensors outside the ReID head that the file did not provide (they keep random values)."""
        return [k for k in self.missing if not is_head_key(k)]

    @property
    def backbone_skipped(self) -> List[str]:
        """Keys of the file, outside the head and not excluded on purpose, that could not be loaded."""
        return [k for k in [k for k, _, _ in self.shape_mismatch] + list(self.unexpected) if not is_head_key(k)]

    @property
    def complete(self) -> bool:
        """True when every tensor of the model outside the ReID head came from the file."""
        return bool(self.loaded) and not self.backbone_missing

    def __str__(self) -> str:
        return (f'{self.source}: loaded {len(self.loaded)} tensors; skipped {len(self.shape_mismatch)} '
                f'(shape mismatch), {len(self.unexpected)} (not in the model), {len(self.excluded)} (excluded); '
                f'{len(self.missing)} model tensors not in the file')


#: First-level module names of the ReID head (``head.NEW_LAYER_NAMES``, and the per-branch classifiers of
#: Torchreid's multi-branch models): the layers a ReID checkpoint of another dataset or an ImageNet file is
#: not expected to provide.
HEAD_KEY_PREFIXES = ('fc', 'bnneck', 'classifier')


def is_head_key(key: str) -> bool:
    """True for a state-dict key of the ReID head (see :data:`HEAD_KEY_PREFIXES`)."""
    return key.split('.', 1)[0].startswith(HEAD_KEY_PREFIXES)


def _listed(keys: Sequence[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _strip_prefix(key, prefix='module.'):
    while key.startswith(prefix):
        key = key[len(prefix):]
    return key


def _extract_state_dict(obj, source):
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError(f'{source}: expected a state dict or a checkpoint dict, got {type(obj).__name__}')
    # A checkpoint (Torchreid's save_checkpoint, FastReID, ...) keeps the weights under one of these keys.
    for key in ('state_dict', 'model', 'model_state_dict'):
        if key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def load_matching_state_dict(model: nn.Module, state_dict: Union[Mapping[str, Any], nn.Module],
                             source: str = '<state dict>', exclude_prefixes: Sequence[str] = (),
                             strict: bool = False) -> LoadReport:
    """Copy into ``model`` every tensor of ``state_dict`` whose name and shape match; report the rest.

    ``exclude_prefixes``: keys (after stripping ``module.``) starting with one of these are never loaded.
    ``strict``: raise :class:`PretrainedWeightsError` if nothing was loaded or any non-excluded key of the
    file was skipped.
    """
    state_dict = _extract_state_dict(state_dict, source)
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module  # file keys lose their 'module.' prefix, so match against the bare model
    own = model.state_dict()
    report = LoadReport(source=str(source))
    matched = {}
    for raw_key, value in state_dict.items():
        key = _strip_prefix(str(raw_key))
        if any(key.startswith(p) for p in exclude_prefixes):
            report.excluded.append(key)
        elif key not in own or not torch.is_tensor(value):
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            report.shape_mismatch.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            matched[key] = value
    if matched:
        # strict=False: the keys not in `matched` keep their current values (reported as missing).
        model.load_state_dict(matched, strict=False)
    report.loaded = list(matched)
    report.missing = [k for k in own if k not in matched]

    logger.info('Loaded pretrained weights: %s', report)
    if report.shape_mismatch or report.unexpected:
        logger.warning('%s: skipped keys (shape mismatch: %s; not in the model: %s)', source,
                       [f'{k} {a}->{b}' for k, a, b in report.shape_mismatch], report.unexpected)
    if strict and (not matched or report.shape_mismatch or report.unexpected or report.backbone_missing):
        raise PretrainedWeightsError(
            f'Could not load {source} fully (strict): {report}; shape mismatch: {report.shape_mismatch}; not in '
            f'the model: {report.unexpected}; model tensors outside the head not in the file: '
            f'{_listed(report.backbone_missing)}')
    if not matched:
        _warn(f'No tensor of {source} matched the model by name and shape ({report}); the weights were NOT '
              f'loaded. Check the key names.')
    elif report.backbone_missing or report.backbone_skipped:
        problems = []
        if report.backbone_missing:
            problems.append(f'{len(report.backbone_missing)} model tensors outside the head keep their previous '
                            f'values: {_listed(report.backbone_missing)}')
        if report.backbone_skipped:
            problems.append(f'{len(report.backbone_skipped)} tensors of the file were skipped: '
                            f'{_listed(report.backbone_skipped)}')
        _warn(f'{source} loaded only partly ({report}): ' + '; '.join(problems)
              + '. Pass strict=True to make this an error.')
    return report


#: How a user allows full unpickling of one weights file, named in every refusal.
UNSAFE_PICKLE_OPT_IN = ('allow_unsafe_pickle=True (Python), model.allow_unsafe_pickle True (config) or '
                        '--allow-unsafe-pickle (benchmarks/baseline/main.py, scripts/export_onnx.py)')
SAFETENSORS_SUFFIX = '.safetensors'


class UnsafeWeightsFileError(PretrainedWeightsError):
    """A weights file can only be read by unpickling arbitrary Python objects, which can run code."""


def is_safetensors_file(path: str) -> bool:
    """True for a safetensors file, by suffix or by its header (8-byte length, then a JSON object)."""
    if path.endswith(SAFETENSORS_SUFFIX):
        return True
    try:
        with open(path, 'rb') as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b'{' and 0 < int.from_bytes(head[:8], 'little') < (1 << 32)


def read_weights_file(path: Union[str, 'os.PathLike[str]'], allow_unsafe_pickle: bool = False) -> Any:
    """The content of a weights / checkpoint file, read without running code from it.

    safetensors files (``.safetensors``, or any file with a safetensors header) are read with safetensors;
    any other file with ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only.
    A file that needs more (checkpoints of older Torchreid versions pickle optimizer objects, NumPy values,
    argparse namespaces) is refused with an :class:`UnsafeWeightsFileError`, unless ``allow_unsafe_pickle``:
    unpickling a file can execute arbitrary code, so only the user may ask for it, for a file they trust.
    Unreadable or corrupt files raise a :class:`PretrainedWeightsError` naming the file.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no such weights file: {path!r}')
    if is_safetensors_file(path):
        from safetensors.torch import load_file

        try:
            return load_file(path, device='cpu')
        except Exception as exc:  # safetensors raises its own SafetensorError on a corrupt file
            raise PretrainedWeightsError(f'{path}: not a readable safetensors file ({exc})') from None
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_unsafe_pickle:
            detail = str(exc).strip().splitlines()
            refused = next((line.strip() for line in detail if 'Unsupported global' in line), detail[0] if detail
                           else '')
            raise UnsafeWeightsFileError(
                f'{path}: refused: the file holds Python objects beyond tensors, and unpickling them can run '
                f'code ({refused}). If you trust the file, allow it with {UNSAFE_PICKLE_OPT_IN}; better, '
                f'convert it once to safetensors (python scripts/convert_weights.py {path} '
                f'--allow-unsafe-pickle) and use the converted file.') from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise PretrainedWeightsError(f'{path}: not a readable weights file ({type(exc).__name__}: '
                                     f'{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})') from None
    logger.warning('%s: loading with full unpickling because allow_unsafe_pickle=True (only for files you trust)',
                   path)
    return torch.load(path, map_location='cpu', weights_only=False)


def save_weights(model_or_state_dict: Union[nn.Module, Mapping[str, torch.Tensor]],
                 path: Union[str, 'os.PathLike[str]'], metadata: Optional[Mapping[str, str]] = None) -> str:
    """Write a model's weights atomically: safetensors for a ``.safetensors`` path, ``torch.save`` otherwise.

    safetensors files hold tensors only (``metadata``: optional str -> str pairs in the header), so they load
    anywhere without unpickling. DataParallel / ``torch.compile`` wrappers are unwrapped first.
    """
    from torchreid.utils.model_utils import unwrap_model

    path = os.fspath(path)
    if isinstance(model_or_state_dict, nn.Module):
        state_dict = unwrap_model(model_or_state_dict).state_dict()
    else:
        state_dict = _extract_state_dict(dict(model_or_state_dict), path)
    tensors = {}
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            raise TypeError(f'save_weights({path!r}): {key!r} is a {type(value).__name__}, not a tensor')
        # A contiguous copy that shares memory with no other entry: safetensors refuses shared storage.
        tensors[_strip_prefix(str(key))] = value.detach().to('cpu').contiguous().clone()
    if path.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import save

        data = save(tensors, metadata=dict(metadata) if metadata else None)
        with atomic_write(path, 'wb') as f:
            f.write(data)
    else:
        from torchreid.utils.io import atomic_torch_save

        atomic_torch_save(tensors, path)
    return path


def load_pretrained_weights(model: nn.Module, weight_path: Union[str, 'os.PathLike[str]'], strict: bool = False,
                            exclude_prefixes: Sequence[str] = (), allow_unsafe_pickle: bool = False) -> LoadReport:
    """Load the tensors of ``weight_path`` that match ``model`` by name and shape.

    ``weight_path`` is a safetensors file or a file saved with ``torch.save``: a bare state dict or a
    checkpoint dict holding it under ``'state_dict'`` (also ``'model'``). ``module.`` prefixes (DataParallel)
    are stripped. What is skipped (shape mismatch, not in the model, excluded) is logged, warned about when it
    is more than the ReID head, and returned in a :class:`LoadReport`. Files are read with
    :func:`read_weights_file` (never unpickling arbitrary objects unless ``allow_unsafe_pickle``).
    Raises ``FileNotFoundError`` for a missing file; see :func:`load_matching_state_dict` for ``strict``.
    """
    path = os.fspath(weight_path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'load_pretrained_weights: no such file: {path!r}')
    content = read_weights_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return load_matching_state_dict(model, content, source=path, exclude_prefixes=exclude_prefixes, strict=strict)


# ----------------------------------------------------------------------------------------------------------
# ImageNet weights for the model factories
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PretrainOptions:
    """How a factory gets its ImageNet weights (parsed once from the factory's kwargs)."""

    pretrained: bool = True
    #: an explicit local file; wins over everything else
    path: Optional[Union[str, 'os.PathLike[str]']] = None
    #: raise instead of warning when the weights cannot be loaded
    strict: bool = False
    #: the torchvision weights member to use (e.g. 'IMAGENET1K_V1', 'IMAGENET1K_V2', 'DEFAULT')
    imagenet_weights: str = 'IMAGENET1K_V1'
    #: read a local weights file even if that needs full unpickling (only for files the user trusts)
    allow_unsafe_pickle: bool = False


def local_imagenet_candidates(name: str) -> List[str]:
    """The local files searched (in this order) for ``name``'s ImageNet weights."""
    fname = f'{name}_imagenet.pth'
    candidates = []
    weights_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if weights_dir:
        candidates.append(osp.join(weights_dir, fname))
    candidates.append(osp.join(torch.hub.get_dir(), 'checkpoints', fname))
    return candidates


def find_local_imagenet_file(name: str, opts: PretrainOptions) -> Optional[str]:
    """The local ImageNet weights file for ``name`` or None. An explicit ``opts.path`` must exist."""
    if opts.path is not None:
        path = os.fspath(opts.path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{name}: pretrained_path={path!r} does not exist')
        return path
    for path in local_imagenet_candidates(name):
        if osp.isfile(path):
            return path
    return None


def report_unavailable(name: str, what: str, reason: str, opts: PretrainOptions,
                       cache_file: Optional[str] = None) -> None:
    """Warn (or raise, if ``opts.strict``) that ``name``'s ImageNet weights could not be loaded."""
    places = []
    if cache_file:
        places.append(f'{cache_file} (the torch hub cache; set TORCH_HOME to move it)')
    places.append(f'${WEIGHTS_DIR_ENV}/{name}_imagenet.pth')
    places.append(osp.join(torch.hub.get_dir(), 'checkpoints', f'{name}_imagenet.pth'))
    msg = (f"Pretrained ImageNet weights for model '{name}' ({what}) could not be loaded: {reason}. "
           f"To use them offline, put the file at one of: {'; '.join(places)}; or pass pretrained_path=<file>.")
    if opts.strict:
        raise PretrainedWeightsError(msg)
    msg += ' The model is randomly initialised (pass pretrained=False to silence this warning).'
    logger.warning(msg)
    _warn(msg)


def load_local_imagenet_weights(model: nn.Module, name: str, path: str, opts: PretrainOptions,
                                exclude_prefixes: Sequence[str] = ('classifier.',)) -> LoadReport:
    """Load an ImageNet weights file into a built model (the ImageNet classifier is excluded)."""
    logger.info('%s: loading ImageNet weights from %s', name, path)
    return load_pretrained_weights(model, path, strict=opts.strict, exclude_prefixes=exclude_prefixes,
                                   allow_unsafe_pickle=opts.allow_unsafe_pickle)


def _download_timeout():
    raw = os.environ.get(TIMEOUT_ENV, '')
    try:
        return float(raw) if raw else _DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f'{TIMEOUT_ENV}={raw!r} is not a number of seconds') from None


def _offline():
    return os.environ.get(OFFLINE_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def _download_to_cache(url, cache_file, timeout):
    """Download ``url`` to ``cache_file`` atomically, checking the sha256 prefix in the file's name.

    Done here rather than by torch.hub, which downloads without a timeout (a dead network hangs); the
    timeout goes to this one connection, never to the process-wide socket default. On any failure, a hash
    mismatch included, nothing is left at ``cache_file``.
    """
    match = _HASH_REGEX.search(osp.basename(cache_file))
    expected = match.group(1) if match else ''
    digest = hashlib.sha256()
    logger.info('Downloading %s to %s (timeout %gs)', url, cache_file, timeout)
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(cache_file, 'wb') as f:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
        # Raising inside atomic_write removes the temporary file: a corrupt download never reaches the cache.
        if not digest.hexdigest().startswith(expected):
            raise RuntimeError(f'{cache_file}: downloaded from {url}, its sha256 {digest.hexdigest()} does not '
                               f'start with {expected!r} (the hash prefix in the file name); the file was '
                               f'not kept')
    return cache_file


def torchvision_weights_or_warn(name: str, constructor: Callable[..., nn.Module], weights_enum: Type['WeightsEnum'],
                                opts: PretrainOptions, **ctor_kwargs: Any) -> nn.Module:
    """Build the torchvision network ``constructor(weights=..., **ctor_kwargs)`` with ImageNet weights.

    The weights file is read from the hub cache; when it is missing it is downloaded there first (with a
    timeout of ``$TORCHREID_DOWNLOAD_TIMEOUT`` seconds, and its sha256 checked). On any failure the network
    is built without weights and :func:`report_unavailable` warns or raises.
    """
    try:
        weights = weights_enum[opts.imagenet_weights]
    except KeyError:
        raise ValueError(f"{name}: imagenet_weights={opts.imagenet_weights!r} is not a member of "
                         f"{weights_enum.__name__} ({[w.name for w in weights_enum]})") from None
    what = f'torchvision {weights_enum.__name__}.{weights.name}'
    cache_file = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urllib.parse.urlparse(weights.url).path))
    if _offline() and not osp.isfile(cache_file):
        report_unavailable(name, what, f'{OFFLINE_ENV} is set and the file is not in the cache', opts, cache_file)
        return constructor(weights=None, **ctor_kwargs)
    try:
        if not osp.isfile(cache_file):
            _download_to_cache(weights.url, cache_file, _download_timeout())
        # torchvision finds the file in the hub cache and reads it from there.
        net = constructor(weights=weights, progress=False, **ctor_kwargs)
    except Exception as exc:  # network errors, a corrupt cache file, a hash mismatch: all mean "no weights"
        report_unavailable(name, what, f'{type(exc).__name__}: {exc}', opts, cache_file)
        return constructor(weights=None, **ctor_kwargs)
    logger.info('%s: loaded %s', name, what)
    return net
