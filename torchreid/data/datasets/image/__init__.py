"""Image ReID datasets (loaded on first access; ``soccernet_format`` imports without torch)."""
from torchreid._lazy import lazy_exports

_EXPORTS = {
    'Market1501': '.market1501', 'MarketNameError': '.market1501',
    **{name: '.soccernetv3' for name in ('Soccernetv3', 'Soccernetv3Test', 'Soccernetv3Challenge',
                                         'SoccerNetDataError', 'GroundTruthMismatchError', 'download_soccernetv3')},
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
