"""Ranked-result pictures: one PNG per query (the query, then its top-k gallery matches, each captioned with
its rank, distance and ids) and an ``index.html`` that shows them per SoccerNet action, or per query."""
import dataclasses
import functools
import html
import logging
import numbers
import os
import os.path as osp
import urllib.parse
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .io import atomic_write
from .tools import mkdir_if_missing, read_image

if TYPE_CHECKING:  # annotations only: drawing does not need torch
    import torch

logger = logging.getLogger(__name__)

#: Records as the datasets hold them: ``(img_path, pid, camid, dsetid)`` tuples.
Records = Sequence[Sequence[Any]]

__all__ = ['visualize_ranked_results', 'INDEX_NAME']

INDEX_NAME = 'index.html'
DEFAULT_WIDTH, DEFAULT_HEIGHT = 128, 256  # Torchreid's defaults
MIN_CELL_HEIGHT = 192  # smaller images (e.g. a 96-px model input) are enlarged to this height to stay readable
MARGIN = 10  # around the picture
GRID_SPACING = 10  # between two gallery images
QUERY_EXTRA_SPACING = 30  # extra gap between the query and the first gallery image
BORDER_WIDTH = 5
CAPTION_LINES = 4  # rank and distance, id, pid, action or camera
GREEN = (0, 180, 0)  # correct match
RED = (220, 0, 0)  # wrong match
GREY = (150, 150, 150)  # labels hidden: correctness unknown
QUERY_COLOUR = (0, 90, 220)
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)


@dataclasses.dataclass(frozen=True)
class _Item:
    """What a picture says about one query or gallery sample."""

    path: str
    pid: Any
    camid: Any
    bbox_idx: Optional[int]  # SoccerNet samples only
    action: Optional[int]  # SoccerNet samples only


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Pixel geometry of every picture of one call (all pictures share it)."""

    cell_w: int
    cell_h: int
    line_h: int
    topk: int

    @property
    def title_h(self) -> int:
        return MARGIN + self.line_h + MARGIN // 2

    @property
    def caption_h(self) -> int:
        return 4 + CAPTION_LINES * self.line_h

    @property
    def size(self) -> Tuple[int, int]:
        width = 2 * MARGIN + (self.topk + 1) * self.cell_w + QUERY_EXTRA_SPACING + (self.topk - 1) * GRID_SPACING
        return width, self.title_h + self.cell_h + self.caption_h + MARGIN

    def cell_x(self, rank: Optional[int]) -> int:
        """Left x of the query cell (``rank=None``) or of the gallery image at 0-based ``rank``."""
        if rank is None:
            return MARGIN
        return MARGIN + self.cell_w + QUERY_EXTRA_SPACING + rank * (self.cell_w + GRID_SPACING)


def _font(size: int) -> Union[ImageFont.ImageFont, ImageFont.FreeTypeFont]:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, AttributeError, OSError, ImportError):
        return ImageFont.load_default()  # the fixed bitmap font


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, max_width: int) -> str:
    """``text``, cut and ended with '...' where it is wider than ``max_width`` pixels."""
    if _text_width(draw, text, font) <= max_width:
        return text
    while text and _text_width(draw, text + '...', font) > max_width:
        text = text[:-1]
    return text + '...' if text else ''


def _first_path(img_path: Any, data_type: str) -> str:
    # Video records hold a sequence of frame paths; the first frame stands for the tracklet.
    if data_type == 'video' and isinstance(img_path, (list, tuple)):
        if not img_path:
            raise ValueError('visualize_ranked_results: a video record has no frames')
        return img_path[0]
    return os.fspath(img_path)


def _draw_border(img: Image.Image, colour: Tuple[int, int, int]) -> Image.Image:
    """Draw a border of BORDER_WIDTH pixels inside the image edges (the image keeps its size)."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for i in range(min(BORDER_WIDTH, (min(w, h) + 1) // 2)):
        draw.rectangle([i, i, w - 1 - i, h - 1 - i], outline=colour)
    return img


def _is_unknown(pid: Any) -> bool:
    try:
        return int(pid) < 0
    except (TypeError, ValueError):
        return False  # string pids (e.g. person_uid text) are known labels


