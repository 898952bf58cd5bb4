"""Utilities: checkpoints, logging, seeds, feature extraction, ranked-result pictures.

Names are resolved on first access (PEP 562), so ``import torchreid.utils`` stays cheap, never imports
``torchreid.models`` at import time (``load_pretrained_weights`` is re-exported from there lazily), and
one missing optional dependency does not break the rest. ``from torchreid.utils import X`` works as usual.
"""
from torchreid._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    # io.py
    'atomic_write': '.io',
    'atomic_write_json': '.io',
    'atomic_torch_save': '.io',
    # tools.py
    'set_random_seed': '.tools',
    'get_rng_state': '.tools',
    'set_rng_state': '.tools',
    'mkdir_if_missing': '.tools',
    'check_isfile': '.tools',
    'read_image': '.tools',
    'collect_env_info': '.tools',
    # model_utils.py
    'open_all_layers': '.model_utils',
    'open_specified_layers': '.model_utils',
    'count_num_param': '.model_utils',
    'resolve_device': '.model_utils',
    # checkpoint.py
    'save_checkpoint': '.checkpoint',
    'load_checkpoint': '.checkpoint',
    'resume_from_checkpoint': '.checkpoint',
    'restore_checkpoint_state': '.checkpoint',
    'list_checkpoints': '.checkpoint',
    # loggers.py
    'setup_logging': '.loggers',
    'remove_logging': '.loggers',
    'Logger': '.loggers',
    'RankLogger': '.loggers',
    'AverageMeter': '.loggers',
    'MetricMeter': '.loggers',
    # feature_extractor.py
    'FeatureExtractor': '.feature_extractor',
    # reidtools.py
    'visualize_ranked_results': '.reidtools',
    # re-exported from the models package (Torchreid kept it in utils)
    'load_pretrained_weights': 'torchreid.models',
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
