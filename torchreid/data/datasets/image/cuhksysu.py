"""CUHK-SYSU (Xiao et al., CVPR 2017) person crops: 11,934 identities, 34,574 images; training only.

``<root>/cuhksysu/cropped_images/p<pid>_s<scene>[_<k>].jpg``: the person boxes of the CUHK-SYSU person-search
release cut out of their scenes (the release itself ships whole scenes and the boxes in
``annotation/Person.mat``). One camera (camid 0). Pids are relabelled 0..N-1. As in Torchreid, query and
gallery each hold one placeholder (the first training image): the set is meant as a source, evaluate on
another target.
"""
import logging
import os.path as osp
import re
from typing import Any

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import DatasetLayoutError, fetch_dataset, list_files

logger = logging.getLogger(__name__)

__all__ = ['CUHKSYSU']

_NAME = re.compile(r'^(p\d+)_s\d+(_\d+)?\.jpg$')
_MANUAL = ('Get the CUHK-SYSU release (http://www.ee.cuhk.edu.hk/~xgwang/PS/dataset.html), crop every annotated '
           'person box of annotation/Person.mat out of its scene image and save the crops as '
           '{dataset_dir}/cropped_images/p<pid>_s<scene>_<k>.jpg.')


class CUHKSYSU(ImageDataset):
    """CUHK-SYSU crops: a training source only."""
    dataset_dir = 'cuhksysu'
    dataset_url = None
    train_only = True

    def __init__(self, root: str = '', **kwargs: Any):
        self.locate(root, kwargs)
        self.data_dir = osp.join(self.dataset_dir, 'cropped_images')
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.data_dir], self.dataset_url, False,
                      _MANUAL.format(dataset_dir=self.dataset_dir))
        names = list_files(self.data_dir, ('.jpg',))
        bad = [osp.join(self.data_dir, n) for n in names if not _NAME.match(n)]
        if bad:
            raise DatasetLayoutError(f'CUHKSYSU: {summarise_paths(bad)} break the naming rule '
                                     'p<pid>_s<scene>[_<k>].jpg')
        if not names:
            raise FileNotFoundError(f'CUHKSYSU: no .jpg images in {self.data_dir}')
        pids = [_NAME.match(n).group(1) for n in names]
        relabel = {pid: label for label, pid in enumerate(sorted(set(pids), key=lambda p: int(p[1:])))}
        train = [(osp.join(self.data_dir, n), relabel[pid], 0) for n, pid in zip(names, pids)]
        super().__init__(train, [train[0]], [train[0]], **kwargs)
