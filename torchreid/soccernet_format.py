"""The SoccerNet-v3 ReID file format: thumbnail names and the official ground-truth JSON.

Names (train, valid, test)::

    <bbox_idx>-<action_idx>-<person_uid>-<frame_idx>-<clazz>-<id>-<UAI>-<H>x<W>.png
    54404-1940-33397-5089-Player_team_right-9-014r002_00858c3b0003-775x449.png

Challenge names (labels hidden)::

    <bbox_idx>-<action_idx>-<H>x<W>.png

Fields are separated by ``-``; the class uses ``_`` and the UAI may contain ``_``, so neither may contain ``-``.
The ground truth (``bbox_info.json``) is ``{"query": {"<bbox_idx>": record}, "gallery": {...}}`` with
records of the fields in :data:`GT_FIELDS`. A ranking (the challenge submission, ``{"<query bbox_idx>":
[gallery bbox_idx, ...]}``) must obey :data:`RANKING_RULE`; :func:`find_ranking_violation` finds the first
place where it does not, in the official evaluator's order.

This module is the one place that knows these formats: the datasets, the synthetic generator, the ranking
export and the ranking-file evaluator go through it. It imports numpy and the standard library only.
"""
import dataclasses
import json
import os.path as osp
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from torchreid.utils.io import atomic_write_json

__all__ = [
    'CLASSES', 'CLASS_GROUPS', 'GT_FIELDS', 'GT_EVAL_FIELDS', 'HEIGHT_BUCKETS', 'SoccerNetSample', 'FilenameError',
    'GroundTruthError', 'GroundTruthKeyError', 'UnknownGalleryItemError', 'RANKING_RULE', 'RankingViolation',
    'parse_filename', 'format_filename', 'read_json', 'check_ground_truth', 'read_ground_truth', 'write_ground_truth',
    'check_train_ground_truth', 'read_train_ground_truth', 'GROUND_TRUTH_NAMES',
    'samples_to_gt_split', 'gt_split_to_samples', 'find_ranking_violation',
]

# The seven classes that occur in the ReID thumbnails, as written in file names.
CLASSES = (
    'Player_team_left', 'Player_team_right', 'Goalkeeper_team_left', 'Goalkeeper_team_right',
    'Main_referee', 'Side_referee', 'Staff_members',
)
# Coarse groups used for per-class reporting.
CLASS_GROUPS = {
    'Player_team_left': 'players', 'Player_team_right': 'players',
    'Goalkeeper_team_left': 'goalkeepers', 'Goalkeeper_team_right': 'goalkeepers',
    'Main_referee': 'referees', 'Side_referee': 'referees',
    'Staff_members': 'staff',
}
# (label, low inclusive, high exclusive) in pixels of thumbnail height: the per-size breakdown of the scores.
HEIGHT_BUCKETS = (('<50', 0, 50), ('50-100', 50, 100), ('100-200', 100, 200), ('>=200', 200, float('inf')))
GT_FIELDS = ('bbox_idx', 'action_idx', 'person_uid', 'frame_idx', 'clazz', 'id', 'UAI', 'relative_path',
             'height', 'width')

_LABELLED_FIELDS = 8
_CHALLENGE_FIELDS = 3
_SHAPE = re.compile(r'^(\d+)x(\d+)$')
_INT = re.compile(r'^\d+$')
# One pass over a well-formed labelled name (the common case at 248k files); anything it does not match
# goes through the field-by-field checks, which name the rule broken.
_LABELLED_NAME = re.compile(
    r'^(\d+)-(\d+)-(\d+)-(\d+)-(' + '|'.join(CLASSES) + r')-([^-]+)-([^-]+)-([1-9]\d*)x([1-9]\d*)\.png$')


class FilenameError(ValueError):
    """A thumbnail name that does not follow the SoccerNet-v3 ReID naming convention."""


class GroundTruthError(ValueError):
    """A ground truth that does not follow the official format, or that no ranking could satisfy.

    Raised wherever the fault is the ground truth's, never the submission's (a ``ValueError``, as the official
    evaluator's refusals are).
    """


