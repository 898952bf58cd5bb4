"""Average fine-tuned checkpoints of one architecture into one self-describing checkpoint (a uniform model soup).

    python scripts/model_soup.py log/a/model/model-best.pth.tar log/b/model/model-best.pth.tar \
        log/c/model/model-best.pth.tar -o log/soup.pth.tar

Wortsman et al. ("Model soups", 2022): the uniform average of the weights of models fine-tuned from the same
pretrained weights often beats each of them at no test-time cost (Comandur's SoccerNet entry: a soup of five
ViT-L, 89.8 test mAP against 86.0 for one ViT-B). Each checkpoint contributes its EMA weights when its run kept
an EMA. The output describes itself like the inputs (architecture, input size, normalisation, configuration),
so ``test.evaluate True model.load_weights <soup>``, ``FeatureExtractor.from_checkpoint`` and the ONNX export
take it as they take any checkpoint. Checkpoints of different architectures, tensor names or shapes are
refused, naming the files (evaluate those as an ensemble instead: ``model.ensemble``).
"""
import argparse
import logging
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isdir(osp.join(_REPO, 'torchreid')) and _REPO not in sys.path:  # run from a checkout, not installed
    sys.path.insert(0, _REPO)

logger = logging.getLogger('torchreid.model_soup')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoints', nargs='+', help='checkpoints written by the engine (at least 2)')
    parser.add_argument('-o', '--output', required=True, help='where to write the averaged checkpoint')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    from torchreid.engine.ensemble import SoupError, average_checkpoints
    from torchreid.utils.io import atomic_torch_save

    if osp.exists(args.output) and not args.overwrite:
        print(f'Error: {args.output} exists (pass --overwrite to replace it)', file=sys.stderr)
        return 2
    missing = [p for p in args.checkpoints if not osp.isfile(p)]
    if missing:
        print(f'Error: no such checkpoint(s): {missing}', file=sys.stderr)
        return 2
    try:
        soup = average_checkpoints(args.checkpoints)
    except SoupError as exc:
        print(f'Error: {exc}', file=sys.stderr)
        return 1
    atomic_torch_save(soup, args.output)
    logger.info('Averaged %d checkpoints of %s (%d tensors) into %s', len(args.checkpoints),
                soup['model_spec']['name'], len(soup['state_dict']), args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
