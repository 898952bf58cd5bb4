#!/usr/bin/env python
"""Convert a weights / checkpoint file to safetensors (tensors only: it loads anywhere without unpickling).

Usage::

    python scripts/convert_weights.py model.pth.tar                       # -> model.safetensors
    python scripts/convert_weights.py old_torchreid.pth.tar out.safetensors --allow-unsafe-pickle

The model's tensors are taken from a bare state dict or from a checkpoint's ``state_dict`` / ``model`` entry
(``module.`` prefixes dropped). A legacy file that holds Python objects beyond tensors (older Torchreid
checkpoints) can only be read by unpickling it, which can run code from the file: that needs
``--allow-unsafe-pickle``, for a file you trust. Convert it once; use the safetensors file from then on.
"""
import argparse
import importlib.util
import logging
import os.path as osp
import sys

if importlib.util.find_spec('torchreid') is None:  # run from a checkout without installing
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

logger = logging.getLogger('convert_weights')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', help='weights or checkpoint file (torch.save format or safetensors)')
    parser.add_argument('output', nargs='?', default='',
                        help='the .safetensors file to write (default: beside the source, suffix replaced)')
    parser.add_argument('--allow-unsafe-pickle', action='store_true',
                        help='read a source that needs full unpickling (only for files you trust)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')

    import torch

    from torchreid.models.weights import SAFETENSORS_SUFFIX, read_weights_file, save_weights

    output = args.output
    if not output:
        base = args.source
        for suffix in ('.pth.tar', '.pth', '.pt', '.tar', '.bin', '.ckpt'):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        output = base + SAFETENSORS_SUFFIX
    if not output.endswith(SAFETENSORS_SUFFIX):
        parser.error(f'the output must end with {SAFETENSORS_SUFFIX}, got {output!r}')
    if osp.abspath(output) == osp.abspath(args.source):
        parser.error('the output would replace the source; name another output file')
    if osp.exists(output) and not args.overwrite:
        parser.error(f'{output} exists; pass --overwrite to replace it')
    content = read_weights_file(args.source, allow_unsafe_pickle=args.allow_unsafe_pickle)
    if isinstance(content, dict):
        for key in ('state_dict', 'model', 'model_state_dict'):
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not content:
        raise ValueError(f'{args.source}: no state dict found (it holds a {type(content).__name__})')
    tensors = {k: v for k, v in content.items() if torch.is_tensor(v)}
    dropped = sorted(str(k) for k in content if not torch.is_tensor(content[k]))
    if not tensors:
        raise ValueError(f'{args.source}: its state dict holds no tensors')
    if dropped:
        logger.warning('%s: %d non-tensor entries are not weights and were left out: %s', args.source,
                       len(dropped), ', '.join(dropped[:8]))
    save_weights(tensors, output, metadata={'converted_from': osp.basename(args.source)})
    logger.info('Wrote %s (%d tensors)', output, len(tensors))
    return 0


if __name__ == '__main__':
    from torchreid.utils.cli import run_cli

    sys.exit(run_cli(main))
