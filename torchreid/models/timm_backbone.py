"""Any timm model as a ReID backbone: ``build_model('timm/<timm model name>', num_classes, loss, pretrained)``.

The timm network (``timm.create_model(name, num_classes=0)``) becomes the single stage ``backbone`` of a
:class:`~torchreid.models.head.ReIDModel`, so the project's head (``fc_dims``, ``bnneck``, ``dropout``) and its
``fc`` / ``bnneck`` / ``classifier`` children work as for every other model, and the state-dict keys are timm's
own under ``backbone.``.

Pooling. With the head's default ``pooling='avg'`` the feature is **timm's own pooled output**
(``forward_head(..., pre_logits=True)``): a global average for CNNs (what ``avg`` means anyway), and for ViT /
CLIP towers the **CLS token after the final norm**, the vector those networks were pre-trained to make
meaningful (CLIP's image embedding is read there; TransReID's global branch too). timm's ``global_pool``
(``timm_kwargs={'global_pool': 'avg'}``: mean of the patch tokens) changes it. ``pooling='gem'`` / ``'max'``
pool the backbone's feature map themselves and need a CNN (a 2-D map; NHWC maps are transposed); a token
model then refuses with a clear error at the first forward.

Inputs. ViTs take non-square inputs with ``img_size=(256, 128)`` (position embeddings resampled when pretrained
weights are loaded) or ``dynamic_img_size=True``; ``grad_checkpointing=True`` calls timm's
``set_grad_checkpointing``. The normalisation the pretrained weights expect is exposed as
``model.default_normalization = {'mean': [..], 'std': [..]}`` (from ``timm.data.resolve_data_config``), the
input size they were trained at as ``model.default_input_size = (h, w)``.

CLIP image towers come from timm (e.g. ``timm/vit_base_patch16_clip_224.openai``,
``timm/vit_large_patch14_clip_224.openai``, ``timm/vit_base_patch16_clip_224.laion2b``) rather than open_clip:
timm is already a dependency, its towers are built without the text model, and they get everything above
(non-square inputs, gradient checkpointing, layer-wise lr decay through ``group_matcher``) from one API.
``num_classes=0`` drops CLIP's projection: the ReID head sits on the tower's CLS feature.

Pretrained weights, first match wins (the same rules and the same :class:`PretrainedWeightsWarning` as
:mod:`torchreid.models.weights`):

1. ``pretrained_path=<file>``;
2. ``$TORCHREID_WEIGHTS_DIR/timm/<name>_imagenet.pth`` (or ``.safetensors``), then the same under
   ``<torch hub dir>/checkpoints/`` (``scripts/convert_offline_weights.py`` writes such files);
3. the Hugging Face hub (``pretrained_cfg.hf_hub_id``): read from the local HF cache, downloaded into it only
   when neither ``TORCHREID_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set (connection timeout
   ``$TORCHREID_DOWNLOAD_TIMEOUT`` seconds, so a dead network fails fast, never hangs);
4. the plain URL of the pretrained config (same timeout, sha256 prefix checked).

Files are read without unpickling code (:func:`~torchreid.models.weights.read_weights_file`), handed to timm's
own loader (which adapts CLIP checkpoints and resamples position embeddings) and loaded **strictly**: every
backbone tensor comes from the file or none does (a warning, or an error with ``pretrained_strict=True``).
"""
import logging
import os
import os.path as osp
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .head import HeadOptions, ReIDModel, parse_model_kwargs
from .registry import register_model_family
from .weights import (OFFLINE_ENV, PretrainedWeightsError, PretrainOptions, _download_timeout, _download_to_cache,
                      _offline, local_imagenet_candidates, read_weights_file, report_unavailable)

__all__ = ['TIMM_PREFIX', 'TimmReIDModel', 'build_timm_model', 'timm_model_names', 'timm_model_exists',
           'timm_weight_files', 'timm_normalization']

logger = logging.getLogger(__name__)

#: ``build_model`` names starting with this build a timm model.
TIMM_PREFIX = 'timm/'

#: Keywords of ``build_model('timm/...')`` beyond the head's and the pretrained-weights ones (with defaults).
TIMM_EXTRA_KWARGS: Dict[str, Any] = {
    'img_size': None,            # int or (h, w): input size of a ViT (position embeddings sized for it)
    'dynamic_img_size': None,    # True: a ViT accepts any input size (position embeddings resampled per call)
    'drop_path_rate': None,      # stochastic depth of the backbone
    'grad_checkpointing': False,  # trade compute for memory (timm's set_grad_checkpointing)
    'timm_kwargs': None,         # dict of any further timm.create_model keywords (plain values)
}

_HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
_HF_OFFLINE_ENV = 'HF_HUB_OFFLINE'


def _timm():
    import timm  # imported on first use: `import torchreid` stays fast for CNN-only users

    return timm


def timm_model_exists(arch: str) -> bool:
    """True if timm builds ``arch`` (an architecture name, optionally with a pretrained tag)."""
    return bool(arch) and _timm().is_model(arch)


def timm_model_names(pattern: str = '*') -> List[str]:
    """timm's architecture names matching the fnmatch ``pattern``, and with ``'.'`` in the pattern the
    pretrained tags too (``'vit_*clip*.openai'``)."""
    timm = _timm()
    names = timm.list_models(pattern)
    if '.' in pattern:
        names = sorted(set(names) | set(timm.list_models(pattern, pretrained=True)))
    return names


class TimmReIDModel(ReIDModel):
    """A timm network (child ``backbone``) under the shared ReID head; see the module docstring.

    Besides :class:`ReIDModel`'s attributes it has ``timm_name``, ``default_normalization``,
    ``default_input_size``, and timm's hooks for optimisers: :meth:`group_matcher` (layer-wise lr decay)
    and :meth:`no_weight_decay` (position embeddings, class tokens), both named in this model's namespace.
    """

    def __init__(self, num_classes: int, loss: str, net: nn.Module, timm_name: str,
                 head: Optional[HeadOptions] = None):
        head = head or HeadOptions()
        use_timm_pooling = head.pooling == 'avg'
        dim = getattr(net, 'head_hidden_size', None) if use_timm_pooling else None
        super().__init__(num_classes, loss, [('backbone', net)], int(dim or net.num_features), head)
        self.timm_name = timm_name
        self.use_timm_pooling = use_timm_pooling
        self.backbone_output_fmt = str(getattr(net, 'output_fmt', 'NCHW'))
        data_cfg = _timm().data.resolve_data_config({}, model=net)
        self.default_normalization = {'mean': [float(v) for v in data_cfg['mean']],
                                      'std': [float(v) for v in data_cfg['std']]}
        # A ViT built for another size (img_size=...) expects that size, not its pretraining one.
        patch_embed_size = getattr(getattr(net, 'patch_embed', None), 'img_size', None)
        size = patch_embed_size if patch_embed_size is not None else data_cfg['input_size'][1:]
        self.default_input_size = (int(size[0]), int(size[1]))

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]``: timm's pooled feature as a 1x1 map (``pooling='avg'``) or the CNN's last map."""
        f = self.backbone.forward_features(x)
        if self.use_timm_pooling:
            return self.backbone.forward_head(f, pre_logits=True).flatten(1)[:, :, None, None]
        if self.backbone_output_fmt == 'NHWC' and f.dim() == 4:
            f = f.permute(0, 3, 1, 2)
        if f.dim() != 4:
            raise ValueError(
                f'{TIMM_PREFIX}{self.timm_name}: pooling={self.head_options.pooling!r} needs a CNN feature map '
                f'[B, C, h, w], but the backbone returns a tensor of shape {tuple(f.shape)} (tokens); use '
                f"pooling='avg' (timm's own pooled output: the CLS token for ViTs)")
        return f

    def group_matcher(self, coarse: bool = False) -> Callable[[str], Tuple[float, ...]]:
        """timm's layer grouping of the backbone (stem first, blocks by depth), the ReID head after the last
        backbone group; a callable ``name -> ordinal`` as ``timm.models.group_parameters`` accepts."""
        from timm.models import group_parameters

        backbone = self.backbone
        if hasattr(backbone, 'group_matcher'):
            inner = group_parameters(backbone, backbone.group_matcher(coarse=coarse), reverse=True)
        else:
            inner = {name: 0 for name, _ in backbone.named_parameters()}
        head_ordinal = (max(inner.values()) + 1) if inner else 0

        def ordinal(name: str) -> Tuple[float, ...]:
            if name.startswith('backbone.'):
                return (float(inner.get(name[len('backbone.'):], head_ordinal - 1)),)
            return (float(head_ordinal),)

        return ordinal

    def no_weight_decay(self) -> set:
        """Names (in this model) of the backbone tensors timm exempts from weight decay (position
        embeddings, class / distillation tokens)."""
        names = self.backbone.no_weight_decay() if hasattr(self.backbone, 'no_weight_decay') else set()
        return {f'backbone.{n}' for n in names}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the backbone's activations in backward (less memory, more compute)."""
        try:
            self.backbone.set_grad_checkpointing(enable)
        except (AssertionError, NotImplementedError, AttributeError) as exc:
            raise ValueError(f'{TIMM_PREFIX}{self.timm_name}: timm does not support gradient checkpointing for '
                             f'this model ({type(exc).__name__}: {exc})') from None


