#!/usr/bin/env python
"""Export a torchreid model to ONNX (dynamic batch axis) and check ONNX Runtime against PyTorch.

Usage::

    python scripts/export_onnx.py --model-name osnet_x1_0 --weights log/model/model.pth.tar \
        --height 256 --width 128 --output osnet_x1_0.onnx

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
    parser.add_argument('--model-name', '-m', required=True, help='name registered in torchreid.models')
    parser.add_argument('--weights', '-w', default='', help='checkpoint to load (load_pretrained_weights)')
    parser.add_argument('--num-classes', type=int, default=1,
                        help='classifier width to build (unused in eval mode; mismatching weights are skipped)')
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--output', '-o', required=True, help='path of the .onnx file')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--atol', type=float, default=1e-4, help='tolerance of the ONNX Runtime check')
    parser.add_argument('--no-check', action='store_true', help='skip the ONNX Runtime parity check')
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    from torchreid.models import build_model, load_pretrained_weights

    if args.weights and not osp.isfile(args.weights):
        raise FileNotFoundError(f'--weights "{args.weights}" is not a file')
    model = build_model(args.model_name, num_classes=args.num_classes, pretrained=False)
    if args.weights:
        load_pretrained_weights(model, args.weights)
    result = export_onnx(model, args.output, height=args.height, width=args.width, opset=args.opset,
                         check=not args.no_check, atol=args.atol)
    diff = 'not checked' if result['max_abs_diff'] is None else f"max |diff| {result['max_abs_diff']:.3g}"
    logger.info('%s: features of dimension %d, %s', result['path'], result['feature_dim'], diff)
    return 0


if __name__ == '__main__':
    sys.exit(main())
