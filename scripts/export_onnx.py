#!/usr/bin/env python
"""Export a torchreid model to ONNX (dynamic batch axis) and check ONNX Runtime against PyTorch.

Usage::

    # a checkpoint written by the engine describes its model and input size: nothing else to say
    python scripts/export_onnx.py --weights log/model/model-best.pth.tar --output model.onnx

    # any other weights file (Torchreid's, a bare state dict): name the model and the input size
    python scripts/export_onnx.py --model-name osnet_x1_0 --weights log/model/model.pth.tar \
        --height 256 --width 128 --output osnet_x1_0.onnx

``--height`` / ``--width`` default to the checkpoint's ``input_size``, else 256x128.

The exported graph maps ``input`` ``[batch, 3, H, W]`` (preprocessed as the test transform does: resize,
ToTensor, ImageNet normalisation) to ``features`` ``[batch, D]`` (the model in eval mode). After the export
the file is run with ONNX Runtime on a batch of another size than the one traced, and the outputs must
match PyTorch within ``--atol``; otherwise nothing is written.
"""
import argparse
import importlib.util
import io
import logging
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch

if importlib.util.find_spec('torchreid') is None:
    # Run from a checkout without installing: the package sits one folder up.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from torchreid.utils.io import atomic_write  # noqa: E402

logger = logging.getLogger('export_onnx')

#: ``(height, width)`` when neither the command line nor the checkpoint gives one (Torchreid's default).
DEFAULT_SIZE = (256, 128)

__all__ = ['export_onnx', 'check_onnx_parity', 'main']


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f'export_onnx needs the onnx and onnxruntime packages ({e}); install them with '
            '`pip install onnx onnxruntime`'
        ) from e
    return onnx, onnxruntime


