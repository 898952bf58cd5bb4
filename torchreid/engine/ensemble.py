"""Ensembles of trained ReID models evaluated (and exported) as one model, and uniform weight averages (soups).

The 2023 SoccerNet winner ensembled three fine-tuned CLIP ViTs; 2022 entries averaged the weights of five.

* :class:`FeatureEnsemble`: an ``nn.Module`` whose eval forward returns the members' features, each
  L2-normalised, then concatenated (``'concat'``, the default: each member keeps its own geometry) or averaged
  (``'mean'``: members of one feature dimension). Members may differ in architecture, input size and pixel
  normalisation: the input arrives prepared for the first member (the data manager's size and normalisation)
  and is re-normalised and resized (bilinear, antialiased) for any member that expects otherwise. The engine,
  the evaluator and the ranking export see one model with one feature per image, so they work unchanged.
* :func:`build_ensemble_from_checkpoints`: the ensemble of self-describing checkpoints (their EMA weights
  when they kept one).
* :func:`average_checkpoints`: the uniform soup of fine-tuned checkpoints of one architecture.
"""
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['FeatureEnsemble', 'build_ensemble_from_checkpoints', 'average_checkpoints', 'ENSEMBLE_MODES',
           'SoupError']

logger = logging.getLogger(__name__)

ENSEMBLE_MODES = ('concat', 'mean')
Normalization = Mapping[str, Sequence[float]]


class SoupError(ValueError):
    """Checkpoints that cannot be averaged (different architectures, keys or shapes)."""


