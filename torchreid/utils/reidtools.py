"""``visualize_ranked_results``: one picture per query with its top-k gallery matches."""
import functools
import logging
import os
import os.path as osp
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .io import atomic_write
from .tools import mkdir_if_missing, read_image

if TYPE_CHECKING:  # annotations only: drawing does not need torch
    import torch

logger = logging.getLogger(__name__)

#: Records as the datasets hold them: ``(img_path, pid, camid, dsetid)`` tuples.
Records = Sequence[Sequence[Any]]

__all__ = ['visualize_ranked_results']

GRID_SPACING = 10  # pixels between two gallery images
QUERY_EXTRA_SPACING = 90  # extra gap between the query and the first gallery image
BORDER_WIDTH = 5
GREEN = (0, 255, 0)  # correct match
RED = (255, 0, 0)  # wrong match
BLACK = (0, 0, 0)  # query frame
WHITE = (255, 255, 255)


def _first_path(img_path, data_type):
    # Video records hold a sequence of frame paths; the first frame stands for the tracklet.
    if data_type == 'video' and isinstance(img_path, (list, tuple)):
        if not img_path:
            raise ValueError('visualize_ranked_results: a video record has no frames')
        return img_path[0]
    return img_path


def _draw_border(img, colour):
    """Draw a border of BORDER_WIDTH pixels inside the image edges (the image keeps its size)."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for i in range(min(BORDER_WIDTH, (min(w, h) + 1) // 2)):
        draw.rectangle([i, i, w - 1 - i, h - 1 - i], outline=colour)
    return img


def _rankings_from_distmat(distmat, query, gallery, same_action):
    distmat = np.asarray(distmat.detach().cpu().numpy() if hasattr(distmat, 'detach') else distmat)
    if distmat.shape != (len(query), len(gallery)):
        raise ValueError(
            f'visualize_ranked_results: distmat has shape {distmat.shape}, expected '
            f'({len(query)}, {len(gallery)}) = (number of queries, number of gallery items)'
        )
    order = np.argsort(distmat, axis=1, kind='stable')
    g_pids = np.asarray([g[1] for g in gallery])
    g_camids = np.asarray([g[2] for g in gallery])
    rankings = []
    for q_idx, (_, q_pid, q_camid, *_rest) in enumerate(query):
        row = order[q_idx]
        if same_action:
            # SoccerNet: camid is the action; only the query's own action is comparable.
            keep = g_camids[row] == q_camid
        else:
            # Market-style: the same identity seen by the same camera is junk, as in Torchreid.
            keep = ~((g_pids[row] == q_pid) & (g_camids[row] == q_camid))
        rankings.append(row[keep])
    return rankings


def visualize_ranked_results(
    rankings: Union[Sequence[Union[np.ndarray, Sequence[int]]], np.ndarray, 'torch.Tensor'],
    query_records: Optional[Records] = None,
    gallery_records: Union[Records, str, None] = None,
    save_dir: str = '',
    topk: int = 10,
    data_type: str = 'image',
    width: int = 128,
    height: int = 256,
    display_border: bool = True,
    hidden_labels: bool = False,
    max_queries: Optional[int] = None,
    same_action: bool = False,
    dataset: Optional[Tuple[Records, Records]] = None,
) -> List[str]:
    """Write one PNG per query: the query, then its ``topk`` best gallery images.

    Args:
        rankings: either a list (one entry per query) of arrays of gallery indices, best first, already
            restricted to what the query may be compared with (e.g. the query's action, as returned by
            ``torchreid.metrics.rank_by_action``); or a distance matrix ``[num_query, num_gallery]`` (numpy
            array or tensor) whose rows are sorted here.
        query_records, gallery_records: lists of ``(img_path, pid, camid, dsetid)`` records.
        save_dir (str): output folder; each picture is named after its query image (``<name>.png``).
        topk (int): gallery images per picture.
        data_type (str): ``'image'`` or ``'video'`` (a tracklet is shown by its first frame).
        width, height (int): size every image is resized to.
        display_border (bool): frame gallery images green (same identity as the query) or red.
        hidden_labels (bool): labels are unknown (challenge set): no borders. Queries with a negative
            pid (unknown identity) get no borders either.
        max_queries (int): draw only the first ``max_queries`` queries (None: all).
        same_action (bool): with a distance matrix, keep only gallery items whose camid (the SoccerNet
            action) equals the query's; otherwise drop same-pid-same-camid items as Torchreid does.
        dataset: Torchreid's call shape ``visualize_ranked_results(distmat, (query, gallery), 'image', ...)``
            is accepted too.

    Returns:
        list of the written file paths (in query order).
    """
    # Torchreid's call shape: (distmat, dataset=(query, gallery), data_type, width=..., height=..., save_dir=...)
    if dataset is not None:
        query_records, gallery_records = dataset
    elif isinstance(gallery_records, str) and gallery_records in ('image', 'video'):
        data_type = gallery_records
        query_records, gallery_records = query_records
    if query_records is None or gallery_records is None:
        raise ValueError('visualize_ranked_results: query_records and gallery_records are required')
    if not save_dir:
        raise ValueError('visualize_ranked_results: save_dir is required')
    if data_type not in ('image', 'video'):
        raise ValueError(f"visualize_ranked_results: data_type must be 'image' or 'video', got {data_type!r}")
    if int(topk) != topk or topk < 1:
        raise ValueError(f'visualize_ranked_results: topk must be a positive int, got {topk!r}')
    if max_queries is not None and (int(max_queries) != max_queries or max_queries < 0):
        raise ValueError(f'visualize_ranked_results: max_queries must be None or an int >= 0, got {max_queries!r}')
    topk, width, height = int(topk), int(width), int(height)
    query, gallery = list(query_records), list(gallery_records)

    if isinstance(rankings, np.ndarray) or hasattr(rankings, 'detach'):
        if getattr(rankings, 'ndim', 0) != 2:
            raise ValueError('visualize_ranked_results: a distance matrix must be 2-D [num_query, num_gallery]')
        rankings = _rankings_from_distmat(rankings, query, gallery, same_action)
    rankings = list(rankings)
    if len(rankings) != len(query):
        raise ValueError(
            f'visualize_ranked_results: {len(rankings)} rankings for {len(query)} queries; expected one per query'
        )

    num_q = len(query) if max_queries is None else min(len(query), int(max_queries))
    if num_q == 0:
        return []
    mkdir_if_missing(save_dir)
    logger.info('Visualizing top-%d ranks of %d queries in "%s"', topk, num_q, save_dir)

    @functools.lru_cache(maxsize=512)
    def load(path):
        # Queries of one action share the same gallery: caching the resized images saves decoding.
        return read_image(path).resize((width, height), Image.BILINEAR)

    grid_w = (topk + 1) * width + topk * GRID_SPACING + QUERY_EXTRA_SPACING
    used_names = set()
    written = []
    for q_idx in range(num_q):
        q_path, q_pid = _first_path(query[q_idx][0], data_type), query[q_idx][1]
        ranking = np.asarray(rankings[q_idx], dtype=np.int64).reshape(-1)
        if ranking.size and (ranking.min() < 0 or ranking.max() >= len(gallery)):
            raise ValueError(
                f'visualize_ranked_results: rankings[{q_idx}] holds gallery index {int(ranking.max())} or '
                f'{int(ranking.min())}, outside [0, {len(gallery) - 1}]'
            )
        borders = display_border and not hidden_labels and not _is_unknown(q_pid)

        grid = Image.new('RGB', (grid_w, height), WHITE)
        grid.paste(_draw_border(load(q_path).copy(), BLACK), (0, 0))
        for rank, g_idx in enumerate(ranking[:topk]):
            g_path, g_pid = _first_path(gallery[g_idx][0], data_type), gallery[g_idx][1]
            g_img = load(g_path)
            if borders:
                g_img = _draw_border(g_img.copy(), GREEN if g_pid == q_pid else RED)
            x = (rank + 1) * width + rank * GRID_SPACING + QUERY_EXTRA_SPACING
            grid.paste(g_img, (x, 0))

        name = osp.splitext(osp.basename(os.fspath(q_path)))[0]
        if name in used_names:  # two queries with the same file name in different folders
            name = f'{name}_q{q_idx}'
        used_names.add(name)
        written.append(_save_png(grid, osp.join(save_dir, name + '.png')))
        if (q_idx + 1) % 100 == 0:
            logger.info('- done %d/%d', q_idx + 1, num_q)
    logger.info('Done. Images have been saved to "%s"', save_dir)
    return written


def _is_unknown(pid):
    try:
        return int(pid) < 0
    except (TypeError, ValueError):
        return False  # string pids (e.g. person_uid text) are known labels


def _save_png(img, path):
    """Write atomically (no partial picture is ever left behind), readable by all as a plain file would be."""
    with atomic_write(path, 'wb') as f:
        img.save(f, format='PNG')
        if hasattr(os, 'fchmod'):
            os.fchmod(f.fileno(), 0o644)  # mkstemp creates 0600 files; pictures are meant to be shared
    return path
