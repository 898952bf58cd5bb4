"""The SoccerNet-v3 ReID file format: thumbnail names and the official ground-truth JSON.

Names (train, valid, test)::

    <bbox_idx>-<action_idx>-<person_uid>-<frame_idx>-<clazz>-<id>-<UAI>-<H>x<W>.png
    54404-1940-33397-5089-Player_team_right-9-014r002_00858c3b0003-775x449.png

Challenge names (labels hidden)::

    <bbox_idx>-<action_idx>-<H>x<W>.png

Fields are separated by ``-``; the class uses ``_`` and the UAI may contain ``_``, so neither may contain ``-``.
The ground truth (``bbox_info.json``) is ``{"query": {"<bbox_idx>": record}, "gallery": {...}}`` with
records of the fields in :data:`GT_FIELDS`. This module is the one place that knows both formats; the
dataset classes and the synthetic generator go through it.
"""
import dataclasses
import json
import os.path as osp
import re
from typing import Dict, Iterable, List, Optional, Tuple

from torchreid.utils.io import atomic_write_json

__all__ = [
    'CLASSES', 'CLASS_GROUPS', 'GT_FIELDS', 'SoccerNetSample', 'FilenameError', 'GroundTruthError',
    'parse_filename', 'format_filename', 'read_ground_truth', 'write_ground_truth', 'samples_to_gt_split',
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
    """A ground-truth JSON that does not follow the official format."""


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


def _check_gt_record(record, key: str, subset: str, path: str) -> None:
    if not isinstance(record, dict):
        raise GroundTruthError(f'{path}: {subset}[{key!r}] must be an object, got {type(record).__name__}')
    missing = [f for f in GT_FIELDS if f not in record]
    if missing:
        raise GroundTruthError(f'{path}: {subset}[{key!r}] lacks field(s) {", ".join(missing)}')
    for field in ('bbox_idx', 'action_idx', 'person_uid', 'frame_idx', 'height', 'width'):
        if not isinstance(record[field], int) or isinstance(record[field], bool):
            raise GroundTruthError(f'{path}: {subset}[{key!r}].{field} must be an integer, got {record[field]!r}')
    if str(record['bbox_idx']) != key:
        raise GroundTruthError(f'{path}: {subset} key {key!r} differs from its record bbox_idx {record["bbox_idx"]}')


def read_ground_truth(path: str) -> Dict[str, Dict[str, dict]]:
    """Read and check an official ground-truth JSON; returns ``{'query': {...}, 'gallery': {...}}``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'ground-truth file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise GroundTruthError(f'{path}: not valid JSON ({err})') from err
    if not isinstance(data, dict) or not {'query', 'gallery'} <= set(data):
        raise GroundTruthError(f'{path}: expected an object with "query" and "gallery" keys')
    for subset in ('query', 'gallery'):
        if not isinstance(data[subset], dict):
            raise GroundTruthError(f'{path}: "{subset}" must be an object keyed by bbox_idx')
        for key, record in data[subset].items():
            _check_gt_record(record, key, subset, path)
    return data


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