class GroundTruthKeyError(GroundTruthError, KeyError):
    """A query whose action has no gallery item: the official evaluator's ``KeyError``, blamed on the ground truth."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


@dataclasses.dataclass(frozen=True)
class SoccerNetSample:
    """Everything one thumbnail's name (and its folder) says about it.

    Labelled fields are ``None`` for challenge samples (``labelled`` is False there).
    ``relative_path`` is the action folder relative to the split/subset folder
    (``<championship>/<season>/<game>/<action>``), ``''`` for the flat challenge folders.
    """
    bbox_idx: int
    action_idx: int
    height: int
    width: int
    person_uid: Optional[int] = None
    frame_idx: Optional[int] = None
    clazz: Optional[str] = None
    id: Optional[str] = None
    UAI: Optional[str] = None
    relative_path: str = ''
    img_path: str = ''

    @property
    def labelled(self) -> bool:
        return self.person_uid is not None

    def to_gt_record(self) -> dict:
        """The official ground-truth record of this sample."""
        if not self.labelled:
            raise GroundTruthError(f'sample {self.bbox_idx} has hidden labels: it has no ground-truth record')
        return {field: getattr(self, field) for field in GT_FIELDS}


def _int_field(value: str, field: str, name: str) -> int:
    if not _INT.match(value):
        raise FilenameError(f'{name!r}: field {field} must be a non-negative integer, got {value!r}')
    return int(value)


def _shape_field(value: str, name: str) -> Tuple[int, int]:
    match = _SHAPE.match(value)
    if match is None:
        raise FilenameError(f"{name!r}: the last field must be '<H>x<W>' (e.g. 775x449), got {value!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height == 0 or width == 0:
        raise FilenameError(f'{name!r}: thumbnail size must be positive, got {value!r}')
    return height, width


def parse_filename(path: str, relative_path: str = '') -> SoccerNetSample:
    """Parse a thumbnail path (or bare name) into a :class:`SoccerNetSample`.

    Raises :class:`FilenameError`, naming the file and the rule broken, for any name that does not
    follow the convention: wrong extension, wrong number of ``-`` fields, a non-integer index, a class
    outside :data:`CLASSES`, an empty field, or a malformed ``<H>x<W>``.
    """
    name = osp.basename(path)
    fast = _LABELLED_NAME.match(name)
    if fast is not None:
        bbox, action, uid, frame, clazz, jersey, uai, height, width = fast.groups()
        return SoccerNetSample(
            bbox_idx=int(bbox), action_idx=int(action), height=int(height), width=int(width), person_uid=int(uid),
            frame_idx=int(frame), clazz=clazz, id=jersey, UAI=uai, relative_path=relative_path, img_path=str(path))
    stem, ext = osp.splitext(name)
    if ext.lower() != '.png':
        raise FilenameError(f'{name!r}: thumbnails must be .png files')
    fields = stem.split('-')
    if len(fields) == _LABELLED_FIELDS:
        bbox, action, uid, frame, clazz, jersey, uai, shape = fields
        if clazz not in CLASSES:
            raise FilenameError(f'{name!r}: unknown class {clazz!r}; expected one of {", ".join(CLASSES)}')
        if not jersey:
            raise FilenameError(f"{name!r}: the id field is empty (a jersey number, a letter or 'None')")
        if not uai:
            raise FilenameError(f'{name!r}: the UAI field is empty')
        height, width = _shape_field(shape, name)
        return SoccerNetSample(
            bbox_idx=_int_field(bbox, 'bbox_idx', name), action_idx=_int_field(action, 'action_idx', name),
            height=height, width=width, person_uid=_int_field(uid, 'person_uid', name),
            frame_idx=_int_field(frame, 'frame_idx', name), clazz=clazz, id=jersey, UAI=uai,
            relative_path=relative_path, img_path=str(path))
    if len(fields) == _CHALLENGE_FIELDS:
        bbox, action, shape = fields
        height, width = _shape_field(shape, name)
        return SoccerNetSample(
            bbox_idx=_int_field(bbox, 'bbox_idx', name), action_idx=_int_field(action, 'action_idx', name),
            height=height, width=width, relative_path=relative_path, img_path=str(path))
    raise FilenameError(
        f"{name!r}: expected {_LABELLED_FIELDS} '-'-separated fields "
        '(<bbox_idx>-<action_idx>-<person_uid>-<frame_idx>-<clazz>-<id>-<UAI>-<H>x<W>.png) '
        f'or {_CHALLENGE_FIELDS} for the challenge (<bbox_idx>-<action_idx>-<H>x<W>.png), got {len(fields)}')


def format_filename(sample: SoccerNetSample, hide_labels: bool = False) -> str:
    """The thumbnail name of ``sample`` (the challenge form when ``hide_labels`` or unlabelled)."""
    shape = f'{sample.height}x{sample.width}'
    if hide_labels or not sample.labelled:
        return f'{sample.bbox_idx}-{sample.action_idx}-{shape}.png'
    for field in ('clazz', 'id', 'UAI'):
        value = getattr(sample, field)
        if not value or '-' in value:
            raise FilenameError(f'sample {sample.bbox_idx}: field {field}={value!r} must be non-empty and free of "-"')
    return (f'{sample.bbox_idx}-{sample.action_idx}-{sample.person_uid}-{sample.frame_idx}-{sample.clazz}-'
            f'{sample.id}-{sample.UAI}-{shape}.png')


# Fields the evaluation reads; a ground truth for scoring rankings needs no more (the official evaluator's use).
GT_EVAL_FIELDS = {'query': ('action_idx', 'person_uid'), 'gallery': ('bbox_idx', 'action_idx', 'person_uid')}
_INT_FIELDS = ('bbox_idx', 'action_idx', 'person_uid', 'frame_idx', 'height', 'width')
_INT64 = (-2 ** 63, 2 ** 63 - 1)

#: Where each split's ground truth lives, relative to ``<root>/soccernetv3/reid``: ``(names, other_names)``.
#: ``names`` are the release's (in the split's zip, or where the SoccerNet downloader's ``test_labels`` /
#: ``challenge_labels`` put them; ``challenge_labels/bbox_info.json`` is the synthetic set's, the real challenge
#: labels being private), first one preferred; ``other_names`` are used by other tools: the datasets accept
#: them with a warning naming the release's name.
GROUND_TRUTH_NAMES = {
    'train': (('train/train_bbox_info.json',), ()),
    'valid': (('valid/bbox_info.json',), ('valid/valid_bbox_info.json', 'valid_bbox_info.json')),
    'test': (('test/test_bbox_info.json', 'test_bbox_info.json'), ('test/bbox_info.json',)),
    'challenge': (('challenge_labels/bbox_info.json', 'challenge_bbox_info.json', 'challenge/challenge_bbox_info.json'),
                  ()),
}


def read_json(path: str, what: str) -> Any:
    """Load a JSON file the official tools read: UTF-8, or latin-1 (the first release files were latin-1).

    A missing file is a ``FileNotFoundError``; broken JSON (cut short, nested too deep to parse) a ``ValueError``
    (a :class:`GroundTruthError` when ``what`` is ``'ground-truth'``), each naming ``what`` and the path.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}')
    error = GroundTruthError if what == 'ground-truth' else ValueError
    for encoding in ('utf-8', 'latin-1'):
        try:
            with open(path, encoding=encoding) as f:
                return json.load(f)
        except UnicodeDecodeError:
            continue
        except json.JSONDecodeError as err:
            raise error(f'{what} file {path}: not valid JSON ({err})') from err
        except RecursionError as err:   # json's C parser recurses once per nesting level
            raise error(f'{what} file {path}: nested too deeply to be read (no SoccerNet file nests more than 3 '
                        'levels)') from err
    raise error(f'{what} file {path}: neither UTF-8 nor latin-1 text')  # latin-1 decodes any byte: unreachable


