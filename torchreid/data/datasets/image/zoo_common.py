"""What Torchreid's public datasets share: fetching an archive, split files, listing and naming checks.

Every dataset of the zoo (``cuhk03``, ``viper``, ``mars``...) reads its real on-disk layout. When the data is
missing, :func:`fetch_dataset` downloads the archive from the dataset's original source when there is one
(and ``download=True``), else raises :class:`FileNotFoundError` saying where to get the data and where to put
it: the same clear offline failure as the SoccerNet-v3 dataset.

Split files (``splits.json``...) hold the random splits a dataset draws once (with a fixed seed, so two
machines draw the same splits) and then reads back. Paths in the files this project writes are relative to
the dataset folder; absolute paths (the files Torchreid writes) are read as they are.
"""
import json
import logging
import os
import os.path as osp
import shutil
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torchreid.utils.io import atomic_write_json

from ..dataset import summarise_paths

logger = logging.getLogger(__name__)

__all__ = ['DatasetLayoutError', 'SplitFileError', 'IMAGE_EXTENSIONS', 'SPLIT_SEED', 'fetch_dataset',
           'download_and_extract', 'list_files', 'read_split_file', 'write_split_file', 'select_split',
           'records_from_json', 'records_to_json', 'read_lines']

#: File endings read as images (Torchreid's list, lower case).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
#: Seed of the random splits drawn when a dataset has no split file yet (Torchreid draws them unseeded;
#: a fixed seed gives every machine the same splits).
SPLIT_SEED = 0
_DOWNLOAD_TIMEOUT_S = 60
_GOOGLE_DRIVE_PREFIX = 'https://drive.google.com/uc?id='


class DatasetLayoutError(ValueError):
    """Files on disk that break a dataset's layout or naming rules."""


class SplitFileError(ValueError):
    """A split file that is not what the dataset wrote (wrong shape, missing field, bad split_id)."""


def download_and_extract(url: str, dest_dir: str, timeout: float = _DOWNLOAD_TIMEOUT_S) -> str:
    """Download the archive at ``url`` into ``dest_dir`` and extract it there; returns the archive path.

    Plain URLs (http, https, file) are read with ``urllib`` (a per-request timeout, written to a temporary
    name first so a broken transfer never looks complete); Google-Drive ids through torchvision (needs
    ``gdown``). Extraction is torchvision's ``extract_archive`` (zip, tar, tar.gz, tgz...).
    """
    from torchvision.datasets.utils import download_file_from_google_drive, extract_archive

    os.makedirs(dest_dir, exist_ok=True)
    if url.startswith(_GOOGLE_DRIVE_PREFIX):
        file_id = url[len(_GOOGLE_DRIVE_PREFIX):]
        archive = osp.join(dest_dir, f'{osp.basename(dest_dir)}.zip')
        download_file_from_google_drive(file_id, dest_dir, filename=osp.basename(archive))
    else:
        archive = osp.join(dest_dir, osp.basename(urllib.parse.urlparse(url).path) or 'download')
        partial = archive + '.part'
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, 'wb') as out:
                shutil.copyfileobj(response, out)
            os.replace(partial, archive)
        finally:
            if osp.exists(partial):
                os.remove(partial)
    logger.info('Extracting %s into %s', archive, dest_dir)
    extract_archive(archive, dest_dir)
    return archive


def fetch_dataset(name: str, dataset_dir: str, required: Sequence[str], url: Optional[str], download: bool,
                  manual: str) -> bool:
    """Make sure every path of ``required`` exists, downloading ``url`` when allowed; True if it downloaded.

    Args:
        name: the dataset's class name (errors start with it).
        dataset_dir: ``<root>/<dataset folder>``, where the archive is extracted.
        required: paths the dataset reads.
        url: the original source's archive, or None where there is no public direct link.
        download: try ``url`` when something is missing.
        manual: where to get the data and where to put it (said whenever the data is missing).
    """
    missing = [p for p in required if not osp.exists(p)]
    if not missing:
        return False
    where = f'{name}: required path(s) missing: {summarise_paths(missing)}.'
    if url is None:
        raise FileNotFoundError(f'{where} This dataset cannot be downloaded automatically. {manual}')
    if not download:
        raise FileNotFoundError(f'{where} (download=False; pass download=True to fetch {url}). {manual}')
    try:
        logger.info('%s: downloading %s into %s', name, url, dataset_dir)
        download_and_extract(url, dataset_dir)
    except Exception as err:  # offline, refused, bad archive, gdown missing: the user needs the manual route
        raise FileNotFoundError(f'{where} The download from {url} failed ({type(err).__name__}: {err}). '
                                f'{manual}') from err
    still = [p for p in required if not osp.exists(p)]
    if still:
        raise FileNotFoundError(f'{name}: the archive from {url} did not provide {summarise_paths(still)}. {manual}')
    return True


