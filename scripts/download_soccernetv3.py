#!/usr/bin/env python
"""Download and unzip the SoccerNet-v3 ReID splits into ``<root>/soccernetv3/reid/<split>/``.

Uses the official ``SoccerNet`` package (``pip install SoccerNet``); splits already present are skipped.
Example::

    python scripts/download_soccernetv3.py --root ~/datasets --splits train valid test challenge
"""
import argparse
import logging
import os.path as osp
import sys

from torchreid.data.datasets.image.soccernetv3 import DOWNLOAD_SPLITS, download_soccernetv3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='data root; the data goes to <root>/soccernetv3/reid')
    parser.add_argument('--splits', nargs='+', default=list(DOWNLOAD_SPLITS), choices=DOWNLOAD_SPLITS,
                        help='splits to fetch (default: all)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    dataset_dir = osp.join(osp.abspath(osp.expanduser(args.root)), 'soccernetv3')
    try:
        fetched = download_soccernetv3(dataset_dir, args.splits)
    except FileNotFoundError as err:
        logging.error('%s', err)
        return 1
    present = sorted(set(args.splits) - set(fetched))
    logging.info('downloaded: %s; already present: %s', ', '.join(fetched) or 'none', ', '.join(present) or 'none')
    return 0


if __name__ == '__main__':
    sys.exit(main())