def check_ground_truth(data: Any, where: str = '<ground truth>', strict: bool = True) -> Dict[str, Dict[str, dict]]:
    """Check the structure of a ground truth ``{"query": {...}, "gallery": {...}}``; returns it.

    ``strict``: every record holds every field of :data:`GT_FIELDS` with integer indices (what the release and
    the synthetic generator write, and what the datasets compare with the files on disk). Otherwise only the
    fields the evaluation reads (:data:`GT_EVAL_FIELDS`) are required, as integers (the official evaluator
    compares them with ``==``: a ``"5"`` beside a ``5`` would silently never match). In both cases a gallery key
    must be the string of its integer ``bbox_idx`` (rankings name gallery items by it). Raises
    :class:`GroundTruthError` naming ``where``, the record and the rule broken.
    """
    if not isinstance(data, dict) or not {'query', 'gallery'} <= set(data):
        raise GroundTruthError(f'{where}: expected an object with "query" and "gallery" keys')
    for subset in ('query', 'gallery'):
        fields = GT_FIELDS if strict else GT_EVAL_FIELDS[subset]
        _check_records(data[subset], subset, where, fields)
    return data


def check_train_ground_truth(data: Any, where: str = '<train ground truth>') -> Dict[str, dict]:
    """Check a train ground truth (``train_bbox_info.json``: a flat ``{"<bbox_idx>": record}``); returns it."""
    _check_records(data, 'train', where, GT_FIELDS)
    return data


