"""Image ReID datasets: SoccerNet-v3 and Torchreid's public image datasets."""
from .cuhk01 import CUHK01
from .cuhk02 import CUHK02
from .cuhk03 import CUHK03
from .cuhksysu import CUHKSYSU
from .dukemtmcreid import DukeMTMCreID
from .grid import GRID
from .ilids import iLIDS
from .market1501 import Market1501, MarketNameError
from .msmt17 import MSMT17
from .prid import PRID
from .sensereid import SenseReID
from .soccernetv3 import (GroundTruthMismatchError, SoccerNetDataError, Soccernetv3, Soccernetv3Challenge,
                          Soccernetv3Test, download_soccernetv3)
from .university1652 import University1652
from .viper import VIPeR
from .zoo_common import DatasetLayoutError, SplitFileError

__all__ = ['Market1501', 'MarketNameError', 'Soccernetv3', 'Soccernetv3Test', 'Soccernetv3Challenge',
           'SoccerNetDataError', 'GroundTruthMismatchError', 'download_soccernetv3', 'CUHK01', 'CUHK02', 'CUHK03',
           'CUHKSYSU', 'DukeMTMCreID', 'GRID', 'iLIDS', 'MSMT17', 'PRID', 'SenseReID', 'University1652', 'VIPeR',
           'DatasetLayoutError', 'SplitFileError']
