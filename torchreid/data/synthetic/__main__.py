"""``python -m torchreid.data.synthetic`` still works: the command of :mod:`torchreid.synthetic`."""
import sys

from torchreid.synthetic.cli import main

sys.exit(main())