class FeatureEnsemble(nn.Module):
    """Several ReID models as one feature extractor (see the module docstring).

    Args:
        members: the trained models (each returns features ``[B, D_i]`` in eval mode).
        mode: ``'concat'`` or ``'mean'``.
        input_size: ``(height, width)`` of the input batches (the data's); None: no resizing.
        input_normalization: ``{'mean', 'std'}`` the inputs are normalised with; None: no re-normalisation.
        member_sizes / member_normalizations: what each member expects (None entries: the input's).

    The members stay in eval mode (an ensemble is for evaluation; :meth:`train` refuses training mode).
    """

    def __init__(self, members: Sequence[nn.Module], mode: str = 'concat',
                 input_size: Optional[Sequence[int]] = None, input_normalization: Optional[Normalization] = None,
                 member_sizes: Optional[Sequence[Optional[Sequence[int]]]] = None,
                 member_normalizations: Optional[Sequence[Optional[Normalization]]] = None):
        super().__init__()
        if mode not in ENSEMBLE_MODES:
            raise ValueError(f'FeatureEnsemble: mode must be one of {ENSEMBLE_MODES}, got {mode!r}')
        if len(members) < 1:
            raise ValueError('FeatureEnsemble: give at least one member')
        self.members = nn.ModuleList(members)
        self.mode = mode
        n = len(members)
        member_sizes = list(member_sizes) if member_sizes is not None else [None] * n
        member_normalizations = list(member_normalizations) if member_normalizations is not None else [None] * n
        if len(member_sizes) != n or len(member_normalizations) != n:
            raise ValueError(f'FeatureEnsemble: {n} members but {len(member_sizes)} sizes and '
                             f'{len(member_normalizations)} normalisations')
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self._resize = [None if s is None or self.input_size is None or tuple(int(v) for v in s) == self.input_size
                        else (int(s[0]), int(s[1])) for s in member_sizes]
        # per member: (scale, shift) turning the input's normalisation into the member's, or None
        self._renorm: List[Optional[Tuple[torch.Tensor, torch.Tensor]]] = []
        for norm in member_normalizations:
            if norm is None or input_normalization is None or (
                    list(norm['mean']) == list(input_normalization['mean'])
                    and list(norm['std']) == list(input_normalization['std'])):
                self._renorm.append(None)
                continue
            m_in, s_in = torch.tensor(input_normalization['mean']), torch.tensor(input_normalization['std'])
            m_out, s_out = torch.tensor(norm['mean']), torch.tensor(norm['std'])
            # x_out = (x_in * s_in + m_in - m_out) / s_out
            self._renorm.append(((s_in / s_out).view(1, 3, 1, 1), ((m_in - m_out) / s_out).view(1, 3, 1, 1)))
        dims = [getattr(m, 'feature_dim', None) for m in members]
        if mode == 'mean' and None not in dims and len(set(dims)) > 1:
            raise ValueError(f"FeatureEnsemble: mode 'mean' needs members of one feature dimension, got {dims}; "
                             "use 'concat'")
        self.feature_dim = (sum(dims) if mode == 'concat' else dims[0]) if None not in dims else None
        super().train(False)

    def train(self, mode: bool = True) -> 'FeatureEnsemble':
        if mode:
            raise RuntimeError('FeatureEnsemble is for evaluation: train each member on its own')
        return super().train(False)

    def member_input(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """The batch ``x`` prepared for member ``index`` (its normalisation and input size)."""
        renorm = self._renorm[index]
        if renorm is not None:
            scale, shift = renorm
            x = x * scale.to(x.device, x.dtype) + shift.to(x.device, x.dtype)
        size = self._resize[index]
        if size is not None:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for i, member in enumerate(self.members):
            out = member(self.member_input(x, i))
            if not isinstance(out, torch.Tensor):
                raise TypeError(f'FeatureEnsemble: member {i} ({type(member).__name__}) returned '
                                f'{type(out).__name__}; expected features [B, D] (eval mode)')
            feats.append(F.normalize(out.float().flatten(1), dim=1))
        if self.mode == 'concat':
            return torch.cat(feats, dim=1)
        if len({f.size(1) for f in feats}) > 1:
            raise ValueError(f"FeatureEnsemble: mode 'mean' needs one feature dimension, got "
                             f'{[f.size(1) for f in feats]}')
        return torch.stack(feats, 0).mean(0)


def build_ensemble_from_checkpoints(paths: Sequence[Union[str, 'os.PathLike[str]']], mode: str = 'concat',
                                    device: Any = None) -> Tuple[FeatureEnsemble, Dict[str, Any]]:
    """The ensemble of self-describing checkpoints (their EMA weights when they kept one).

    Returns ``(ensemble, first checkpoint)``: the data must be prepared as the first member's (its
    ``input_size`` and ``normalization``; :func:`torchreid.models.checkpoint_input_size` /
    ``checkpoint_normalization``); the others are adapted inside the ensemble.
    """
    from torchreid.models import build_model_from_checkpoint, checkpoint_input_size, checkpoint_normalization
    from torchreid.optim.ema import evaluation_checkpoint
    from torchreid.utils.checkpoint import load_checkpoint

    if not paths:
        raise ValueError('build_ensemble_from_checkpoints: give at least one checkpoint')
    members, sizes, norms, first = [], [], [], None
    for path in paths:
        path = os.fspath(path)
        checkpoint = load_checkpoint(path)
        if not isinstance(checkpoint, dict) or not checkpoint.get('model_spec'):
            raise ValueError(f'ensemble member "{path}" does not describe its model (no model_spec): ensembles '
                             'take checkpoints written by the engine')
        checkpoint = evaluation_checkpoint(checkpoint)
        model = build_model_from_checkpoint(checkpoint, device=device, source=path)
        members.append(model.eval())
        sizes.append(checkpoint_input_size(checkpoint, source=path))
        norms.append(checkpoint_normalization(checkpoint, source=path))
        first = checkpoint if first is None else first
        logger.info('Ensemble member %d: %s (%s)', len(members), checkpoint['model_spec']['name'], path)
    ensemble = FeatureEnsemble(members, mode=mode, input_size=sizes[0], input_normalization=norms[0],
                               member_sizes=sizes, member_normalizations=norms)
    return ensemble, first


def average_checkpoints(paths: Sequence[Union[str, 'os.PathLike[str]']]) -> Dict[str, Any]:
    """The uniform soup of checkpoints of one architecture: a self-describing checkpoint whose ``state_dict`` is
    the mean of theirs (their EMA weights when they kept one; integer buffers such as BatchNorm's
    ``num_batches_tracked`` are taken from the first). Its description (architecture, input size,
    normalisation, configuration) is the first's; ``soup_of`` lists the sources.

    Raises :class:`SoupError` naming the files when the architectures (name and keywords), the tensor names or
    their shapes differ.
    """
    from torchreid.optim.ema import evaluation_checkpoint
    from torchreid.utils.checkpoint import load_checkpoint

    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise SoupError(f'a soup averages at least 2 checkpoints, got {len(paths)}')
    first_path, first, total = paths[0], None, None
    for path in paths:
        checkpoint = load_checkpoint(path)
        if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
            raise SoupError(f'"{path}" is not a checkpoint with a state_dict')
        checkpoint = evaluation_checkpoint(checkpoint)
        state = checkpoint['state_dict']
        if first is None:
            first = checkpoint
            if not checkpoint.get('model_spec'):
                raise SoupError(f'"{path}" does not describe its model (no model_spec): a soup is written as a '
                                'self-describing checkpoint; use checkpoints written by the engine')
            total = {k: v.detach().double().clone() if v.is_floating_point() else v.clone() for k, v in state.items()}
            continue
        if checkpoint.get('model_spec') != first.get('model_spec'):
            raise SoupError(f'"{path}" holds {checkpoint.get("model_spec")}, "{first_path}" holds '
                            f'{first.get("model_spec")}: a soup averages fine-tuned checkpoints of ONE architecture '
                            '(for different ones, evaluate them as an ensemble: model.ensemble)')
        if set(state) != set(total):
            extra, missing = sorted(set(state) - set(total)), sorted(set(total) - set(state))
            raise SoupError(f'"{path}" and "{first_path}" hold different tensors (only in the first: '
                            f'{missing[:5]}; only in "{path}": {extra[:5]})')
        for key, value in state.items():
            if tuple(value.shape) != tuple(total[key].shape):
                raise SoupError(f'"{path}": {key} has shape {tuple(value.shape)}, "{first_path}" '
                                f'{tuple(total[key].shape)}')
            if value.is_floating_point():
                total[key] += value.double()
    n = len(paths)
    averaged = {k: (v / n).to(first['state_dict'][k].dtype) if v.is_floating_point() else v for k, v in total.items()}
    keep = ('model_spec', 'input_size', 'normalization', 'config', 'torchreid_version', 'epoch')
    soup = {k: first[k] for k in keep if k in first}
    soup.update(state_dict=averaged, soup_of=list(paths))
    return soup
