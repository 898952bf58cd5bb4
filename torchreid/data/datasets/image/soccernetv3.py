"""SoccerNet-v3 ReID: the train split, and the valid / test / challenge query-gallery splits.

Layout under ``<root>/soccernetv3/reid/``::

    train/<championship>/<season>/<game>/<action>/*.png
    valid/{query,gallery}/<championship>/<season>/<game>/<action>/*.png   (+ valid/bbox_info.json)
    test/{query,gallery}/...                                              (+ test/bbox_info.json)
    challenge/{query,gallery}/*.png                                       (flat, labels hidden)

Records are ``(img_path, pid, camid, dsetid)`` with ``camid = action_idx`` (the evaluation compares a
query only with the gallery of its own action). Train pids are relabelled 0..K-1; valid/test pids are
the ``person_uid``; challenge pids are -1. Every parsed name field is kept in ``*_info`` as a
:class:`SoccerNetSample`. Lists are ordered by ``bbox_idx``, which must run 0..N-1 without gaps: the
challenge export writes list positions, and the ground truth is keyed by ``bbox_idx``.
"""
import logging
import os
import os.path as osp
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torchreid.soccernet_format import GT_FIELDS, FilenameError, SoccerNetSample, parse_filename, read_ground_truth
from ..dataset import ImageDataset, summarise_errors, summarise_paths

logger = logging.getLogger(__name__)

__all__ = ['Soccernetv3', 'Soccernetv3Test', 'Soccernetv3Challenge', 'SoccerNetDataError',
           'GroundTruthMismatchError', 'download_soccernetv3', 'DOWNLOAD_SPLITS']

DOWNLOAD_SPLITS = ('train', 'valid', 'test', 'challenge')
# Depth of the action folders below a labelled subset dir: <championship>/<season>/<game>/<action>.
_ACTION_DEPTH = 4
_MAX_LISTED = 10


class SoccerNetDataError(ValueError):
    """The SoccerNet-v3 ReID folders break the layout or naming rules."""


class GroundTruthMismatchError(ValueError):
    """The thumbnails on disk disagree with the ground-truth JSON."""


def _manual_command(dataset_dir: str, splits: Sequence[str]) -> str:
    return ('python -c "from SoccerNet.Downloader import SoccerNetDownloader; '
            f"SoccerNetDownloader(LocalDirectory='{dataset_dir}').downloadDataTask(task='reid', "
            f'split={list(splits)!r})"  (then unzip each <split>.zip inside {osp.join(dataset_dir, "reid")}), '
            f'or: python scripts/download_soccernetv3.py --root {osp.dirname(dataset_dir)} '
            f'--splits {" ".join(splits)}')


def download_soccernetv3(dataset_dir: str, splits: Sequence[str]) -> List[str]:
    """Download (through the ``SoccerNet`` package) and unzip the ReID ``splits`` that are missing.

    ``dataset_dir`` is ``<root>/soccernetv3``; each split ends up in ``<dataset_dir>/reid/<split>``.
    Returns the splits that were downloaded. Raises :class:`FileNotFoundError` with the manual
    instructions when a download cannot happen (package missing, offline, any error).
    """
    reid_dir = osp.join(dataset_dir, 'reid')
    for split in splits:
        if split not in DOWNLOAD_SPLITS:
            raise ValueError(f'unknown SoccerNet-v3 ReID split {split!r}; expected one of {", ".join(DOWNLOAD_SPLITS)}')
    missing = [s for s in splits if not osp.isdir(osp.join(reid_dir, s))]
    if not missing:
        return []
    try:
        from SoccerNet.Downloader import SoccerNetDownloader
        os.makedirs(dataset_dir, exist_ok=True)
        downloader = SoccerNetDownloader(LocalDirectory=dataset_dir)
        for split in missing:
            logger.info('Downloading SoccerNet-v3 ReID split %r into %s', split, reid_dir)
            downloader.downloadDataTask(task='reid', split=[split])
            zip_path = osp.join(reid_dir, f'{split}.zip')
            if not osp.isfile(zip_path):
                raise FileNotFoundError(f'the downloader did not produce {zip_path}')
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(reid_dir)
            os.remove(zip_path)
            if not osp.isdir(osp.join(reid_dir, split)):
                raise FileNotFoundError(f'{zip_path} did not contain a top-level {split}/ folder')
    except Exception as err:  # offline, package missing, bad zip...: the user needs the manual route
        raise FileNotFoundError(
            f'SoccerNet-v3 ReID split(s) {", ".join(missing)} not found in {reid_dir} and the download failed '
            f'({type(err).__name__}: {err}). Put the data at {reid_dir}/<split>/ '
            f'(train/<championship>/<season>/<game>/<action>/*.png, valid|test/{{query,gallery}}/..., '
            f'challenge/{{query,gallery}}/*.png). To download manually: {_manual_command(dataset_dir, missing)}'
        ) from err
    return missing


