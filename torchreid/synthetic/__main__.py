"""``python -m torchreid.synthetic --root DIR --preset tiny|demo|full --seed N``."""
import sys

from .cli import main

sys.exit(main())
