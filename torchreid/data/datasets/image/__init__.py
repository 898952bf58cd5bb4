"""Image ReID datasets."""
from .market1501 import Market1501, MarketNameError
from .soccernetv3 import (GroundTruthMismatchError, SoccerNetDataError, Soccernetv3, Soccernetv3Challenge,
                          Soccernetv3Test, download_soccernetv3)

__all__ = ['Market1501', 'MarketNameError', 'Soccernetv3', 'Soccernetv3Test', 'Soccernetv3Challenge',
           'SoccerNetDataError', 'GroundTruthMismatchError', 'download_soccernetv3']