def _index_ranges(indices: Sequence[int], limit: int = _MAX_LISTED) -> str:
    """``'3, 7-9, 12'`` for sorted ints, cut after ``limit`` ranges."""
    ranges, start, prev = [], None, None
    for i in indices:
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            ranges.append((start, prev))
            start = prev = i
    if start is not None:
        ranges.append((start, prev))
    text = ', '.join(f'{a}' if a == b else f'{a}-{b}' for a, b in ranges[:limit])
    return text + (f' (and {len(ranges) - limit} more ranges)' if len(ranges) > limit else '')


def scan_subset(subset_dir: str, flat: bool, labelled: bool) -> List[SoccerNetSample]:
    """Parse every thumbnail of one subset folder, in ``bbox_idx`` order; one pass, no image opened.

    Checks the folder exists and is non-empty, every ``.png`` sits at the action depth and follows the
    naming rule, and ``bbox_idx`` runs 0..N-1 exactly once each. Each check raises one error naming all
    offending files (count + the first ten).
    """
    if not osp.isdir(subset_dir):
        raise FileNotFoundError(f'split folder missing: {subset_dir}')
    depth = 0 if flat else _ACTION_DEPTH
    layout = '*.png' if flat else '<championship>/<season>/<game>/<action>/*.png'
    samples, bad_names, misplaced = [], [], []
    root_parts = len(osp.normpath(subset_dir).split(os.sep))
    for dirpath, dirnames, filenames in os.walk(subset_dir, followlinks=True):  # data is often symlinked
        dirnames.sort()
        level = len(osp.normpath(dirpath).split(os.sep)) - root_parts
        relative_path = '' if level == 0 else osp.relpath(dirpath, subset_dir).replace(os.sep, '/')
        for name in sorted(filenames):
            path = osp.join(dirpath, name)
            if level != depth:
                # Metadata (bbox_info.json...) may sit elsewhere; thumbnails may not.
                if name.lower().endswith('.png'):
                    misplaced.append(path)
                continue
            try:
                sample = parse_filename(path, relative_path=relative_path)
            except FilenameError as err:
                bad_names.append((path, str(err)))
                continue
            if labelled and not sample.labelled:
                bad_names.append((path, 'a labelled split needs the 8-field name <bbox_idx>-<action_idx>-'
                                        '<person_uid>-<frame_idx>-<clazz>-<id>-<UAI>-<H>x<W>.png'))
                continue
            samples.append(sample)
    if bad_names:
        raise SoccerNetDataError(
            f'{len(bad_names)} file(s) in {subset_dir} break the SoccerNet-v3 ReID naming rule: '
            f'{summarise_errors(bad_names)}')
    if misplaced:
        raise SoccerNetDataError(
            f'thumbnails must sit at {layout} below {subset_dir}; misplaced: {summarise_paths(misplaced)}')
    if not samples:
        raise SoccerNetDataError(f'split folder is empty: no {layout} thumbnails found in {subset_dir}')
    samples.sort(key=lambda s: s.bbox_idx)
    _check_bbox_indices(samples, subset_dir)
    return samples


def _check_bbox_indices(samples: Sequence[SoccerNetSample], subset_dir: str) -> None:
    """bbox_idx must be 0..N-1, each once: list position == bbox_idx (the ranking export relies on it)."""
    if all(s.bbox_idx == i for i, s in enumerate(samples)):  # the common case, checked cheaply
        return
    by_idx: Dict[int, List[str]] = {}
    for s in samples:
        by_idx.setdefault(s.bbox_idx, []).append(s.img_path)
    duplicates = [p for paths in by_idx.values() if len(paths) > 1 for p in paths]
    if duplicates:
        raise SoccerNetDataError(
            f'bbox_idx must be unique within {subset_dir}; files sharing a bbox_idx: {summarise_paths(duplicates)}')
    # Distinct non-negative indices that are not 0..N-1 leave a gap; the first one is below N.
    top = samples[-1].bbox_idx
    missing = [i for i in range(top + 1) if i not in by_idx]
    raise SoccerNetDataError(
        f'bbox_idx must run 0..N-1 without gaps within {subset_dir} ({len(samples)} files, largest bbox_idx '
        f'{top}); missing bbox_idx: {_index_ranges(missing)}; the files after the first gap start with '
        f'{osp.basename(samples[missing[0]].img_path)}')