def timm_normalization(name: str) -> Optional[Dict[str, List[float]]]:
    """``{'mean', 'std'}`` the pretrained weights of ``'timm/<arch>'`` expect, read from timm's pretrained
    config without building the model (for configs that choose the normalisation before the model exists);
    None for a name outside the timm family or an architecture without a pretrained config."""
    if not name.startswith(TIMM_PREFIX):
        return None
    cfg = _pretrained_cfg(name[len(TIMM_PREFIX):])
    if cfg is None or getattr(cfg, 'mean', None) is None or getattr(cfg, 'std', None) is None:
        return None
    return {'mean': [float(v) for v in cfg.mean], 'std': [float(v) for v in cfg.std]}


def timm_weight_files(name: str, opts: Optional[PretrainOptions] = None) -> List[str]:
    """Local files searched, in order, for the weights of ``name`` (``'timm/<arch>'``): an explicit
    ``opts.path``, then ``<dir>/timm/<arch>_imagenet.pth`` and ``.safetensors`` in ``$TORCHREID_WEIGHTS_DIR``
    and the torch hub's ``checkpoints``."""
    if opts is not None and opts.path is not None:
        return [os.fspath(opts.path)]
    files = []
    for pth in local_imagenet_candidates(name):
        files += [pth, pth[:-len('.pth')] + '.safetensors']
    return files


