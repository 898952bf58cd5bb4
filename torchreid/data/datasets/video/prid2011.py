"""PRID2011 multi-shot (Hirzer et al., SCIA 2011): tracklets of the persons seen by both cameras.

``<root>/prid2011/prid_2011/multi_shot/cam_a/person_<pid:04d>/*.png`` (and ``cam_b``), with
``<root>/prid2011/splits_prid2011.json``: 10 splits ``{"train": [person folders], "test": [...]}`` over the
178 persons whose tracklets are long enough in both cameras (the protocol of McLaughlin et al., CVPR 2016).
Train = both cameras of the train persons; query = the ``cam_a`` tracklets and gallery the ``cam_b`` tracklets
of the test persons (pids relabelled in each list). Counts: train 89 ids / 178 tracklets; query 89; gallery 89.
"""
import logging
import os.path as osp
from typing import Any, List, Sequence

from ..image.zoo_common import DatasetLayoutError, fetch_dataset, list_files, read_split_file, select_split
from .video_dataset import VideoDataset

logger = logging.getLogger(__name__)

__all__ = ['PRID2011']

_MANUAL = ('Get prid_2011.zip (https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/PRID11/) and '
           'extract it into {dataset_dir} (giving {dataset_dir}/prid_2011/multi_shot/cam_a and cam_b); get '
           'splits_prid2011.json from Torchreid\'s dataset guide '
           '(https://kaiyangzhou.github.io/deep-person-reid/datasets.html, "PRID2011") and put it in {dataset_dir}.')


class PRID2011(VideoDataset):
    """PRID2011 (video): 2 cameras, the 10 splits of ``splits_prid2011.json`` (``split_id``)."""
    dataset_dir = 'prid2011'
    dataset_url = None

    def __init__(self, root: str = '', split_id: int = 0, **kwargs: Any):
        self.locate(root, kwargs)
        self.cam_dirs = [osp.join(self.dataset_dir, 'prid_2011', 'multi_shot', cam) for cam in ('cam_a', 'cam_b')]
        self.split_path = osp.join(self.dataset_dir, 'splits_prid2011.json')
        fetch_dataset(type(self).__name__, self.dataset_dir, [*self.cam_dirs, self.split_path], self.dataset_url,
                      False, _MANUAL.format(dataset_dir=self.dataset_dir))
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'test'))
        train = self.process_dir(split['train'], cams=(0, 1))
        query = self.process_dir(split['test'], cams=(0,))
        gallery = self.process_dir(split['test'], cams=(1,))
        super().__init__(train, query, gallery, **kwargs)

    def process_dir(self, person_dirs: Sequence[str], cams: Sequence[int]) -> List[tuple]:
        """One tracklet per person and camera of ``cams``; pids are positions in ``person_dirs``."""
        tracklets = []
        for pid, person in enumerate(person_dirs):
            for cam in cams:
                folder = osp.join(self.cam_dirs[cam], person)
                if not osp.isdir(folder):
                    raise DatasetLayoutError(f'PRID2011: {self.split_path} names {person!r}, but {folder} is missing')
                frames = list_files(folder, ('.png',))
                if not frames:
                    raise DatasetLayoutError(f'PRID2011: no .png frames in {folder}')
                tracklets.append((tuple(osp.join(folder, f) for f in frames), pid, cam))
        return tracklets