class _SoccerNetV3Base(ImageDataset):
    """Shared loading logic; subclasses name the folders they read."""
    dataset_dir = 'soccernetv3'
    eval_metric = 'soccernetv3'
    hidden_labels = False
    camid_is_split_local = True  # camid = action_idx, numbered per split
    train_subdir: Optional[str] = None
    query_subdir: str = ''
    gallery_subdir: str = ''
    flat = False
    download_splits: Tuple[str, ...] = ()
    # Candidate ground-truth files, relative to the reid dir; the first that exists is used.
    ground_truth_candidates: Tuple[str, ...] = ()

    def __init__(self, root: str = '', training_subset: Optional[float] = None,
                 soccernetv3_training_subset: Optional[float] = None, download: bool = True,
                 check_ground_truth: bool = False, verify_images: bool = False, **kwargs: Any):
        self.check_options(kwargs)  # a misspelt option fails before the (large) folders are walked
        self.root = osp.abspath(osp.expanduser(root))
        self.dataset_dir = osp.join(self.root, self.dataset_dir)
        self.reid_dir = osp.join(self.dataset_dir, 'reid')
        self.training_subset = self._resolve_subset(training_subset, soccernetv3_training_subset)

        if download:
            download_soccernetv3(self.dataset_dir, self.download_splits)
        self._check_split_dirs(download)

        train, train_info = [], []
        if self.train_subdir is not None:
            train_samples = scan_subset(osp.join(self.reid_dir, self.train_subdir), flat=False, labelled=True)
            train_samples = self._apply_training_subset(train_samples)
            train, train_info = self._train_records(train_samples)
        query_samples = scan_subset(osp.join(self.reid_dir, self.query_subdir), self.flat, not self.hidden_labels)
        gallery_samples = scan_subset(osp.join(self.reid_dir, self.gallery_subdir), self.flat, not self.hidden_labels)
        query = [self._eval_record(s) for s in query_samples]
        gallery = [self._eval_record(s) for s in gallery_samples]

        self.ground_truth_path = self._find_ground_truth()
        super().__init__(train, query, gallery, train_info=train_info, query_info=query_samples,
                         gallery_info=gallery_samples, **kwargs)
        if check_ground_truth:
            self.check_ground_truth()
        if verify_images:
            self.verify_images()

    # ----- configuration -----
    @staticmethod
    def _resolve_subset(training_subset: Optional[float], alias: Optional[float]) -> float:
        if training_subset is not None and alias is not None and float(training_subset) != float(alias):
            raise ValueError(f'training_subset={training_subset} and soccernetv3_training_subset={alias} disagree')
        value = training_subset if training_subset is not None else alias
        value = 1.0 if value is None else float(value)
        if not 0.0 < value <= 1.0:
            raise ValueError(f'training_subset must be in (0, 1], got {value}')
        return value

    def _check_split_dirs(self, download: bool) -> None:
        needed = [d for d in (self.train_subdir, self.query_subdir, self.gallery_subdir) if d is not None]
        missing = [osp.join(self.reid_dir, d) for d in needed if not osp.isdir(osp.join(self.reid_dir, d))]
        if missing:
            hint = ('' if download else ' (download=False; pass download=True to fetch it with the SoccerNet package)')
            raise FileNotFoundError(
                f'{type(self).__name__}: split folder(s) missing: {", ".join(missing)}{hint}. '
                f'Put the data at {self.reid_dir}/ or download it manually: '
                f'{_manual_command(self.dataset_dir, self.download_splits)}')

    # ----- records -----
    def _apply_training_subset(self, samples: List[SoccerNetSample]) -> List[SoccerNetSample]:
        """Keep the first ``training_subset`` fraction of the training actions (by action_idx), at least one."""
        if self.training_subset >= 1.0:
            return samples
        actions = sorted({s.action_idx for s in samples})
        keep = max(1, int(len(actions) * self.training_subset))
        kept_actions = set(actions[:keep])
        kept = [s for s in samples if s.action_idx in kept_actions]
        logger.info('training_subset=%g: keeping %d of %d training actions (%d of %d images)',
                    self.training_subset, keep, len(actions), len(kept), len(samples))
        return kept

    @staticmethod
    def _train_records(samples: List[SoccerNetSample]
                       ) -> Tuple[List[Tuple[str, int, int, int]], List[SoccerNetSample]]:
        pid_map: Dict[int, int] = {}
        records = []
        for s in samples:  # already in bbox_idx order: labels follow first appearance
            pid = pid_map.setdefault(s.person_uid, len(pid_map))
            records.append((s.img_path, pid, s.action_idx, 0))
        return records, samples

    def _eval_record(self, sample: SoccerNetSample) -> Tuple[str, int, int, int]:
        pid = -1 if self.hidden_labels else sample.person_uid
        return (sample.img_path, pid, sample.action_idx, 0)

    # ----- ground truth -----
    def _find_ground_truth(self) -> Optional[str]:
        for candidate in self.ground_truth_candidates:
            path = osp.join(self.reid_dir, candidate)
            if osp.isfile(path):
                return path
        return None

    def check_ground_truth(self, path: Optional[str] = None) -> int:
        """Check that the query/gallery thumbnails on disk match the ground-truth JSON.

        Compares every record field the names carry (for hidden-label sets: bbox_idx, action_idx, height,
        width). Raises :class:`GroundTruthMismatchError` listing the disagreements; returns the number of
        samples checked.
        """
        path = path or self.ground_truth_path
        if path is None:
            raise FileNotFoundError(
                f'{type(self).__name__}: no ground-truth file found (looked for '
                f'{", ".join(osp.join(self.reid_dir, c) for c in self.ground_truth_candidates)})')
        gt = read_ground_truth(path)
        problems = []
        checked = 0
        for subset, samples in (('query', self.query_info), ('gallery', self.gallery_info)):
            records = gt[subset]
            on_disk = {str(s.bbox_idx): s for s in samples}
            for key in sorted(set(records) - set(on_disk), key=int):
                problems.append((f'{subset}[{key}]', f'in {osp.basename(path)} but no thumbnail on disk'))
            for key in sorted(set(on_disk) - set(records), key=int):
                problems.append((on_disk[key].img_path, f'on disk but {subset}[{key}] is not in the ground truth'))
            for key in sorted(set(on_disk) & set(records), key=int):
                sample, record = on_disk[key], records[key]
                checked += 1
                fields = GT_FIELDS if sample.labelled else ('bbox_idx', 'action_idx', 'height', 'width')
                diffs = [f'{f}: disk {getattr(sample, f)!r} vs gt {record[f]!r}'
                         for f in fields if getattr(sample, f) != record[f]]
                if diffs:
                    problems.append((sample.img_path, '; '.join(diffs)))
        if problems:
            raise GroundTruthMismatchError(
                f'{type(self).__name__}: {len(problems)} disagreement(s) between the thumbnails and {path} '
                f'(every thumbnail must match its ground-truth record): {summarise_errors(problems)}')
        return checked