def _hf_offline() -> bool:
    return os.environ.get(_HF_OFFLINE_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def _fetch_hf(hf_hub_id: str, filenames: Sequence[str], local_only: bool, timeout: float) -> str:
    """Path of the first of ``filenames`` of the hub repo in the HF cache, else (``local_only`` False)
    downloaded into it.

    One HEAD request without retries (``timeout`` seconds) decides whether the hub is reachable before
    ``hf_hub_download`` is called: on a dead network that call retries with back-off for about a minute.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo_id, _, revision = hf_hub_id.partition('@')
    revision = revision or None
    for filename in filenames:
        try:
            return hf_hub_download(repo_id, filename, revision=revision, local_files_only=True)
        except LocalEntryNotFoundError:
            continue
    if local_only:
        raise LocalEntryNotFoundError(f'none of {list(filenames)} is in the Hugging Face cache')
    for filename in filenames:
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), timeout=timeout,
                                 retry_on_errors=False)
        except EntryNotFoundError:  # this repo names its weights file otherwise
            continue
        return hf_hub_download(repo_id, filename, revision=revision, etag_timeout=timeout)
    raise EntryNotFoundError(f'the repository has none of {list(filenames)}')


def _remote_weights(name: str, cfg: Any) -> Tuple[Optional[str], str]:
    """``(local path, '')`` of the weights of the pretrained config ``cfg``, or ``(None, reason)``."""
    offline = _offline() or _hf_offline()
    why_offline = OFFLINE_ENV if _offline() else _HF_OFFLINE_ENV
    timeout = _download_timeout()
    reasons = []
    hf_hub_id = getattr(cfg, 'hf_hub_id', None)
    if hf_hub_id:
        files = [cfg.hf_hub_filename] if getattr(cfg, 'hf_hub_filename', None) else list(_HF_WEIGHT_FILES)
        try:
            return _fetch_hf(hf_hub_id, files, local_only=offline, timeout=timeout), ''
        except Exception as exc:  # network failures, offline mode, missing files: all mean "not here"
            where = 'not in the Hugging Face cache' + (f' and {why_offline} is set' if offline else '')
            reasons.append(f'Hugging Face hub {hf_hub_id}: {where} ({type(exc).__name__}: '
                           f'{str(exc).strip().splitlines()[0] if str(exc).strip() else ""})')
    url = getattr(cfg, 'url', None) or ''
    if url and not getattr(cfg, 'custom_load', False) and url.endswith(('.pth', '.bin', '.safetensors')):
        cache_file = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urllib.parse.urlparse(url).path))
        if osp.isfile(cache_file):
            return cache_file, ''
        if offline:
            reasons.append(f'{url}: not in the torch hub cache and {why_offline} is set')
        else:
            try:
                return _download_to_cache(url, cache_file, timeout), ''
            except Exception as exc:
                reasons.append(f'{url}: {type(exc).__name__}: {exc}')
    if not reasons:
        reasons.append('timm has no downloadable weights for it')
    return None, '; '.join(reasons)


def _pretrained_cfg(arch: str) -> Any:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(arch)


def _create(arch: str, create_kwargs: Mapping[str, Any], state_dict: Optional[Mapping[str, Any]],
            classifier_names: Sequence[str]) -> nn.Module:
    """``timm.create_model(arch, num_classes=0, ...)``, loading ``state_dict`` strictly through timm's loader
    (its checkpoint filter adapts CLIP files and resamples position embeddings) when given."""
    timm = _timm()
    if state_dict is None:
        return timm.create_model(arch, pretrained=False, num_classes=0, **create_kwargs)
    sd = {k: v for k, v in state_dict.items()
          if not any(k in (f'{c}.weight', f'{c}.bias') for c in classifier_names)}
    # num_classes=0 in the overlay too: timm then keeps its strict load (it relaxes it when it drops a head).
    return timm.create_model(arch, pretrained=True, num_classes=0, pretrained_strict=True,
                             pretrained_cfg_overlay={'state_dict': sd, 'num_classes': 0}, **create_kwargs)


def _as_state_dict(content: Any, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(content, Mapping):
        for key in ('state_dict', 'model', 'state_dict_ema', 'model_ema'):
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
        sd = {str(k)[len('module.'):] if str(k).startswith('module.') else str(k): v for k, v in content.items()}
        if sd and all(torch.is_tensor(v) for v in sd.values()):
            return sd
    raise PretrainedWeightsError(f'{path}: not a state dict of tensors (got {type(content).__name__})')


def build_timm_model(arch: str, num_classes: int, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> TimmReIDModel:
    """The factory behind ``build_model('timm/<arch>', ...)``; see the module docstring for the keywords."""
    name = TIMM_PREFIX + arch
    head, opts, extras = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained), extra=TIMM_EXTRA_KWARGS)
    create_kwargs: Dict[str, Any] = dict(extras['timm_kwargs'] or {})
    reserved = sorted(set(create_kwargs) & {'pretrained', 'num_classes', 'pretrained_cfg_overlay', 'features_only'})
    if reserved:
        raise TypeError(f'{name}: timm_kwargs must not set {reserved} (build_model sets them)')
    for key in ('img_size', 'dynamic_img_size', 'drop_path_rate'):
        if extras[key] is not None:
            create_kwargs[key] = tuple(extras[key]) if isinstance(extras[key], list) else extras[key]

    state_dict, source = None, ''
    if opts.pretrained:
        cfg = _pretrained_cfg(arch)
        local = next((p for p in timm_weight_files(name, opts) if osp.isfile(p)), None)
        if opts.path is not None and local is None:
            raise FileNotFoundError(f'{name}: pretrained_path={os.fspath(opts.path)!r} does not exist')
        path, reason = (local, '') if local else (_remote_weights(name, cfg) if cfg is not None
                                                  else (None, 'timm has no pretrained config for it'))
        if path is None:
            report_unavailable(name, 'timm pretrained weights', reason, opts)
        else:
            state_dict = _as_state_dict(read_weights_file(path, allow_unsafe_pickle=opts.allow_unsafe_pickle), path)
            source = path
        classifier = getattr(cfg, 'classifier', None) if cfg is not None else None
        classifier_names = [classifier] if isinstance(classifier, str) else list(classifier or ())
    else:
        classifier_names = []

    try:
        net = _create(arch, create_kwargs, state_dict, classifier_names)
    except (RuntimeError, KeyError, ValueError) as exc:
        if state_dict is None:
            raise
        detail = ' '.join(str(exc).split())[:400] or repr(exc)
        report_unavailable(name, f'timm pretrained weights from {source}',
                           f'the file does not load strictly into the model ({type(exc).__name__}: {detail})',
                           opts)
        net = _create(arch, create_kwargs, None, classifier_names)
    else:
        if state_dict is not None:
            logger.info('%s: loaded pretrained weights from %s', name, source)

    model = TimmReIDModel(num_classes, loss, net, arch, head)
    if extras['grad_checkpointing']:
        model.set_grad_checkpointing(True)
    return model


register_model_family(TIMM_PREFIX, build_timm_model, exists=timm_model_exists, names=timm_model_names,
                      source='timm')