def _soccernet_sample(path: str) -> Any:
    """The SoccerNet fields a thumbnail's name carries, or None for other names (Market-1501...)."""
    from torchreid.soccernet_format import FilenameError, parse_filename  # torch-free

    try:
        return parse_filename(path)
    except FilenameError:
        return None


def _side(side: Any, which: str) -> Tuple[List[Sequence[Any]], Optional[List[Any]], Any]:
    """``(records, per-sample metadata or None, the dataset or None)`` from a record list, a dataset (``.data``,
    ``.data_info``) or a DataLoader over one (its ``.dataset``)."""
    if not isinstance(side, (list, tuple, np.ndarray)) and hasattr(side, 'dataset'):
        side = side.dataset  # a DataLoader, as Torchreid's fetch_test_loaders returns
    dataset = None
    info = None
    if not isinstance(side, (list, tuple, np.ndarray)) and hasattr(side, 'data'):
        dataset = side
        info = getattr(side, 'data_info', None)
        side = side.data
    try:
        records = list(side)
    except TypeError:
        raise TypeError(f'visualize_ranked_results: {which} must be a list of (img_path, pid, camid, dsetid) '
                        f'records, a dataset or a DataLoader, got {type(side).__name__}') from None
    for i, record in enumerate(records):
        if isinstance(record, (str, bytes, dict)) or not isinstance(record, Sequence) or len(record) < 3:
            raise ValueError(f'visualize_ranked_results: {which}[{i}] must be an (img_path, pid, camid[, dsetid]) '
                             f'record, got {type(record).__name__} {str(record)[:80]}')
    if info is not None:
        info = list(info)
        if len(info) != len(records):
            raise ValueError(f'visualize_ranked_results: {which} has {len(records)} records but '
                             f'{len(info)} metadata entries; they must be aligned')
    return records, info, dataset


