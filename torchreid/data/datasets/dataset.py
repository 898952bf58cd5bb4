"""Base dataset classes: the record lists every ReID dataset exposes, and image loading.

A record is ``(img_path, pid, camid, dsetid)`` exactly as in Torchreid, so research code that unpacks
them keeps working. Datasets that know more about each sample (SoccerNet-v3) keep that metadata in
``train_info`` / ``query_info`` / ``gallery_info``, lists aligned with the record lists.
"""
import copy
import difflib
import inspect
import logging
import os.path as osp
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from PIL import Image

from torchreid.utils.tools import to_rgb

logger = logging.getLogger(__name__)

__all__ = ['Dataset', 'ImageDataset', 'UnreadableImageError', 'read_image', 'summarise_errors', 'summarise_paths',
           'SHARED_DATASET_OPTIONS', 'VERIFY_IMAGES_MODES', 'resolve_verify_images']

#: Options Torchreid's data manager passes to every dataset, whichever it is (one call shape fits all): a
#: dataset that does not use one accepts and ignores it. Any other keyword a dataset does not declare is an
#: error, so a misspelt option (``trainig_subset``) fails instead of being silently dropped.
SHARED_DATASET_OPTIONS = ('split_id', 'cuhk03_labeled', 'cuhk03_classic_split', 'market1501_500k',
                          'soccernetv3_training_subset', 'download', 'check_ground_truth', 'verify_images')
# Dataset.__init__'s record lists: a subclass with its own __init__ builds and passes them itself.
_RECORD_ARGS = ('train', 'query', 'gallery', 'train_info', 'query_info', 'gallery_info')

_MODES = ('train', 'query', 'gallery')
_MAX_LISTED = 10
#: ``verify_images`` levels: 'off'; 'header': open every file and read its header (a picture, of the size its
#: name says when the dataset knows it: SoccerNet names carry ``<H>x<W>``); 'full': decode every pixel.
VERIFY_IMAGES_MODES = ('off', 'header', 'full')


class UnreadableImageError(OSError):
    """An image file that does not exist or cannot be decoded."""