def list_files(dir_path: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Sorted names of the files in ``dir_path`` with one of ``extensions`` (case-insensitive).

    Hidden files (``.DS_Store``) are skipped; a missing folder is a :class:`FileNotFoundError`.
    """
    if not osp.isdir(dir_path):
        raise FileNotFoundError(f'folder missing: {dir_path}')
    exts = tuple(e.lower() for e in extensions)
    return sorted(e.name for e in os.scandir(dir_path)
                  if e.is_file() and not e.name.startswith('.') and e.name.lower().endswith(exts))


def read_lines(path: str) -> List[str]:
    """Non-empty lines of a text file, stripped."""
    with open(path, 'r', encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def read_split_file(path: str) -> List[Dict[str, Any]]:
    """The list of split dicts stored in ``path`` (a JSON list of objects)."""
    try:
        with open(path, 'r', encoding='utf-8') as f:
            splits = json.load(f)
    except json.JSONDecodeError as err:
        raise SplitFileError(f'{path}: not valid JSON ({err}); delete it to have the splits drawn again') from err
    if not isinstance(splits, list) or not splits or not all(isinstance(s, dict) for s in splits):
        raise SplitFileError(f'{path}: expected a non-empty JSON list of split objects')
    return splits


def write_split_file(path: str, splits: List[Dict[str, Any]]) -> None:
    """Write ``splits`` to ``path`` atomically (a reader never sees half a file)."""
    atomic_write_json(path, splits, indent=1)
    logger.info('%d split(s) written to %s', len(splits), path)


def select_split(splits: List[Dict[str, Any]], split_id: int, path: str, fields: Sequence[str]) -> Dict[str, Any]:
    """``splits[split_id]``, checked: the id is in range and the split has every field of ``fields``."""
    if isinstance(split_id, bool) or not isinstance(split_id, int) or not 0 <= split_id < len(splits):
        raise SplitFileError(f'split_id must be an int in 0..{len(splits) - 1} ({len(splits)} split(s) in {path}), '
                             f'got {split_id!r}')
    split = splits[split_id]
    absent = [f for f in fields if f not in split]
    if absent:
        raise SplitFileError(f'{path}: split {split_id} lacks field(s) {", ".join(absent)}')
    return split


def records_to_json(records: Sequence[Tuple[str, int, int]], base_dir: str) -> List[list]:
    """``[[path relative to base_dir, pid, camid], ...]`` for a split file."""
    return [[osp.relpath(path, base_dir), int(pid), int(camid)] for path, pid, camid, *_ in records]


def records_from_json(items: Any, base_dir: str, path: str, field: str,
                      paths: Optional[Callable[[Any], Any]] = None) -> List[Tuple[Any, int, int]]:
    """Records ``(img_path, pid, camid)`` of one split field; relative paths are joined to ``base_dir``.

    ``paths`` maps the stored path entry (a video tracklet stores a list of paths) to the record's.
    """
    if not isinstance(items, list):
        raise SplitFileError(f'{path}: field {field!r} must be a list of [img_path, pid, camid]')
    join = paths or (lambda p: osp.join(base_dir, p))
    records = []
    for k, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) < 3:
            raise SplitFileError(f'{path}: {field}[{k}] must be [img_path, pid, camid], got {item!r}')
        records.append((join(item[0]), int(item[1]), int(item[2])))
    return records
