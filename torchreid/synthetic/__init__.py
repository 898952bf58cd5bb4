"""Synthetic SoccerNet-v3 ReID data in the real release's layout, naming and ground-truth format.

``generate_dataset(root, preset='tiny'|'demo'|'full'|Preset(...), seed=0)`` writes
``<root>/soccernetv3/reid/...`` so the real loading and evaluation code runs on it unchanged.
Command line: ``python -m torchreid.synthetic --root DIR --preset demo --seed 0``.
"""
from typing import Optional, Sequence

from .generator import IDENTITIES_NAME, META_NAME, clean_stale_temporaries, dataset_dir, generate_dataset, read_meta
from .plan import DatasetPlan, plan_dataset, plan_statistics
from .presets import PRESETS, Preset, SplitSize, get_preset

__all__ = ['generate_dataset', 'PRESETS', 'Preset', 'SplitSize', 'get_preset', 'plan_dataset', 'plan_statistics',
           'DatasetPlan', 'dataset_dir', 'read_meta', 'clean_stale_temporaries', 'META_NAME', 'IDENTITIES_NAME', 'main']


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point (``python -m torchreid.synthetic``)."""
    from .cli import main as _main
    return _main(argv)
