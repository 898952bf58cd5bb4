"""SoccerNet-v3 ReID: the train split, and the valid / test / challenge query-gallery splits.

Layout under ``<root>/soccernetv3/reid/``::

    train/<championship>/<season>/<game>/<action>/*.png
    valid/{query,gallery}/<championship>/<season>/<game>/<action>/*.png   (+ valid/bbox_info.json)
    test/{query,gallery}/...                                              (+ test/test_bbox_info.json)
    challenge/{query,gallery}/*.png                                       (flat, labels hidden)

Records are ``(img_path, pid, camid, dsetid)`` with ``camid = action_idx`` (the evaluation compares a
query only with the gallery of its own action). Train pids are relabelled 0..K-1; valid/test pids are
the ``person_uid``; challenge pids are -1. Every parsed name field is kept in ``*_info`` as a
:class:`SoccerNetSample`. Lists are ordered by ``bbox_idx``, which must run 0..N-1 without gaps: the
challenge export writes list positions, and the ground truth is keyed by ``bbox_idx``.

Everything checkable is checked when the dataset is built, not at the final test: names, unreadable files and
folders, link cycles, gaps in ``bbox_idx`` and ``action_idx``, actions with queries but no gallery, and (option
``check_ground_truth``, on by default) the files against the ground truth when it is there, which finds what
the names cannot (a deleted last action or last file). ``verify_images`` opens the files too.
"""
import logging
import os
import os.path as osp
import stat
import zipfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from torchreid.soccernet_format import (GROUND_TRUTH_NAMES, GT_FIELDS, FilenameError, SoccerNetSample, parse_filename,
                                        read_ground_truth, read_train_ground_truth)
from ..dataset import ImageDataset, resolve_verify_images, summarise_errors, summarise_paths

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


def _gaps(values: Sequence[int]) -> List[Tuple[int, int, int]]:
    """``(first missing, last missing, index in values of the one after)`` for each hole in ``0..max`` left by
    the sorted distinct non-negative ``values``; linear in ``len(values)`` whatever their size."""
    gaps, previous = [], -1
    for i, value in enumerate(values):
        if value > previous + 1:
            gaps.append((previous + 1, value - 1, i))
        previous = value
    return gaps


def _ranges_text(gaps: Sequence[Tuple[int, int, int]], limit: int = _MAX_LISTED) -> str:
    """``'3, 7-9, 12'``, cut after ``limit`` ranges."""
    text = ', '.join(f'{lo}' if lo == hi else f'{lo}-{hi}' for lo, hi, _ in gaps[:limit])
    return text + (f' (and {len(gaps) - limit} more ranges)' if len(gaps) > limit else '')


# A PNG starts with an 8-byte signature: anything shorter cannot be a thumbnail (an empty or cut file).
_MIN_PNG_BYTES = 8


