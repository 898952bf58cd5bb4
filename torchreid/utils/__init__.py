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
    'DiskFullError': '.io',
    'RunLock': '.io',
    'SaveDirInUseError': '.io',
    'remove_stale_temp_files': '.io',
    # cpu.py
    'native_bf16': '.cpu',
    'tune_malloc': '.cpu',
    'auto_mixed_precision': '.cpu',
    # cli.py
    'error_message': '.cli',
    'run_cli': '.cli',
    # tools.py
    'set_random_seed': '.tools',
    'get_rng_state': '.tools',
    'set_rng_state': '.tools',
    'mkdir_if_missing': '.tools',
    'check_isfile': '.tools',
    'read_image': '.tools',
    'to_rgb': '.tools',
    'collect_env_info': '.tools',
    'read_json': '.tools',
    'write_json': '.tools',
    'download_url': '.tools',
    'listdir_nohidden': '.tools',
    # model_complexity.py
    'compute_model_complexity': '.model_complexity',
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
    'prune_checkpoints': '.checkpoint',
    'write_best_checkpoint': '.checkpoint',
    'ensure_best_checkpoint': '.checkpoint',
    'checkpoint_epoch': '.checkpoint',
    # loggers.py
    'setup_logging': '.loggers',
    'remove_logging': '.loggers',
    'Logger': '.loggers',
    'RankLogger': '.loggers',
    'AverageMeter': '.loggers',
    'MetricMeter': '.loggers',
    'setup_console_logging': '.loggers',
    # feature_extractor.py
    'FeatureExtractor': '.feature_extractor',
    # reidtools.py
    'visualize_ranked_results': '.reidtools',
    # re-exported from the models and metrics packages (Torchreid kept them in utils)
    'load_pretrained_weights': 'torchreid.models',
    're_ranking': 'torchreid.metrics.rerank',
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