def _is_pair(value: Any) -> bool:
    """True for ``(query, gallery)``: two record lists, datasets or loaders (not one list of two records)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    for side in value:
        if isinstance(side, (str, bytes)):
            return False
        if hasattr(side, 'dataset') or hasattr(side, 'data'):
            continue
        if not isinstance(side, (list, tuple)) or (side and isinstance(side[0], (str, bytes, os.PathLike))):
            return False
    return True


def _items(records: List[Sequence[Any]], info: Optional[List[Any]], data_type: str) -> List[_Item]:
    items = []
    for i, record in enumerate(records):
        path = _first_path(record[0], data_type)
        sample = info[i] if info is not None else _soccernet_sample(path)
        items.append(_Item(path=path, pid=record[1], camid=record[2], bbox_idx=getattr(sample, 'bbox_idx', None),
                           action=getattr(sample, 'action_idx', None)))
    return items


def _as_numpy(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.detach().cpu().numpy() if hasattr(matrix, 'detach') else matrix)


def _rankings_from_distmat(distmat: np.ndarray, query: List[_Item], gallery: List[_Item],
                           same_action: bool) -> List[np.ndarray]:
    order = np.argsort(distmat, axis=1, kind='stable')
    g_pids = np.asarray([g.pid for g in gallery])
    g_camids = np.asarray([g.camid for g in gallery])
    rankings = []
    for q_idx, q in enumerate(query):
        row = order[q_idx]
        if same_action:
            # SoccerNet: camid is the action; only the query's own action is comparable.
            keep = g_camids[row] == q.camid
        else:
            # Market-style: the same identity seen by the same camera is junk, as in Torchreid.
            keep = ~((g_pids[row] == q.pid) & (g_camids[row] == q.camid))
        rankings.append(row[keep])
    return rankings


def _check_matrix(matrix: np.ndarray, name: str, num_q: int, num_g: int) -> np.ndarray:
    if matrix.shape != (num_q, num_g):
        raise ValueError(f'visualize_ranked_results: {name} has shape {matrix.shape}, expected ({num_q}, {num_g}) '
                         '= (number of queries, number of gallery items)')
    return matrix


def _id_text(item: _Item) -> str:
    if item.bbox_idx is not None:
        return f'bbox {item.bbox_idx}'
    return osp.splitext(osp.basename(item.path))[0]


def _pid_text(item: _Item, hidden: bool) -> str:
    return f"pid {'?' if hidden or _is_unknown(item.pid) else item.pid}"


def _where_text(item: _Item) -> str:
    return f'action {item.action}' if item.action is not None else f'cam {item.camid}'


def visualize_ranked_results(
    rankings: Union[Sequence[Union[np.ndarray, Sequence[int]]], np.ndarray, 'torch.Tensor'],
    query_records: Any = None,
    gallery_records: Any = None,
    save_dir: str = '',
    topk: int = 10,
    data_type: str = 'image',
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    display_border: bool = True,
    hidden_labels: Optional[bool] = None,
    max_queries: Optional[int] = None,
    same_action: Optional[bool] = None,
    dataset: Any = None,
    *,
    query_info: Optional[Sequence[Any]] = None,
    gallery_info: Optional[Sequence[Any]] = None,
    distances: Any = None,
    min_cell_height: int = MIN_CELL_HEIGHT,
    captions: bool = True,
    write_index: bool = True,
    title: Optional[str] = None,
) -> List[str]:
    """Write one PNG per query (the query, then its ``topk`` best gallery images) and ``index.html``.

    Each gallery image is captioned with its rank, its distance (when known), its id (SoccerNet ``bbox_idx``,
    else the file name), its pid and its action (SoccerNet) or camera, and framed green (same identity as
    the query) or red; grey where the labels are hidden. The title line names the query and counts the
    correct matches. ``<save_dir>/index.html`` shows the pictures grouped by action (SoccerNet) or as one
    list of queries, with relative links, so the folder can be moved or served as it is.

    Call shapes:
        * ``visualize_ranked_results(rankings, query, gallery, save_dir, ...)`` (this project's engine);
        * Torchreid's ``visualize_ranked_results(distmat, (query, gallery), 'image', width=..., height=...,
          save_dir=..., topk=...)``, or with ``dataset=(query, gallery), data_type=...`` as keywords.
        ``query`` / ``gallery`` may be record lists, datasets (their ``.data``, ``.data_info``,
        ``.hidden_labels`` and ``.eval_metric`` are read) or DataLoaders over them (e.g. what
        ``datamanager.fetch_test_loaders(name)`` returns).

    Args:
        rankings: per query, gallery indices best first, already restricted to what the query may be
            compared with (e.g. its action, as ``torchreid.metrics.rank_by_action`` returns); or a distance
            matrix ``[num_query, num_gallery]`` (numpy array or tensor) whose rows are sorted here. A rankings
            object with a ``distmat`` attribute (Market-style evaluation) has its distances shown.
        query_records, gallery_records: ``(img_path, pid, camid, dsetid)`` records, datasets or loaders.
        save_dir: output folder; each picture is named after its query image (``<name>.png``).
        topk: gallery images per picture.
        data_type: ``'image'`` or ``'video'`` (a tracklet is shown by its first frame).
        width, height: size every image is resized to; enlarged (keeping the aspect ratio) to at least
            ``min_cell_height`` pixels high.
        display_border: frame the images (green / red / grey); False: no frames.
        hidden_labels: labels unknown (challenge set): grey frames, pids shown as '?'. None: what the
            query dataset declares (False for plain record lists). A query with a negative pid counts as
            unknown too.
        max_queries: draw only the first ``max_queries`` queries (None: all).
        same_action: with a distance matrix, keep only gallery items whose camid (the SoccerNet action)
            equals the query's; False: drop same-pid-same-camid items as Torchreid does. None: True when the
            dataset declares the ``'soccernetv3'`` metric or every name parses as a SoccerNet thumbnail.
        dataset: ``(query, gallery)``, Torchreid's keyword.
        query_info, gallery_info: per-sample metadata aligned with the records (``SoccerNetSample``: its
            ``bbox_idx`` and ``action_idx`` are shown); default: the datasets' ``data_info``, else what the
            file names say.
        distances: a ``[num_query, num_gallery]`` array or tensor; or a list with, for each query drawn, the
            distances of its ranking's first items, best first (at least ``topk``, or the whole ranking).
        min_cell_height: smallest image height drawn, in pixels (0: exactly ``height``).
        captions: draw the title and the captions (False: images and frames only).
        write_index: write ``<save_dir>/index.html``.
        title: the index page's heading (default: the folder's name).

    Returns:
        the written picture paths, in query order.
    """
    # ---- call shapes
    if dataset is not None:
        if query_records is not None or gallery_records is not None:
            raise ValueError('visualize_ranked_results: pass the query/gallery either as dataset=(query, gallery) '
                             'or as query_records, gallery_records, not both')
        if not _is_pair(dataset):
            raise ValueError('visualize_ranked_results: dataset must be (query, gallery): two record lists, '
                             'datasets or loaders')
        query_records, gallery_records = dataset
    elif isinstance(gallery_records, str):  # Torchreid: (distmat, (query, gallery), 'image', ...)
        data_type = gallery_records
        if not _is_pair(query_records):
            raise ValueError('visualize_ranked_results: with a data type as third argument, the second must be '
                             '(query, gallery): two record lists, datasets or loaders')
        query_records, gallery_records = query_records
    if query_records is None or gallery_records is None:
        raise ValueError('visualize_ranked_results: query_records and gallery_records are required')
    if not isinstance(save_dir, (str, os.PathLike)) or not os.fspath(save_dir):
        raise ValueError(f'visualize_ranked_results: save_dir must be a folder path, got {save_dir!r} (in '
                         "Torchreid's call shape, pass width=, height=, save_dir=, topk= as keywords)")
    if data_type not in ('image', 'video'):
        raise ValueError(f"visualize_ranked_results: data_type must be 'image' or 'video', got {data_type!r}")
    for name, value, low in (('topk', topk, 1), ('width', width, 1), ('height', height, 1),
                             ('min_cell_height', min_cell_height, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f'visualize_ranked_results: {name} must be an int >= {low}, got {value!r}')
    if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(max_queries, numbers.Integral)
                                    or max_queries < 0):
        raise ValueError(f'visualize_ranked_results: max_queries must be None or an int >= 0, got {max_queries!r}')
    save_dir = os.fspath(save_dir)

    q_records, q_info, q_dataset = _side(query_records, 'query_records')
    g_records, g_info, _ = _side(gallery_records, 'gallery_records')
    query = _items(q_records, list(query_info) if query_info is not None else q_info, data_type)
    gallery = _items(g_records, list(gallery_info) if gallery_info is not None else g_info, data_type)
    if hidden_labels is None:
        hidden_labels = bool(getattr(q_dataset, 'hidden_labels', False))
    if same_action is None:
        declared = getattr(q_dataset, 'eval_metric', None)
        same_action = declared == 'soccernetv3' if declared is not None else \
            bool(query) and all(it.action is not None for it in query + gallery)

    # ---- rankings and distances
    distmat = None
    if isinstance(rankings, np.ndarray) or hasattr(rankings, 'detach'):
        if getattr(rankings, 'ndim', 0) != 2:
            raise ValueError('visualize_ranked_results: a distance matrix must be 2-D [num_query, num_gallery]')
        distmat = _check_matrix(_as_numpy(rankings), 'distmat', len(query), len(gallery))
        rankings = _rankings_from_distmat(distmat, query, gallery, same_action)
    elif getattr(rankings, 'distmat', None) is not None:
        distmat = _check_matrix(_as_numpy(getattr(rankings, 'distmat')), 'rankings.distmat', len(query),
                                len(gallery))
    per_query_distances = None
    if distances is not None:
        if getattr(distances, 'ndim', 1) == 2:
            distmat = _check_matrix(_as_numpy(distances), 'distances', len(query), len(gallery))
        else:
            per_query_distances = list(distances)
    num_rankings = len(rankings)
    if num_rankings != len(query):
        raise ValueError(f'visualize_ranked_results: {num_rankings} rankings for {len(query)} queries; expected '
                         'one per query')

    num_q = len(query) if max_queries is None else min(len(query), int(max_queries))
    if per_query_distances is not None and len(per_query_distances) < num_q:
        raise ValueError(f'visualize_ranked_results: {len(per_query_distances)} distance rows for {num_q} queries '
                         'drawn; expected one per query (aligned with its ranking)')
    if num_q == 0:
        return []
    mkdir_if_missing(save_dir)
    logger.info('Visualizing top-%d ranks of %d queries in "%s"', topk, num_q, save_dir)

    scale = max(1.0, min_cell_height / height)
    cell_w, cell_h = max(1, round(width * scale)), max(1, round(height * scale))
    font = _font(max(10, min(18, cell_w // 7)))
    ascent, descent = font.getmetrics() if hasattr(font, 'getmetrics') else (10, 2)
    layout = _Layout(cell_w=cell_w, cell_h=cell_h, line_h=ascent + descent + 2, topk=int(topk))

    @functools.lru_cache(maxsize=512)
    def load(path: str) -> Image.Image:
        # Queries of one action share the same gallery: caching the resized images saves decoding.
        return read_image(path).resize((cell_w, cell_h), Image.BILINEAR)

    used_names = set()
    written: List[str] = []
    entries: List[Dict[str, Any]] = []
    for q_idx in range(num_q):
        q = query[q_idx]
        ranking = np.asarray(rankings[q_idx], dtype=np.int64).reshape(-1)
        if ranking.size and (ranking.min() < 0 or ranking.max() >= len(gallery)):
            raise ValueError(f'visualize_ranked_results: rankings[{q_idx}] holds gallery index {int(ranking.max())} '
                             f'or {int(ranking.min())}, outside [0, {len(gallery) - 1}]')
        top = ranking[:layout.topk]
        if distmat is not None:
            dists: Optional[np.ndarray] = distmat[q_idx, top]
        elif per_query_distances is not None:
            dists = np.asarray(per_query_distances[q_idx], dtype=np.float64).reshape(-1)[:top.size]
            if dists.size != top.size:
                raise ValueError(f'visualize_ranked_results: distances[{q_idx}] has {dists.size} values for the '
                                 f'{top.size} ranked gallery items drawn; it must be aligned with rankings[{q_idx}]')
        else:
            dists = None
        labels_known = not hidden_labels and not _is_unknown(q.pid)
        correct = [gallery[g].pid == q.pid for g in top.tolist()] if labels_known else None
        picture = _draw_query(layout, font, load, q, [gallery[g] for g in top.tolist()], dists, correct,
                              num_ranked=int(ranking.size), q_number=q_idx + 1, num_q=num_q,
                              hidden=not labels_known, borders=display_border, captions=captions)
        name = osp.splitext(osp.basename(q.path))[0]
        if name in used_names:  # two queries with the same file name in different folders
            name = f'{name}_q{q_idx}'
        used_names.add(name)
        written.append(_save_png(picture, osp.join(save_dir, name + '.png')))
        entries.append({'file': name + '.png', 'query': q, 'correct': None if correct is None else sum(correct),
                        'shown': int(top.size), 'ranked': int(ranking.size), 'size': picture.size})
        if (q_idx + 1) % 100 == 0:
            logger.info('- done %d/%d', q_idx + 1, num_q)
    if write_index:
        index_path = _write_index(save_dir, entries, title or osp.basename(osp.abspath(save_dir)), layout.topk,
                                  hidden=bool(hidden_labels), borders=display_border)
        logger.info('Done. %d pictures in "%s"; open %s', len(written), save_dir, index_path)
    else:
        logger.info('Done. %d pictures in "%s"', len(written), save_dir)
    return written


def _draw_query(layout: _Layout, font, load, q: _Item, top: List[_Item], dists: Optional[np.ndarray],
                correct: Optional[List[bool]], num_ranked: int, q_number: int, num_q: int, hidden: bool,
                borders: bool, captions: bool) -> Image.Image:
    """One picture: a title line, the query and its top gallery images, each with a caption below."""
    picture = Image.new('RGB', layout.size, WHITE)
    draw = ImageDraw.Draw(picture)
    y_img = layout.title_h
    y_cap = y_img + layout.cell_h + 4

    def caption(x: int, lines: Sequence[str], colour=BLACK) -> None:
        for i, text in enumerate(lines):
            draw.text((x, y_cap + i * layout.line_h), _fit(draw, text, font, layout.cell_w), fill=colour, font=font)

    q_img = load(q.path)
    picture.paste(_draw_border(q_img.copy(), QUERY_COLOUR) if borders else q_img, (layout.cell_x(None), y_img))
    if captions:
        summary = 'labels hidden' if correct is None else f'{sum(correct)} of top-{len(top)} correct'
        title = (f'Query {q_number}/{num_q}  |  {_id_text(q)}  |  {_where_text(q)}  |  {summary}  |  '
                 f'{num_ranked} gallery items ranked')
        draw.text((MARGIN, MARGIN), _fit(draw, title, font, layout.size[0] - 2 * MARGIN), fill=BLACK, font=font)
        caption(layout.cell_x(None), ['QUERY', _id_text(q), _pid_text(q, hidden), _where_text(q)], colour=QUERY_COLOUR)
    for rank, g in enumerate(top):
        g_img = load(g.path)
        if borders:
            colour = GREY if correct is None else (GREEN if correct[rank] else RED)
            g_img = _draw_border(g_img.copy(), colour)
        x = layout.cell_x(rank)
        picture.paste(g_img, (x, y_img))
        if captions:
            head = f'#{rank + 1}' if dists is None else f'#{rank + 1}  d={float(dists[rank]):.3g}'
            colour = BLACK if correct is None else (GREEN if correct[rank] else RED)
            caption(x, [head, _id_text(g), _pid_text(g, hidden), _where_text(g)], colour=colour)
    return picture


def _save_png(img: Image.Image, path: str) -> str:
    """Write atomically: no partial picture is ever left behind."""
    with atomic_write(path, 'wb') as f:
        img.save(f, format='PNG', compress_level=1)  # zlib's fastest: ~1/4 of the time, files ~1.2x
    return path


def _write_index(save_dir: str, entries: List[Dict[str, Any]], title: str, topk: int, hidden: bool,
                 borders: bool) -> str:
    """``<save_dir>/index.html``: the pictures per SoccerNet action (or one list of queries), relative links,
    every printed name escaped."""
    esc = html.escape
    groups: Dict[Any, List[Dict[str, Any]]] = {}
    per_action = all(e['query'].action is not None for e in entries)
    for e in entries:
        groups.setdefault(e['query'].action if per_action else None, []).append(e)
    keys = sorted(groups) if per_action else [None]

    legend = ('frames: blue the query, grey labels hidden' if hidden else
              'frames: blue the query, <span class="ok">green</span> same identity, '
              '<span class="bad">red</span> another identity') if borders else 'no frames'
    lines = [
        '<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
        f'<title>Ranked results: {esc(title)}</title>',
        '<style>body{font-family:sans-serif;margin:1em;background:#fafafa}'
        'figure{margin:0 0 1.2em 0}img{max-width:100%;height:auto;border:1px solid #ccc;background:#fff}'
        'figcaption{font-size:.9em;color:#333}nav a{margin-right:.6em}.ok{color:#0a0}.bad{color:#c00}</style>',
        '</head>', '<body>', f'<h1>Ranked results: {esc(title)}</h1>',
        f'<p>{len(entries)} queries, top-{topk} gallery items each, best first; {legend}.</p>',
    ]
    if per_action and len(keys) > 1:
        lines.append('<nav>' + ' '.join(f'<a href="#action-{esc(str(k))}">action {esc(str(k))}</a>' for k in keys)
                     + '</nav>')
    shown = 0
    for key in keys:
        group = groups[key]
        heading = f'Action {key}' if per_action else 'Queries'
        anchor = f' id="action-{esc(str(key))}"' if per_action else ''
        lines.append(f'<section{anchor}><h2>{esc(heading)} ({len(group)} '
                     f'{"query" if len(group) == 1 else "queries"})</h2>')
        for e in group:
            q = e['query']
            link = esc(urllib.parse.quote(e['file']))
            label = _id_text(q) + ('' if q.bbox_idx is None else f' ({osp.basename(q.path)})')
            score = '' if e['correct'] is None else f' - {e["correct"]} of top-{e["shown"]} correct'
            w, h = e['size']
            lazy = ' loading="lazy"' if shown >= 4 else ''  # the first pictures load at once
            lines.append(f'<figure><a href="{link}"><img src="{link}" alt="{esc(label)}" width="{w}" height="{h}"'
                         f'{lazy}></a><figcaption>{esc(label)}{esc(score)}, {e["ranked"]} gallery items ranked'
                         '</figcaption></figure>')
            shown += 1
        lines.append('</section>')
    lines += ['</body>', '</html>', '']
    path = osp.join(save_dir, INDEX_NAME)
    with atomic_write(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    return path