def _check_records(records: Any, subset: str, where: str, fields: Iterable[str]) -> None:
    if not isinstance(records, dict):
        raise GroundTruthError(f'{where}: "{subset}" must be an object keyed by bbox_idx')
    ints = [f for f in _INT_FIELDS if f in fields]
    # Whole-column checks first (a ground truth holds tens of thousands of records); only when one fails is
    # each record looked at, to name the first bad one and what is wrong with it.
    values = list(records.values())
    required = set(fields)
    ok = all(type(r) is dict for r in values) and all(required <= r.keys() for r in values)
    for field in ints if ok else ():
        column = [r[field] for r in values]
        ok = (not column or (set(map(type, column)) == {int} and _INT64[0] <= min(column)
                             and max(column) <= _INT64[1])) and \
            (field != 'bbox_idx' or list(map(str, column)) == list(records))
        if not ok:
            break
    if not ok:
        for key, record in records.items():
            _check_record(record, key, subset, where, fields, ints)


def _check_record(record: Any, key: str, subset: str, where: str, fields: Iterable[str],
                  ints: Iterable[str]) -> None:
    if not isinstance(record, dict):
        raise GroundTruthError(f'{where}: {subset}[{key!r}] must be an object, got {type(record).__name__}')
    missing = [f for f in fields if f not in record]
    if missing:
        raise GroundTruthError(f'{where}: {subset}[{key!r}] lacks field(s) {", ".join(missing)}')
    for field in ints:
        value = record[field]
        if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:    # bool is an int subclass, no index
            raise GroundTruthError(f'{where}: {subset}[{key!r}].{field} must be an integer (64-bit), got '
                                   f'{value!r} of type {type(value).__name__}')
    if 'bbox_idx' in ints and str(record['bbox_idx']) != key:
        raise GroundTruthError(f'{where}: {subset} key {key!r} differs from its record bbox_idx {record["bbox_idx"]}')


def read_ground_truth(path: str, strict: bool = True) -> Dict[str, Dict[str, dict]]:
    """Read and check an official ground-truth JSON (see :func:`check_ground_truth` for ``strict``)."""
    return check_ground_truth(read_json(path, 'ground-truth'), where=path, strict=strict)


def read_train_ground_truth(path: str) -> Dict[str, dict]:
    """Read and check ``train/train_bbox_info.json`` (see :func:`check_train_ground_truth`)."""
    return check_train_ground_truth(read_json(path, 'ground-truth'), where=path)


# ----------------------------------------------------------------------------------------------------------
# The ranking rule
# ----------------------------------------------------------------------------------------------------------
#: The rule every ranking obeys (the challenge server's and the official evaluator's).
RANKING_RULE = "a ranking lists every gallery item of the query's action exactly once, and nothing else"