def _walk_folders(top: str, errors: List[Tuple[str, str]]) -> Iterator[Tuple[str, int, List[os.DirEntry]]]:
    """``(folder, depth below top, file entries)`` of every folder under ``top``, in name order.

    Symbolic links to folders are followed (the data is often linked in), each real folder once: a folder
    reached again (a link cycle, or the same folder linked twice) is an error, as is a folder that cannot be
    listed; both are appended to ``errors`` as ``(path, reason)``, never skipped silently. Linear in the
    number of entries.
    """
    top_stat = os.stat(top)
    seen = {(top_stat.st_dev, top_stat.st_ino): top}
    stack = [(top, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as err:
            errors.append((folder, f'folder cannot be read ({err.strerror or err})'))
            continue
        files, subfolders = [], []
        for entry in entries:
            try:
                is_folder = entry.is_dir()   # follows links
                info = entry.stat() if is_folder else None
            except OSError as err:
                errors.append((entry.path, f'cannot be read ({err.strerror or err})'))
                continue
            if not is_folder:
                files.append(entry)
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                errors.append((entry.path, f'leads to {seen[key]} again (a symbolic-link cycle, or one folder '
                                           'linked twice): every folder must be reached once'))
                continue
            seen[key] = entry.path
            subfolders.append(entry.path)
        yield folder, level, files
        stack.extend((path, level + 1) for path in reversed(subfolders))


def _unreadable_reason(entry: os.DirEntry) -> Optional[str]:
    """Why a thumbnail file cannot be read (missing link target, not a file, empty or cut, no permission)."""
    try:
        info = entry.stat()   # follows links
    except OSError as err:
        return f'cannot be read ({err.strerror or err}; a broken symbolic link?)'
    if not stat.S_ISREG(info.st_mode):
        return 'is not a regular file'
    if info.st_size < _MIN_PNG_BYTES:
        return f'holds {info.st_size} bytes: too short for a PNG (an empty or cut file)'
    if not os.access(entry.path, os.R_OK):
        return 'cannot be read (no read permission)'
    return None


def scan_subset(subset_dir: str, flat: bool, labelled: bool) -> List[SoccerNetSample]:
    """Parse every thumbnail of one subset folder, in ``bbox_idx`` order; one pass, no image opened.

    Checks the folder exists and is non-empty; every folder below it can be listed and is reached once
    (symbolic-link cycles are refused); every ``.png`` sits at the action depth, follows the naming rule and is
    a readable, non-empty file; and ``bbox_idx`` runs 0..N-1 exactly once each. Each check raises one error naming
    all offending files (count + the first ten). Linear in the number of files.
    """
    if not osp.isdir(subset_dir):
        raise FileNotFoundError(f'split folder missing: {subset_dir}')
    depth = 0 if flat else _ACTION_DEPTH
    layout = '*.png' if flat else '<championship>/<season>/<game>/<action>/*.png'
    samples, bad_names, misplaced, unreadable = [], [], [], []
    for folder, level, files in _walk_folders(subset_dir, unreadable):
        relative_path = '' if level == 0 else osp.relpath(folder, subset_dir).replace(os.sep, '/')
        for entry in files:
            name, path = entry.name, entry.path
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
            reason = _unreadable_reason(entry)
            if reason is not None:
                unreadable.append((path, reason))
            samples.append(sample)
    if unreadable:
        raise SoccerNetDataError(
            f'{len(unreadable)} folder(s) or file(s) under {subset_dir} cannot be used (every folder must be '
            f'listable and reached once, every thumbnail a readable PNG): {summarise_errors(unreadable)}')
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
    """bbox_idx must be 0..N-1, each once: list position == bbox_idx (the ranking export relies on it).

    ``samples`` are sorted by bbox_idx. Linear in their number, whatever the indices (a huge one included).
    """
    if all(s.bbox_idx == i for i, s in enumerate(samples)):  # the common case, checked cheaply
        return
    duplicates = [p for a, b in zip(samples, samples[1:]) if a.bbox_idx == b.bbox_idx
                  for p in (a.img_path, b.img_path)]
    if duplicates:
        raise SoccerNetDataError(
            f'bbox_idx must be unique within {subset_dir}; files sharing a bbox_idx: '
            f'{summarise_paths(list(dict.fromkeys(duplicates)))}')
    # Distinct indices that are not 0..N-1: the holes between consecutive ones (and before the first).
    gaps = _gaps([s.bbox_idx for s in samples])
    top = samples[-1].bbox_idx
    first_lo, first_hi, after = gaps[0]
    raise SoccerNetDataError(
        f'bbox_idx must run 0..N-1 without gaps within {subset_dir} ({len(samples)} files, largest bbox_idx '
        f'{top}: {top + 1 - len(samples)} thumbnail(s) missing, deleted or never unpacked); missing bbox_idx: '
        f'{_ranges_text(gaps)}; the first gap ({first_lo}-{first_hi}) ends before {samples[after].img_path} '
        f'(action {samples[after].action_idx})')


def check_split_actions(samples: Sequence[SoccerNetSample], where: str,
                        query: Sequence[SoccerNetSample] = ()) -> None:
    """The actions of one split run 0..A-1 (``samples``: all of its thumbnails), and every query's action
    has gallery thumbnails (``query`` given: ``samples`` is then the gallery plus the query).

    Raises :class:`SoccerNetDataError` naming the actions missing or without gallery.
    """
    actions = sorted({s.action_idx for s in samples})
    gaps = _gaps(actions)
    if gaps:
        raise SoccerNetDataError(
            f'action_idx must run 0..A-1 within {where} ({len(actions)} actions, largest {actions[-1]}): '
            f'{actions[-1] + 1 - len(actions)} action(s) have no thumbnail at all (deleted or never unpacked?): '
            f'{_ranges_text(gaps)}')
    if query:
        query_ids = {id(s) for s in query}
        gallery_actions = {s.action_idx for s in samples if id(s) not in query_ids}
        orphans: Dict[int, SoccerNetSample] = {}
        for s in query:
            if s.action_idx not in gallery_actions:
                orphans.setdefault(s.action_idx, s)
        if orphans:
            listed = '; '.join(f'action {a} (e.g. {s.img_path})' for a, s in list(orphans.items())[:_MAX_LISTED])
            raise SoccerNetDataError(
                f'{len(orphans)} action(s) of {where} have queries but no gallery thumbnail, so no ranking of '
                f'their queries can be evaluated or accepted by the challenge server: {listed}')


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
    # The split whose ground truth query/gallery are compared with (a key of GROUND_TRUTH_NAMES).
    ground_truth_split: str = ''

    def __init__(self, root: str = '', training_subset: Optional[float] = None,
                 soccernetv3_training_subset: Optional[float] = None, download: bool = True,
                 check_ground_truth: bool = True, **kwargs: Any):
        self.locate(root, kwargs)  # a misspelt option fails before the (large) folders are walked
        resolve_verify_images(kwargs.get('verify_images', False))   # a bad value fails before the walk too
        self.reid_dir = osp.join(self.dataset_dir, 'reid')
        self.training_subset = self._resolve_subset(training_subset, soccernetv3_training_subset)

        if download:
            download_soccernetv3(self.dataset_dir, self.download_splits)
        self._check_split_dirs(download)

        train, train_info = [], []
        if self.train_subdir is not None:
            train_dir = osp.join(self.reid_dir, self.train_subdir)
            train_samples = scan_subset(train_dir, flat=False, labelled=True)
            check_split_actions(train_samples, train_dir)
            if check_ground_truth:
                self._compare_train_ground_truth(train_samples)
            train_samples = self._apply_training_subset(train_samples)
            train, train_info = self._train_records(train_samples)
        query_samples = scan_subset(osp.join(self.reid_dir, self.query_subdir), self.flat, not self.hidden_labels)
        gallery_samples = scan_subset(osp.join(self.reid_dir, self.gallery_subdir), self.flat, not self.hidden_labels)
        check_split_actions(list(gallery_samples) + list(query_samples),
                            osp.join(self.reid_dir, osp.dirname(self.query_subdir)), query=query_samples)
        query = [self._eval_record(s) for s in query_samples]
        gallery = [self._eval_record(s) for s in gallery_samples]

        self.ground_truth_path = self._find_ground_truth()
        if check_ground_truth:
            # before the images are verified or anything else is built: a cheap check that names missing files
            self._compare_ground_truth(query_samples, gallery_samples)
        super().__init__(train, query, gallery, train_info=train_info, query_info=query_samples,
                         gallery_info=gallery_samples, **kwargs)

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
    def _find_ground_truth(self, split: Optional[str] = None) -> Optional[str]:
        """The ground-truth file of ``split`` (default: this dataset's query/gallery split), or None.

        The release's names are looked for first (:data:`~torchreid.soccernet_format.GROUND_TRUTH_NAMES`); a file
        under a name other tools use is taken with a warning naming the release's name.
        """
        names, other_names = GROUND_TRUTH_NAMES[split or self.ground_truth_split]
        for name in names:
            path = osp.join(self.reid_dir, name)
            if osp.isfile(path):
                return path
        for name in other_names:
            path = osp.join(self.reid_dir, name)
            if osp.isfile(path):
                logger.warning('%s: using the ground truth %s; the SoccerNet release names it %s (rename it to '
                               'silence this warning)', type(self).__name__, path, osp.join(self.reid_dir, names[0]))
                return path
        return None

    def _compare_ground_truth(self, query: Sequence[SoccerNetSample], gallery: Sequence[SoccerNetSample]) -> None:
        """The ``check_ground_truth`` option: compare when a ground truth is there, say so when it is not."""
        if self.ground_truth_path is not None:
            self._compare(read_ground_truth(self.ground_truth_path), (('query', query), ('gallery', gallery)),
                          self.ground_truth_path)
            return
        names = GROUND_TRUTH_NAMES[self.ground_truth_split][0]
        log = logger.info if self.hidden_labels else logger.warning
        log('%s: no ground truth found (looked for %s): the thumbnails could not be checked against it',
            type(self).__name__, ', '.join(osp.join(self.reid_dir, n) for n in names))

    def _compare_train_ground_truth(self, samples: Sequence[SoccerNetSample]) -> None:
        path = self._find_ground_truth('train')
        if path is None:
            logger.info('%s: no %s: the training thumbnails are checked by their names only', type(self).__name__,
                        osp.join(self.reid_dir, GROUND_TRUTH_NAMES['train'][0][0]))
            return
        self._compare({'train': read_train_ground_truth(path)}, (('train', samples),), path)

    def check_ground_truth(self, path: Optional[str] = None) -> int:
        """Check that the query/gallery thumbnails on disk match the ground-truth JSON.

        Compares every record field the names carry (for hidden-label sets: bbox_idx, action_idx, height,
        width). Raises :class:`GroundTruthMismatchError` listing the disagreements (thumbnails missing are
        counted per action); returns the number of samples checked.
        """
        path = path or self.ground_truth_path
        if path is None:
            names = GROUND_TRUTH_NAMES[self.ground_truth_split][0]
            raise FileNotFoundError(
                f'{type(self).__name__}: no ground-truth file found (looked for '
                f'{", ".join(osp.join(self.reid_dir, n) for n in names)})')
        return self._compare(read_ground_truth(path), (('query', self.query_info), ('gallery', self.gallery_info)),
                             path)

    def _compare(self, gt: Dict[str, Dict[str, dict]], subsets: Sequence[Tuple[str, Sequence[SoccerNetSample]]],
                 path: str) -> int:
        problems = []
        checked = 0
        for subset, samples in subsets:
            records = gt[subset]
            on_disk = {str(s.bbox_idx): s for s in samples}
            absent = [records[k] for k in records if k not in on_disk]
            if absent:
                problems.append((f'{subset} of {osp.basename(path)}',
                                 f'no thumbnail on disk for {_describe_absent(absent)}'))
            for key in sorted(set(on_disk) - set(records), key=int):
                problems.append((on_disk[key].img_path, f'on disk but {subset}[{key}] is not in the ground truth'))
            for key, sample in on_disk.items():
                record = records.get(key)
                if record is None:
                    continue
                checked += 1
                fields = GT_FIELDS if sample.labelled else ('bbox_idx', 'action_idx', 'height', 'width')
                diffs = [f'{f}: disk {getattr(sample, f)!r} vs gt {record[f]!r}'
                         for f in fields if not _same(getattr(sample, f), record[f])]
                if diffs:
                    problems.append((sample.img_path, '; '.join(diffs)))
        if problems:
            raise GroundTruthMismatchError(
                f'{type(self).__name__}: {len(problems)} disagreement(s) between the thumbnails and {path} '
                f'(every thumbnail must match its ground-truth record): {summarise_errors(problems)}')
        return checked


def _same(on_disk: Any, in_gt: Any) -> bool:
    """A name field equals its ground-truth value; text fields (a jersey ``id`` such as ``9``) by their text."""
    if isinstance(on_disk, str):
        return isinstance(in_gt, (str, int)) and not isinstance(in_gt, bool) and on_disk == str(in_gt)
    return on_disk == in_gt and type(in_gt) is not bool


def _describe_absent(records: Sequence[dict]) -> str:
    """``'12 record(s): action 7 (all 12 of them: bbox_idx 300-311)...'``: missing thumbnails, by action."""
    by_action: Dict[Any, List[int]] = {}
    for r in records:
        by_action.setdefault(r['action_idx'], []).append(r['bbox_idx'])
    parts = []
    for action, boxes in list(by_action.items())[:_MAX_LISTED]:
        boxes.sort()
        parts.append(f'action {action} ({len(boxes)}: bbox_idx {boxes[0]}' +
                     (f'-{boxes[-1]})' if len(boxes) > 1 else ')'))
    more = f' (and {len(by_action) - _MAX_LISTED} more actions)' if len(by_action) > _MAX_LISTED else ''
    return f'{len(records)} record(s): {"; ".join(parts)}{more}'


class Soccernetv3(_SoccerNetV3Base):
    """SoccerNet-v3 ReID: train split for training, valid split as query/gallery.

    Args:
        root: data root holding ``soccernetv3/reid``.
        training_subset (or ``soccernetv3_training_subset``): fraction in (0, 1] of the training actions
            kept (the lowest ``action_idx`` ones; at least one).
        download: fetch missing splits with the SoccerNet package.
        check_ground_truth: compare the thumbnails with the ground truth at init when it is there
            (``valid/bbox_info.json``, ``train/train_bbox_info.json``): a thumbnail missing (a deleted action
            included) or disagreeing fails now, naming it.
        verify_images: 'off', 'header' (open every file: a PNG of the size its name says) or 'full' (decode
            every image; slow on the full set); True means 'full'.
    """
    train_subdir = 'train'
    query_subdir = 'valid/query'
    gallery_subdir = 'valid/gallery'
    download_splits = ('train', 'valid')
    ground_truth_split = 'valid'


class Soccernetv3Test(_SoccerNetV3Base):
    """SoccerNet-v3 ReID test split (query/gallery only; a target, never a source)."""
    query_subdir = 'test/query'
    gallery_subdir = 'test/gallery'
    download_splits = ('test',)
    ground_truth_split = 'test'


class Soccernetv3Challenge(_SoccerNetV3Base):
    """SoccerNet-v3 ReID challenge split: flat folders, labels hidden (pid -1); rankings are exported."""
    hidden_labels = True
    query_subdir = 'challenge/query'
    gallery_subdir = 'challenge/gallery'
    flat = True
    download_splits = ('challenge',)
    ground_truth_split = 'challenge'