def summarise_paths(paths: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """``'<count> file(s): a, b, ... (and N more)'``: error messages name every offender, briefly."""
    paths = list(paths)
    shown = ', '.join(str(p) for p in paths[:limit])
    more = f' (and {len(paths) - limit} more)' if len(paths) > limit else ''
    return f'{len(paths)} file(s): {shown}{more}'


def summarise_errors(errors: Sequence[Tuple[str, str]], limit: int = _MAX_LISTED) -> str:
    """``'a: why; b: why (and N more)'`` for ``(path, reason)`` pairs, cut after ``limit``."""
    errors = list(errors)
    listed = '; '.join(f'{path}: {why}' for path, why in errors[:limit])
    more = f' (and {len(errors) - limit} more)' if len(errors) > limit else ''
    return f'{listed}{more}'


def read_image(path: str) -> Image.Image:
    """Read an image file as an 8-bit RGB ``PIL.Image``; 16-bit pictures keep their tones (scaled to 8 bits).

    Raises :class:`UnreadableImageError` (an ``OSError``) naming the file when it is missing or cannot be decoded.
    """
    if not osp.exists(path):
        raise UnreadableImageError(f'read_image: "{path}" does not exist')
    try:
        with Image.open(path) as img:
            return to_rgb(img)   # loads the pixels: the file can be closed at once
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(f'read_image: cannot read "{path}" as an image: {err}') from err


def resolve_verify_images(value: Union[bool, str, None]) -> str:
    """The :data:`VERIFY_IMAGES_MODES` level of a ``verify_images`` option (False/None: 'off', True: 'full')."""
    if value is None or value is False:
        return 'off'
    if value is True:
        return 'full'
    if isinstance(value, str) and value.lower() in VERIFY_IMAGES_MODES:
        return value.lower()
    raise ValueError(f'verify_images must be one of {", ".join(VERIFY_IMAGES_MODES)} (or a bool), got {value!r}')


def _check_image(path: str, mode: str = 'full', size: Optional[Tuple[int, int]] = None) -> Optional[str]:
    """None when ``path`` passes the ``mode`` check ('header' or 'full'), else the reason.

    ``size``: the ``(width, height)`` the picture must have (None: any).
    """
    try:
        with Image.open(path) as img:   # reads the header only
            if size is not None and img.size != tuple(size):
                return f'is {img.size[0]}x{img.size[1]} (WxH) but its name says {size[0]}x{size[1]}'
            if mode == 'full':
                img.load()  # verify() misses truncated pixel data; a full decode does not
        return None
    except Exception as err:  # any failure means the file cannot be trained on
        return f'{type(err).__name__}: {err}'


class Dataset:
    """A ReID dataset: ``train``, ``query`` and ``gallery`` record lists plus one active ``mode``.

    Args:
        train, query, gallery: lists of ``(img_path, pid, camid)`` or ``(img_path, pid, camid, dsetid)``.
        transform: callable applied to each loaded image (None: the PIL image is returned).
        k_tfm: number of independent transform draws per image (> 1 returns a list of tensors).
        mode: 'train', 'query' or 'gallery': the list ``__getitem__`` reads.
        combineall: merge query and gallery identities into train (relabelled after the train pids).
        verbose: log a summary table.
        train_info, query_info, gallery_info: optional per-sample metadata aligned with the lists.
        verify_images: check every image file at init, one of :data:`VERIFY_IMAGES_MODES` (True: 'full',
            False: 'off'), so that an unreadable picture fails now, not hours later in a loader.
    """
    # How the engine evaluates this dataset: 'default' (Market-style), 'cuhk03' or 'soccernetv3'.
    eval_metric = 'default'
    # Challenge-like datasets have no labels: the engine exports rankings instead of scoring them.
    hidden_labels = False
    # Query/gallery pids that mark junk or distractor boxes: combineall leaves them out of train.
    junk_pids = (-1,)
    # True when camid is an index local to its split (SoccerNet actions): combineall then offsets the
    # query/gallery camids past the train ones so actions of different splits stay apart.
    camid_is_split_local = False

    def __init__(self, train: Iterable[Sequence[Any]], query: Iterable[Sequence[Any]],
                 gallery: Iterable[Sequence[Any]], transform: Optional[Callable[[Image.Image], Any]] = None,
                 k_tfm: int = 1, mode: str = 'train', combineall: bool = False, verbose: bool = True,
                 train_info: Optional[Iterable[Any]] = None, query_info: Optional[Iterable[Any]] = None,
                 gallery_info: Optional[Iterable[Any]] = None, verify_images: Union[bool, str] = False,
                 **kwargs: Any):
        # kwargs: SHARED_DATASET_OPTIONS this dataset does not use (ignored); anything else is an error.
        self.check_options(kwargs)
        verify_mode = resolve_verify_images(verify_images)
        self.train = [self._as_record(r) for r in train]
        self.query = [self._as_record(r) for r in query]
        self.gallery = [self._as_record(r) for r in gallery]
        self.train_info = self._check_info(train_info, self.train, 'train_info')
        self.query_info = self._check_info(query_info, self.query, 'query_info')
        self.gallery_info = self._check_info(gallery_info, self.gallery, 'gallery_info')
        self.transform = transform
        if int(k_tfm) < 1:
            raise ValueError(f'k_tfm must be >= 1, got {k_tfm}')
        self.k_tfm = int(k_tfm)
        self.verbose = verbose

        self.num_train_pids = self.get_num_pids(self.train)
        self.num_train_cams = self.get_num_cams(self.train)
        self.num_datasets = self.get_num_datasets(self.train)
        if verify_mode != 'off':
            self.verify_images(mode=verify_mode)

        if combineall:
            self.combine_all()
        self.set_mode(mode)
        if self.verbose:
            self.show_summary()

    # ----- keyword options -----
    @classmethod
    def accepted_options(cls) -> Tuple[str, ...]:
        """Every keyword this dataset class accepts: its constructors' parameters and the shared options."""
        overridden = cls.__init__ is not Dataset.__init__
        names = set(SHARED_DATASET_OPTIONS)
        for klass in cls.__mro__:
            init = klass.__dict__.get('__init__')
            if init is None or klass is object:
                continue
            for param in list(inspect.signature(init).parameters.values())[1:]:  # skip self
                if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                if klass is Dataset and overridden and param.name in _RECORD_ARGS:
                    continue
                names.add(param.name)
        return tuple(sorted(names))

    def locate(self, root: str, options: Iterable[str]) -> None:
        """The first step of a dataset's ``__init__``: refuse unknown ``options`` (:meth:`check_options`, before
        any folder is walked), then set ``self.root`` (absolute, ``~`` expanded) and ``self.dataset_dir``
        (``<root>/<dataset_dir>``, from the class attribute)."""
        self.check_options(options)
        self.root = osp.abspath(osp.expanduser(root))
        self.dataset_dir = osp.join(self.root, self.dataset_dir)

    @classmethod
    def check_options(cls, options: Iterable[str]) -> None:
        """Raise ``TypeError`` if ``options`` holds a keyword this dataset neither declares nor shares.

        Subclasses call it first thing in their ``__init__`` with their ``**kwargs`` (fail before walking
        any folder); :class:`Dataset` calls it again, which covers subclasses that do not.
        """
        accepted = cls.accepted_options()
        unknown = sorted(k for k in options if k not in accepted)
        if not unknown:
            return
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, accepted, n=1)
            if close:
                hints.append(f'{key!r} -> did you mean {close[0]!r}?')
        hint = f' ({"; ".join(hints)})' if hints else ''
        raise TypeError(f'{cls.__name__}: unknown keyword argument(s) {", ".join(map(repr, unknown))}{hint}. '
                        f'Accepted: {", ".join(accepted)}')

    # ----- records -----
    @staticmethod
    def _as_record(record: Sequence[Any]) -> tuple:
        if len(record) == 3:
            return (record[0], record[1], record[2], 0)
        if len(record) == 4:
            return tuple(record)
        raise ValueError(f'a record must be (img_path, pid, camid[, dsetid]), got {record!r}')

    @staticmethod
    def _check_info(info: Optional[Iterable[Any]], records: Sequence[tuple], name: str) -> Optional[List[Any]]:
        if info is None:
            return None
        info = list(info)
        if len(info) != len(records):
            raise ValueError(f'{name} has {len(info)} entries but its record list has {len(records)}')
        return info

    @staticmethod
    def get_num_pids(data: Iterable[Sequence[Any]]) -> int:
        return len({r[1] for r in data})

    @staticmethod
    def get_num_cams(data: Iterable[Sequence[Any]]) -> int:
        return len({r[2] for r in data})

    @staticmethod
    def get_num_datasets(data: Iterable[Sequence[Any]]) -> int:
        return len({r[3] for r in data})

    def parse_data(self, data: Iterable[Sequence[Any]]) -> Tuple[int, int]:
        """``(num_pids, num_cams)`` of a record list (Torchreid's helper)."""
        return self.get_num_pids(data), self.get_num_cams(data)

    # ----- mode -----
    def set_mode(self, mode: str) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        self.mode = mode

    @property
    def data(self) -> List[tuple]:
        return getattr(self, self.mode)

    @property
    def data_info(self) -> Optional[List[Any]]:
        return getattr(self, f'{self.mode}_info')

    def with_mode(self, mode: str, transform: Optional[Callable[[Image.Image], Any]] = None) -> 'Dataset':
        """A shallow copy reading another list (and with another transform); the lists are shared.

        Lets the data manager build train/query/gallery views of one dataset without walking the
        folders again (the real SoccerNet train split has ~248k files).
        """
        view = copy.copy(self)
        view.set_mode(mode)
        view.transform = transform
        return view

    def combine_all(self) -> None:
        """Add query and gallery identities to train, relabelled after the existing train pids."""
        if self.hidden_labels:
            raise ValueError(f'{type(self).__name__}: combineall needs labels, but this dataset hides them')
        combined = list(self.train)
        combined_info = list(self.train_info) if self.train_info is not None else None
        pid_map = {}
        cam_off = (max((r[2] for r in self.train), default=-1) + 1) if self.camid_is_split_local else 0
        for records, info in ((self.query, self.query_info), (self.gallery, self.gallery_info)):
            for i, (path, pid, camid, dsetid) in enumerate(records):
                if pid in self.junk_pids:
                    continue  # junk/distractor ids carry no identity to learn
                key = (dsetid, pid)
                if key not in pid_map:
                    pid_map[key] = self.num_train_pids + len(pid_map)
                combined.append((path, pid_map[key], camid + cam_off, dsetid))
                if combined_info is not None:
                    combined_info.append(info[i] if info is not None else None)
        self.train = combined
        self.train_info = combined_info
        self.num_train_pids = self.get_num_pids(self.train)
        self.num_train_cams = self.get_num_cams(self.train)

    def __add__(self, other: 'Dataset') -> 'Dataset':
        """Combine training sets; ``other``'s pids, camids and dsetids are offset past ours.

        Train pids are expected relabelled 0..K-1, so the combined set has ``K1 + K2`` classes.

        Query and gallery stay those of ``self`` (Torchreid semantics).
        """
        if not isinstance(other, Dataset):
            return NotImplemented
        train = list(self.train)
        # Offsets past the largest ids used (not the counts), so sparse camids (Market's cameras,
        # SoccerNet's action subsets) never collide.
        pid_off = max((r[1] for r in self.train), default=-1) + 1
        cam_off = max((r[2] for r in self.train), default=-1) + 1
        dset_off = max((r[3] for r in self.train), default=-1) + 1
        for path, pid, camid, dsetid in other.train:
            train.append((path, pid + pid_off, camid + cam_off, dsetid + dset_off))
        if self.train_info is None and other.train_info is None:
            train_info = None
        else:
            train_info = (list(self.train_info) if self.train_info is not None else [None] * len(self.train))
            train_info += (list(other.train_info) if other.train_info is not None else [None] * len(other.train))
        combined = ImageDataset(train, self.query, self.gallery, transform=self.transform, k_tfm=self.k_tfm,
                                mode=self.mode, combineall=False, verbose=False, train_info=train_info,
                                query_info=self.query_info, gallery_info=self.gallery_info)
        # The evaluation protocol is that of the query/gallery we keep.
        combined.eval_metric = self.eval_metric
        combined.hidden_labels = self.hidden_labels
        if hasattr(self, 'ground_truth_path'):
            combined.ground_truth_path = self.ground_truth_path
        return combined

    def __radd__(self, other: Any) -> 'Dataset':
        # sum([d1, d2]) starts from 0.
        if other == 0:
            return self
        return NotImplemented

    # ----- access -----
    def __len__(self) -> int:
        return len(self.data)

    def _transform_image(self, img: Image.Image) -> Any:
        if self.transform is None:
            return img
        if self.k_tfm == 1:
            return self.transform(img)
        return [self.transform(img) for _ in range(self.k_tfm)]

    def __getitem__(self, index: int) -> dict:
        raise NotImplementedError

    # ----- checks -----
    def verify_images(self, subsets: Sequence[str] = _MODES, mode: str = 'full') -> int:
        """Check every image of ``subsets`` (``mode`` 'header' or 'full', see :data:`VERIFY_IMAGES_MODES`);
        raise one error listing all unreadable files. Returns the number of images checked.

        A sample whose ``*_info`` entry has ``width`` and ``height`` (SoccerNet) must have that size.
        """
        if mode not in ('header', 'full'):
            raise ValueError(f"mode must be 'header' or 'full', got {mode!r}")
        bad, count = [], 0
        for subset in subsets:
            if subset not in _MODES:
                raise ValueError(f"subset must be one of {', '.join(_MODES)}, got {subset!r}")
            info = getattr(self, f'{subset}_info')
            for i, record in enumerate(getattr(self, subset)):
                meta = info[i] if info is not None else None
                size = (meta.width, meta.height) if hasattr(meta, 'width') and hasattr(meta, 'height') else None
                for path in self.record_image_paths(record):
                    count += 1
                    reason = _check_image(path, mode, size)
                    if reason is not None:
                        bad.append((path, reason))
        if bad:
            raise UnreadableImageError(
                f'{type(self).__name__}: {len(bad)} of {count} image(s) fail the {mode!r} check '
                f'(every image must be a readable picture of the size its name says): {summarise_errors(bad)}')
        return count

    @staticmethod
    def record_image_paths(record: Sequence[Any]) -> Sequence[str]:
        """The image files of one record: its image (a video dataset: every frame of its tracklet)."""
        return (record[0],)

    # ----- summary -----
    def summary_rows(self) -> List[Tuple[str, Union[int, str], int, int]]:
        rows = []
        for subset in _MODES:
            records = getattr(self, subset)
            # Hidden labels (challenge): every query/gallery pid is -1, an id count would mislead.
            ids = 'hidden' if self.hidden_labels and subset != 'train' else self.get_num_pids(records)
            rows.append((subset, ids, len(records), self.get_num_cams(records)))
        return rows

    def show_summary(self) -> None:
        header = ('subset', '# ids', '# images', '# cameras')
        rows = [tuple(str(c) for c in r) for r in self.summary_rows()]
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(4)]
        line = '  ' + '-' * (sum(widths) + 3 * 3)

        def fmt(cells: Sequence[str]) -> str:
            return '  ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths))

        table = [f'=> Loaded {type(self).__name__}', line, fmt(header), line, *(fmt(r) for r in rows), line]
        logger.info('\n'.join(table))

    def __repr__(self) -> str:
        parts = ', '.join(f'{s}: {n} ids / {m} images / {c} cams' for s, n, m, c in self.summary_rows())
        return f'{type(self).__name__}(mode={self.mode!r}, {parts})'


class ImageDataset(Dataset):
    """A dataset of image records; items are ``{'img', 'pid', 'camid', 'impath', 'dsetid'}``."""

    def __getitem__(self, index: int) -> dict:
        img_path, pid, camid, dsetid = self.data[index]
        img = self._transform_image(read_image(img_path))
        return {'img': img, 'pid': pid, 'camid': camid, 'impath': img_path, 'dsetid': dsetid}

    @staticmethod
    def check_before_run(required_files: Sequence[str]) -> None:
        """Raise naming every required path that is missing (Torchreid's helper)."""
        missing = [p for p in required_files if not osp.exists(p)]
        if missing:
            raise FileNotFoundError(f'required path(s) missing: {summarise_paths(missing)}')