class Soccernetv3(_SoccerNetV3Base):
    """SoccerNet-v3 ReID: train split for training, valid split as query/gallery.

    Args:
        root: data root holding ``soccernetv3/reid``.
        training_subset (or ``soccernetv3_training_subset``): fraction in (0, 1] of the training actions
            kept (the lowest ``action_idx`` ones; at least one).
        download: fetch missing splits with the SoccerNet package.
        check_ground_truth: compare the valid thumbnails with ``valid/bbox_info.json`` at init.
        verify_images: decode every image at init (slow on the full set).
    """
    train_subdir = 'train'
    query_subdir = 'valid/query'
    gallery_subdir = 'valid/gallery'
    download_splits = ('train', 'valid')
    ground_truth_candidates = ('valid/bbox_info.json', 'valid/valid_bbox_info.json', 'valid_bbox_info.json')


class Soccernetv3Test(_SoccerNetV3Base):
    """SoccerNet-v3 ReID test split (query/gallery only; a target, never a source)."""
    query_subdir = 'test/query'
    gallery_subdir = 'test/gallery'
    download_splits = ('test',)
    ground_truth_candidates = ('test/bbox_info.json', 'test/test_bbox_info.json', 'test_bbox_info.json')


class Soccernetv3Challenge(_SoccerNetV3Base):
    """SoccerNet-v3 ReID challenge split: flat folders, labels hidden (pid -1); rankings are exported."""
    hidden_labels = True
    query_subdir = 'challenge/query'
    gallery_subdir = 'challenge/gallery'
    flat = True
    download_splits = ('challenge',)
    ground_truth_candidates = ('challenge_labels/bbox_info.json', 'challenge/challenge_bbox_info.json',
                               'challenge_bbox_info.json')