def check_onnx_parity(model, onnx_model, inputs, atol=1e-4):
    """Run ``onnx_model`` (a file path or the serialised model as bytes) with ONNX Runtime on ``inputs`` and compare with ``model(inputs)``.

    Returns the largest absolute difference; raises AssertionError when it exceeds ``atol``.
    """
    _, ort = _require_onnx()
    model.eval()
    with torch.no_grad():
        expected = model(inputs).detach().cpu().numpy()
    session = ort.InferenceSession(onnx_model, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    actual = session.run(None, {input_name: inputs.detach().cpu().numpy()})[0]
    if actual.shape != expected.shape:
        raise AssertionError(f'ONNX output shape {actual.shape} differs from PyTorch output shape {expected.shape}')
    max_diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    if not max_diff <= atol:
        raise AssertionError(f'ONNX and PyTorch outputs differ by up to {max_diff:.3g} (> atol {atol:g})')
    return max_diff


class _ImageToFeatures(torch.nn.Module):
    """``forward(x) = model(x)``: the traced graph sees one tensor input, whatever optional arguments the
    model's own forward declares (the TorchScript exporter would otherwise trace their defaults as
    tensors)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def export_onnx(model, output_path, height=256, width=128, opset=17, batch_size=2, check=True, atol=1e-4,
                check_batch_size=3, seed=0):
    """Export ``model`` (eval mode, on CPU) to ``output_path`` with a dynamic batch axis.

    With ``check`` the exported file is compared with PyTorch on a random batch of ``check_batch_size``
    images (a size other than the traced one, so the dynamic axis is exercised). The model is exported and
    checked in memory; ``output_path`` is written (atomically) only once both succeeded.

    Returns a dict: ``path``, ``max_abs_diff`` (None without check), ``feature_dim``.
    """
    onnx, _ = _require_onnx()
    model = model.cpu().eval()
    # eval() on the wrapper too: the exporter restores the wrapper's mode afterwards, recursively.
    wrapper = _ImageToFeatures(model).eval()
    generator = torch.Generator().manual_seed(seed)
    dummy = torch.randn(batch_size, 3, height, width, generator=generator)
    output_path = os.fspath(output_path)
    kwargs = dict(
        input_names=['input'], output_names=['features'], opset_version=opset,
        dynamic_axes={'input': {0: 'batch'}, 'features': {0: 'batch'}}, do_constant_folding=True,
    )
    # Exported to memory and checked there: the file is written (atomically) only once both succeeded.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which needs the
        # onnxscript package; the TorchScript one handles these CNNs fine and needs nothing extra.
        warnings.simplefilter('ignore', DeprecationWarning)
        with torch.no_grad():
            try:
                torch.onnx.export(wrapper, (dummy,), buffer, dynamo=False, **kwargs)
            except TypeError as e:
                if 'dynamo' not in str(e):
                    raise
                torch.onnx.export(wrapper, (dummy,), buffer, **kwargs)  # torch < 2.5 has no dynamo argument
    serialized = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(serialized))
    max_diff = None
    if check:
        inputs = torch.randn(check_batch_size, 3, height, width, generator=generator)
        max_diff = check_onnx_parity(model, serialized, inputs, atol=atol)
        logger.info('ONNX Runtime matches PyTorch on a batch of %d: max |diff| = %.3g', check_batch_size,
                    max_diff)
    with torch.no_grad():
        feature_dim = int(model(dummy[:1]).reshape(1, -1).size(1))
    with atomic_write(output_path, 'wb') as f:
        f.write(serialized)
    logger.info('Exported %s', output_path)
    return {'path': output_path, 'max_abs_diff': max_diff, 'feature_dim': feature_dim}


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-name', '-m', default='',
                        help='name registered in torchreid.models; optional when --weights describes its model '
                             '(a checkpoint written by the engine), where it must agree with it')
    parser.add_argument('--weights', '-w', default='',
                        help='checkpoint to load; one that describes its model is rebuilt from it (strict load '
                             'outside the classifier), any other is loaded with load_pretrained_weights')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='classifier width to build (unused in eval mode; mismatching classifier weights '
                             'are skipped); default: the checkpoint\'s, else 1')
    parser.add_argument('--height', type=int, default=None,
                        help=f"input height; default: the checkpoint's input_size, else {DEFAULT_SIZE[0]}")
    parser.add_argument('--width', type=int, default=None,
                        help=f"input width; default: the checkpoint's input_size, else {DEFAULT_SIZE[1]}")
    parser.add_argument('--output', '-o', required=True, help='path of the .onnx file')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--atol', type=float, default=1e-4, help='tolerance of the ONNX Runtime check')
    parser.add_argument('--no-check', action='store_true', help='skip the ONNX Runtime parity check')
    parser.add_argument('--allow-unsafe-pickle', action='store_true',
                        help='read a --weights file that needs full unpickling (legacy Torchreid checkpoints; '
                             'unpickling can run code from the file: only for files you trust)')
    args = parser.parse_args(argv)
    if not args.model_name and not args.weights:
        parser.error('give --weights (a checkpoint that describes its model) or --model-name (or both)')
    for name in ('height', 'width', 'num_classes'):
        value = getattr(args, name)
        minimum = 0 if name == 'num_classes' else 1
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
    return parser, args


def _read_checkpoint(path, model_name, allow_unsafe_pickle=False):
    """The checkpoint dict at ``path``, or None when it cannot tell us anything (then ``model_name`` is
    needed and the weights go through load_pretrained_weights)."""
    from torchreid.models.weights import is_safetensors_file, read_weights_file

    if is_safetensors_file(path) and model_name:
        return None  # tensors only: weights for --model-name
    checkpoint = read_weights_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if not isinstance(checkpoint, dict):
        if not model_name:
            from torchreid.models import CheckpointError

            raise CheckpointError(f'--weights "{path}" holds a {type(checkpoint).__name__}, not a checkpoint dict, '
                                  f'so it does not describe its model; pass --model-name NAME')
        return None
    return checkpoint


def _build(args):
    """``(model, input_size or None)`` from the arguments (see the module docstring)."""
    from torchreid.models import (build_model, build_model_from_checkpoint, checkpoint_input_size,
                                  checkpoint_normalization, load_pretrained_weights)

    checkpoint = (_read_checkpoint(args.weights, args.model_name, args.allow_unsafe_pickle) if args.weights
                  else None)
    spec = checkpoint.get('model_spec') if checkpoint is not None else None
    if checkpoint is not None and (spec is not None or not args.model_name):
        # Self-describing (or, without --model-name, an error saying the file does not describe its model).
        if args.model_name and isinstance(spec, dict) and spec.get('name') != args.model_name:
            raise ValueError(f'--model-name {args.model_name!r} disagrees with --weights "{args.weights}", which '
                             f"describes a model named {spec.get('name')!r}; drop --model-name to export the "
                             f'checkpoint\'s model')
        model = build_model_from_checkpoint(checkpoint, num_classes=args.num_classes, device='cpu',
                                            source=args.weights)
        normalization = checkpoint_normalization(checkpoint, source=args.weights)
        if normalization is not None:
            logger.info('Inputs of the exported graph are normalised with mean %s and std %s (from the checkpoint)',
                        normalization['mean'], normalization['std'])
        return model, checkpoint_input_size(checkpoint, source=args.weights)
    num_classes = 1 if args.num_classes is None else args.num_classes
    model = build_model(args.model_name, num_classes=num_classes, pretrained=False)
    if args.weights:
        report = load_pretrained_weights(model, args.weights, allow_unsafe_pickle=args.allow_unsafe_pickle)
        if not report.complete:
            raise ValueError(f'--weights "{args.weights}" does not hold the weights of {args.model_name} '
                             f'({report}): exporting it would export a partly random network')
    return model, None


def main(argv=None):
    parser, args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.weights and not osp.isfile(args.weights):
        raise FileNotFoundError(f'--weights "{args.weights}" is not a file')
    model, recorded_size = _build(args)
    size = recorded_size or DEFAULT_SIZE
    height = args.height if args.height is not None else size[0]
    width = args.width if args.width is not None else size[1]
    if recorded_size is None and (args.height is None or args.width is None):
        logger.info('No input size recorded in the weights: --height %d --width %d', height, width)
    result = export_onnx(model, args.output, height=height, width=width, opset=args.opset,
                         check=not args.no_check, atol=args.atol)
    diff = 'not checked' if result['max_abs_diff'] is None else f"max |diff| {result['max_abs_diff']:.3g}"
    logger.info('%s: features of dimension %d for %dx%d inputs, %s', result['path'], result['feature_dim'],
                height, width, diff)
    return 0


if __name__ == '__main__':
    from torchreid.utils.cli import run_cli

    sys.exit(run_cli(main))
