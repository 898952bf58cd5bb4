"""CUHK01 (Li et al., ACCV 2012): 971 identities, 2 camera views, 2 images per view (3,884 images).

``<root>/cuhk01/campus/<pid:04d><image:03d>.png`` (images 001-002 from the first view, 003-004 from the
second); ``CUHK01.zip`` in ``<root>/cuhk01`` is extracted when ``campus`` is missing. Splits (Torchreid): 10
random halvings (485 train ids / 486 test ids), each used twice (query = first view / gallery = second view,
then the reverse): 20 splits in ``splits.json``. Train pids are relabelled; test pids keep the file's
(0-based) number. Counts: train 485 ids / 1,940 images; query 972; gallery 972.
"""
import logging
import os.path as osp
import random
import re
import zipfile
from typing import Any, Dict, List

from ..dataset import ImageDataset, summarise_paths
from .zoo_common import (SPLIT_SEED, DatasetLayoutError, fetch_dataset, list_files, read_split_file,
                         records_from_json, records_to_json, select_split, write_split_file)

logger = logging.getLogger(__name__)

__all__ = ['CUHK01']

_NAME = re.compile(r'^(\d{4})(\d{3})\.png$')
_NUM_SHUFFLES = 10
_MANUAL = ('CUHK01 is released on request by its authors (http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html): '
           'put CUHK01.zip in {dataset_dir} (it is extracted on first use) or its campus folder at '
           '{dataset_dir}/campus.')


class CUHK01(ImageDataset):
    """CUHK01: 2 cameras, 20 splits (``split_id``)."""
    dataset_dir = 'cuhk01'
    dataset_url = None

    def __init__(self, root: str = '', split_id: int = 0, **kwargs: Any):
        self.locate(root, kwargs)
        self.zip_path = osp.join(self.dataset_dir, 'CUHK01.zip')
        self.campus_dir = osp.join(self.dataset_dir, 'campus')
        self.split_path = osp.join(self.dataset_dir, 'splits.json')
        if not osp.isdir(self.campus_dir) and osp.isfile(self.zip_path):
            logger.info('CUHK01: extracting %s', self.zip_path)
            with zipfile.ZipFile(self.zip_path) as archive:
                archive.extractall(self.dataset_dir)
        fetch_dataset(type(self).__name__, self.dataset_dir, [self.campus_dir], self.dataset_url, False,
                      _MANUAL.format(dataset_dir=self.dataset_dir))
        self.prepare_split()
        split = select_split(read_split_file(self.split_path), split_id, self.split_path, ('train', 'query', 'gallery'))
        train, query, gallery = (records_from_json(split[f], self.dataset_dir, self.split_path, f)
                                 for f in ('train', 'query', 'gallery'))
        super().__init__(train, query, gallery, **kwargs)

    def _parse(self) -> List[tuple]:
        records, bad = [], []
        for name in list_files(self.campus_dir, ('.png',)):
            match = _NAME.match(name)
            if match is None or not 1 <= int(match.group(2)) <= 4:
                bad.append(osp.join(self.campus_dir, name))
                continue
            pid, image = int(match.group(1)) - 1, int(match.group(2))
            records.append((osp.join(self.campus_dir, name), pid, (image - 1) // 2))
        if bad:
            raise DatasetLayoutError(f'CUHK01: {summarise_paths(bad)} break the naming rule '
                                     '<pid:04d><image 001-004>.png')
        return records

    def prepare_split(self) -> None:
        """Draw and write the 20 splits if ``splits.json`` does not exist."""
        if osp.exists(self.split_path):
            return
        records = self._parse()
        pids = sorted({r[1] for r in records})
        if len(pids) < 2:
            raise DatasetLayoutError(f'CUHK01: {self.campus_dir} needs at least 2 identities, found {len(pids)}')
        rng = random.Random(SPLIT_SEED)
        splits: List[Dict[str, Any]] = []
        for _ in range(_NUM_SHUFFLES):
            order = list(pids)
            rng.shuffle(order)
            relabel = {pid: label for label, pid in enumerate(order[:len(pids) // 2])}
            train = [(p, relabel[pid], cam) for p, pid, cam in records if pid in relabel]
            test_a = [(p, pid, cam) for p, pid, cam in records if pid not in relabel and cam == 0]
            test_b = [(p, pid, cam) for p, pid, cam in records if pid not in relabel and cam == 1]
            num_test = len(pids) - len(relabel)
            for query, gallery in ((test_a, test_b), (test_b, test_a)):
                splits.append({'train': records_to_json(train, self.dataset_dir),
                               'query': records_to_json(query, self.dataset_dir),
                               'gallery': records_to_json(gallery, self.dataset_dir),
                               'num_train_pids': len(relabel), 'num_query_pids': num_test,
                               'num_gallery_pids': num_test})
        write_split_file(self.split_path, splits)
