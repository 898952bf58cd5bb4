#!/usr/bin/env python
"""Generate a synthetic SoccerNet-v3 ReID set: ``python scripts/generate_synthetic_data.py --root DIR --preset demo``.

The same command line as ``python -m torchreid.synthetic`` (see ``--help``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))   # run from a checkout without install

from torchreid.synthetic.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
