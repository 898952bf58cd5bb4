"""University-1652 (Zheng et al., ACM MM 2020): drone / satellite / street views of 1,652 buildings.

``<root>/university1652/University-Release/train/<view>/<building>/<image>`` (views ``drone``, ``satellite``,
``street``, ``google``) and ``test/<query_*|gallery_*>/<building>/<image>``. Protocol (Torchreid): train on
every training view (701 buildings, 50,218 images, pids relabelled); query ``test/query_drone`` (701
buildings, 37,855 images); gallery ``test/gallery_satellite`` (951 buildings, 951 images). There are no
cameras: each image gets its own camid (counting on through train, query, gallery), so no gallery image is
ever discarded as "same camera".
"""
import logging
import os
import os.path as osp
from typing import Any, List, Tuple

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import IMAGE_EXTENSIONS, DatasetLayoutError, fetch_dataset, list_files

logger = logging.getLogger(__name__)

__all__ = ['University1652']

_MANUAL = ('Get University-Release.zip (https://github.com/layumi/University1652-Baseline: OneDrive, Google Drive '
           'https://drive.google.com/file/d/1iVnP4gjw-iHXa0KerZQ1IfIO0i1jADsR or Baidu) and extract it into '
           '{dataset_dir} so that {dataset_dir}/University-Release/train and test exist.')


class University1652(ImageDataset):
    """University-1652: drone-view queries against the satellite-view gallery."""
    dataset_dir = 'university1652'
    dataset_url = 'https://drive.google.com/uc?id=1iVnP4gjw-iHXa0KerZQ1IfIO0i1jADsR'
    query_view = 'query_drone'
    gallery_view = 'gallery_satellite'

    def __init__(self, root: str = '', download: bool = True, **kwargs: Any):
        self.locate(root, kwargs)
        release = osp.join(self.dataset_dir, 'University-Release')
        self.train_dir = osp.join(release, 'train')
        self.query_dir = osp.join(release, 'test', self.query_view)
        self.gallery_dir = osp.join(release, 'test', self.gallery_view)
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.train_dir, self.query_dir, self.gallery_dir],
                      self.dataset_url, download, _MANUAL.format(dataset_dir=self.dataset_dir))
        train = self._parse([osp.join(self.train_dir, v) for v in sorted(os.listdir(self.train_dir))
                             if osp.isdir(osp.join(self.train_dir, v))])
        relabel = {pid: label for label, pid in enumerate(sorted({r[1] for r in train}))}
        train = [(path, relabel[pid]) for path, pid in train]
        query, gallery = self._parse([self.query_dir]), self._parse([self.gallery_dir])
        # No cameras: a running camid, unique per image over the three lists.
        records = [[(path, pid, camid) for camid, (path, pid) in enumerate(part, start)]
                   for part, start in ((train, 0), (query, len(train)), (gallery, len(train) + len(query)))]
        super().__init__(*records, **kwargs)

    @staticmethod
    def _parse(view_dirs: List[str]) -> List[Tuple[str, int]]:
        """``[(path, building id)]`` of ``<view>/<building>/<image>`` folders."""
        records, bad = [], []
        for view_dir in view_dirs:
            for building in sorted(e.name for e in os.scandir(view_dir) if e.is_dir()):
                if not building.isdigit():
                    bad.append(osp.join(view_dir, building))
                    continue
                folder = osp.join(view_dir, building)
                records += [(osp.join(folder, n), int(building)) for n in list_files(folder, IMAGE_EXTENSIONS)]
        if bad:
            raise DatasetLayoutError(f'University1652: building folders must be numbers: {summarise_paths(bad)}')
        if not records:
            raise FileNotFoundError(f'University1652: no images in {", ".join(view_dirs)}')
        return records
