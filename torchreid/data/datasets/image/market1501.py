"""Market-1501: the standard layout, kept so the framework stays general beyond SoccerNet.

``<root>/market1501/Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/`` (or the same
folders directly in ``<root>/market1501``), names ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``.

Standard protocol (as Torchreid parses it): pid -1 marks junk boxes (bad detections): they are dropped at
parse time from every split, so they are neither trained on nor ranked. pid 0 marks distractors: they stay
in the gallery (an identity that matches no query, scored as a negative).

Download: ``http://188.138.127.15:81/Datasets/Market-1501-v15.09.15.zip`` (Torchreid's link to the original
release), extracted into ``<root>/market1501``.
"""
import logging
import os
import os.path as osp
import re
from typing import Any, List, Tuple

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import fetch_dataset

logger = logging.getLogger(__name__)

__all__ = ['Market1501', 'MarketNameError']

_MANUAL = ('Get Market-1501-v15.09.15.zip from the authors (https://zheng-lab.cecs.anu.edu.au/Project/'
           'project_reid.html) and extract it so that {dataset_dir}/Market-1501-v15.09.15/bounding_box_train, '
           'bounding_box_test and query exist.')
_NAME = re.compile(r'^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$')


class MarketNameError(ValueError):
    """A Market-1501 image name that breaks the ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg`` rule."""


class Market1501(ImageDataset):
    """Market-1501 (Zheng et al., ICCV 2015): 751 train ids, 750 test ids, 6 cameras.

    ``market1501_500k=True`` adds the ``images`` distractor folder to the gallery. ``download``: fetch the
    release from its original source when the folders are missing.
    """
    dataset_dir = 'market1501'
    dataset_url = 'http://188.138.127.15:81/Datasets/Market-1501-v15.09.15.zip'
    eval_metric = 'default'
    hidden_labels = False
    junk_pids = (0, -1)  # 0: distractors, -1: junk boxes

    def __init__(self, root: str = '', market1501_500k: bool = False, download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)  # a misspelt option fails before any folder is read
        if not osp.isdir(osp.join(self.dataset_dir, 'bounding_box_train')):
            fetch_dataset(type(self).__name__, self.dataset_dir,
                          [osp.join(self.dataset_dir, 'Market-1501-v15.09.15', 'bounding_box_train')],
                          self.dataset_url, download, _MANUAL.format(dataset_dir=self.dataset_dir))
        nested = osp.join(self.dataset_dir, 'Market-1501-v15.09.15')
        data_dir = nested if osp.isdir(nested) else self.dataset_dir
        self.data_dir = data_dir
        self.train_dir = osp.join(data_dir, 'bounding_box_train')
        self.query_dir = osp.join(data_dir, 'query')
        self.gallery_dir = osp.join(data_dir, 'bounding_box_test')
        self.extra_gallery_dir = osp.join(data_dir, 'images')
        required = [self.train_dir, self.query_dir, self.gallery_dir]
        if market1501_500k:
            required.append(self.extra_gallery_dir)
        self.check_before_run(required)

        train = self.process_dir(self.train_dir, relabel=True)
        query = self.process_dir(self.query_dir)
        gallery = self.process_dir(self.gallery_dir)
        if market1501_500k:
            gallery += self.process_dir(self.extra_gallery_dir)
        super().__init__(train, query, gallery, **kwargs)

    @staticmethod
    def process_dir(dir_path: str, relabel: bool = False) -> List[Tuple[str, int, int, int]]:
        """Records of one folder; every file but OS metadata must follow the naming rule (else an error).

        Junk boxes (pid -1) are left out of every split; ``relabel`` maps the train pids to 0..K-1.
        """
        # OS metadata files (.DS_Store, Thumbs.db) are not images: skipped, and do not make a folder non-empty.
        names = sorted(e.name for e in os.scandir(dir_path)
                       if e.is_file() and not e.name.startswith('.') and e.name.lower() != 'thumbs.db')
        if not names:
            raise FileNotFoundError(f'split folder is empty: no .jpg images in {dir_path}')
        parsed, bad = [], []
        for name in names:
            match = _NAME.match(name)
            if match is None:
                bad.append(osp.join(dir_path, name))
                continue
            pid, camid = int(match.group(1)), int(match.group(2))
            if not (-1 <= pid <= 1501) or not (1 <= camid <= 6):
                bad.append(osp.join(dir_path, name))
                continue
            parsed.append((osp.join(dir_path, name), pid, camid - 1))  # camids count from 0
        if bad:
            raise MarketNameError(
                f'{summarise_paths(bad)} in {dir_path} break the Market-1501 rule '
                '<pid>_c<cam>s<seq>_<frame>_<box>.jpg with pid in -1..1501 and cam in 1..6')
        # pid -1 marks junk boxes: nothing to learn from and, by the standard protocol, nothing to rank.
        parsed = [p for p in parsed if p[1] != -1]
        if relabel:
            pid_map = {pid: i for i, pid in enumerate(sorted({p[1] for p in parsed}))}
            parsed = [(path, pid_map[pid], camid) for path, pid, camid in parsed]
        return [(path, pid, camid, 0) for path, pid, camid in parsed]