class UnknownGalleryItemError(KeyError, ValueError):
    """A ranked item that is not a gallery item: the official evaluator's ``KeyError``, also a ``ValueError``."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


# kind -> (exception type of the official evaluator, what the rule broken looks like). The last two are faults
# of the ground truth (no ranking could be accepted): their types are GroundTruthError subclasses of the official
# ones.
_VIOLATIONS = {
    'missing': (ValueError, 'has no ranking: every query needs one'),
    'not_integer': (TypeError, 'holds {item}, which is not an integer; gallery items are named by integers'),
    'duplicate': (ValueError, 'lists {item} twice'),
    'unknown': (UnknownGalleryItemError, 'holds {item}, which is not a gallery item'),
    'other_action': (ValueError, 'holds {item}, which belongs to another action'),
    'no_gallery': (GroundTruthKeyError, "cannot be ranked: the query's action has no gallery item"),
    'incomplete': (ValueError, 'has the wrong length ({length} instead of {expected}): it misses {item} of its '
                               'action'),
    'no_match': (GroundTruthError, "has no match: the query's identity is not in its action's gallery"),
}
_GROUND_TRUTH_KINDS = ('no_gallery', 'no_match')


@dataclasses.dataclass(frozen=True)
class RankingViolation:
    """The first place where a set of rankings breaks :data:`RANKING_RULE`, in the official evaluator's order.

    ``query`` is the query's index, ``kind`` one of ``missing``, ``not_integer``, ``duplicate``, ``unknown``,
    ``other_action``, ``no_gallery``, ``incomplete``, ``no_match``; ``entry`` the offending entry's index in
    the flat list (item-level kinds) and ``item`` the gallery position missing (``incomplete``).
    ``no_gallery`` and ``no_match`` are faults of the ground truth (:attr:`ground_truth_fault`): no ranking of
    that query could be accepted.
    """

    query: int
    kind: str
    entry: Optional[int] = None
    item: Optional[int] = None

    @property
    def ground_truth_fault(self) -> bool:
        """True when the ground truth, not the ranking, is at fault."""
        return self.kind in _GROUND_TRUTH_KINDS

    def error(self, query_name: str, item_name: Callable[[int], str], length: int = 0,
              expected: int = 0) -> Exception:
        """The exception to raise: ``query_name`` names the query, ``item_name(x)`` an item (a flat entry's raw
        value for item-level kinds, a gallery position for ``incomplete``)."""
        kind, template = _VIOLATIONS[self.kind]
        item = self.item if self.entry is None else self.entry
        text = template.format(item=item_name(item) if item is not None else None, length=length,
                               expected=expected)
        if self.ground_truth_fault:
            return kind(f'query {query_name} {text}: the ground truth is not a valid evaluation set (every query '
                        'needs a match in its own action), whatever the ranking')
        return kind(f'ranking of query {query_name} {text}; {RANKING_RULE}')


def _dense_codes(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray, int]:
    """Shared codes ``0..K-1`` of two label arrays, and ``K``; small non-negative ints are their own codes."""
    if a.dtype.kind in 'iu' and b.dtype.kind in 'iu':
        both = np.concatenate([a, b])
        if both.size == 0 or (both.min() >= 0 and both.max() < 4 * both.size):
            return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False), int(both.max(initial=-1)) + 1
    uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.reshape(-1)
    return inv[:a.shape[0]], inv[a.shape[0]:], int(uniq.size)


def _repeats(seg: np.ndarray, flat: np.ndarray, in_action: np.ndarray, g_codes: np.ndarray) -> np.ndarray:
    """Per entry, True where the same gallery item stood earlier in the same query's list (entries outside
    ``in_action``, the entries naming a gallery item of the query's own action, are never repeats: they break
    the rule earlier)."""
    repeat = np.zeros(flat.size, dtype=bool)
    idx = np.flatnonzero(in_action)
    if idx.size < 2:
        return repeat
    # An item's index inside its action's gallery: (query, that index) identifies an entry's item in a range
    # small enough to count in O(n); the common case (no repeat) needs nothing more.
    order = np.argsort(g_codes, kind='stable')
    count = np.bincount(g_codes)
    local = np.empty(g_codes.size, dtype=np.int64)
    local[order] = np.arange(g_codes.size) - np.repeat(np.cumsum(count) - count, count)
    width = int(count.max())
    key = seg[idx] * width + local[flat[idx]]
    if np.bincount(key).max() < 2:
        return repeat
    order = np.argsort(key, kind='stable')                 # equal keys keep list order: the first one stays
    dup = np.zeros(idx.size, dtype=bool)
    dup[order[1:]] = key[order[1:]] == key[order[:-1]]
    repeat[idx] = dup
    return repeat


def find_ranking_violation(offsets: np.ndarray, flat: np.ndarray, q_actions: np.ndarray, g_actions: np.ndarray,
                           present: Optional[np.ndarray] = None, not_integer: Optional[np.ndarray] = None,
                           bools: Optional[np.ndarray] = None, q_pids: Optional[np.ndarray] = None,
                           g_pids: Optional[np.ndarray] = None) -> Optional[RankingViolation]:
    """The first violation of :data:`RANKING_RULE`, or None when every ranking obeys it.

    Args:
        offsets: int ``[nq + 1]``: query ``i``'s ranking is ``flat[offsets[i]:offsets[i + 1]]``.
        flat: int64 gallery POSITIONS (indices into ``g_actions``), ``-1`` for an item that is no gallery item.
        q_actions, g_actions: int action codes of every query / gallery item.
        present: bool ``[nq]``, False where a query has no ranking at all (default: all present).
        not_integer: bool per entry, True where the submitted item is not an integer.
        bools: bool per entry, True where the item is a Python ``bool``: it passes the integer check and
            equals 0 / 1 (``flat`` holds the position of gallery id 0 / 1, or -1), so it repeats an earlier 0 / 1,
            but it names no gallery item.
        q_pids, g_pids: int identity codes; when given, a query whose action holds no item of its identity
            is a violation (``no_match``).

    The order is the official evaluator's: queries in order; inside one, a missing ranking, then the first
    bad entry (not an integer, a repeat, not a gallery item, another action's item, checked in that order
    per entry), then an action without gallery, an incomplete list, no match.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    q_actions, g_actions = np.asarray(q_actions), np.asarray(g_actions)
    nq, ng = q_actions.shape[0], g_actions.shape[0]
    lengths = np.diff(offsets)
    seg = np.repeat(np.arange(nq, dtype=np.int64), lengths)
    present = np.ones(nq, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    q_codes, g_codes, num_actions = _dense_codes(q_actions, g_actions)
    q_actions, g_actions = q_codes, g_codes
    bad_type = np.zeros(flat.size, dtype=bool) if not_integer is None else np.asarray(not_integer, dtype=bool)

    is_bool = np.zeros(flat.size, dtype=bool) if bools is None else np.asarray(bools, dtype=bool)
    in_range = (flat >= 0) & (flat < ng) & ~bad_type
    same_action = np.zeros(flat.size, dtype=bool)
    same_action[in_range] = g_actions[flat[in_range]] == q_actions[seg[in_range]]
    known = in_range & ~is_bool
    foreign = known & ~same_action
    # A bool equal to an item listed earlier is that item's repeat; otherwise it names no gallery item.
    repeat = _repeats(seg, flat, in_range & same_action, g_codes)
    bad_entry = ~known | repeat | foreign                     # not an integer, or a bool: not known

    g_count = np.bincount(g_codes, minlength=num_actions)
    bad_entry_query = np.zeros(nq, dtype=bool)
    bad_entry_query[seg[bad_entry]] = True
    no_gallery = g_count[q_codes] == 0
    incomplete = lengths != g_count[q_codes]
    no_match = np.zeros(nq, dtype=bool)
    if q_pids is not None and g_pids is not None:
        q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
        hits = np.zeros(flat.size, dtype=bool)
        ok = ~bad_entry
        hits[ok] = g_pids[flat[ok]] == q_pids[seg[ok]]
        no_match = np.bincount(seg[hits], minlength=nq) == 0
    failing = ~present | bad_entry_query | no_gallery | incomplete | no_match
    if not failing.any():
        return None
    q = int(np.flatnonzero(failing)[0])
    if not present[q]:
        return RankingViolation(q, 'missing')
    if bad_entry_query[q]:
        first = int(offsets[q]) + int(np.flatnonzero(bad_entry[offsets[q]:offsets[q + 1]])[0])
        # the entry's first broken check, in the official per-entry order
        kind = ('not_integer' if bad_type[first] else 'duplicate' if repeat[first] else
                'unknown' if not known[first] else 'other_action')
        return RankingViolation(q, kind, entry=first)
    if no_gallery[q]:
        return RankingViolation(q, 'no_gallery')
    if incomplete[q]:
        listed = set(flat[offsets[q]:offsets[q + 1]].tolist())
        action_items = np.flatnonzero(g_codes == q_codes[q])
        missing = next(int(g) for g in action_items if int(g) not in listed)
        return RankingViolation(q, 'incomplete', item=missing)
    return RankingViolation(q, 'no_match')


def samples_to_gt_split(samples: Iterable[SoccerNetSample]) -> Dict[str, dict]:
    """``{"<bbox_idx>": record}`` for labelled samples, in bbox_idx order."""
    ordered = sorted(samples, key=lambda s: s.bbox_idx)
    return {str(s.bbox_idx): s.to_gt_record() for s in ordered}


def write_ground_truth(path: str, query: Iterable[SoccerNetSample], gallery: Iterable[SoccerNetSample]) -> str:
    """Write the official ground-truth JSON for a query/gallery split, atomically. Returns ``path``."""
    data = {'query': samples_to_gt_split(query), 'gallery': samples_to_gt_split(gallery)}
    atomic_write_json(path, data)  # creates the parent folder
    return path


def gt_split_to_samples(records: Dict[str, dict], root: str = '') -> List[SoccerNetSample]:
    """The samples of one ground-truth subset, in bbox_idx order; ``img_path`` is rebuilt under ``root``."""
    samples = []
    for record in sorted(records.values(), key=lambda r: r['bbox_idx']):
        sample = SoccerNetSample(**{f: record[f] for f in GT_FIELDS})
        name = format_filename(sample)
        img_path = osp.join(root, record['relative_path'], name) if root else name
        samples.append(dataclasses.replace(sample, img_path=img_path))
    return samples
