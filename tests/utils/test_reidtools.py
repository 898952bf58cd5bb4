import os

import numpy as np
import pytest
from PIL import Image

from torchreid.utils.reidtools import (
    BORDER_WIDTH, GREEN, GRID_SPACING, QUERY_EXTRA_SPACING, RED, WHITE, visualize_ranked_results,
)

H, W = 32, 16
GREY = (100, 100, 100)


def _cell_x(rank):
    """Left x of the gallery image at 0-based rank in the picture."""
    return (rank + 1) * W + rank * GRID_SPACING + QUERY_EXTRA_SPACING


@pytest.fixture
def records(tmp_path):
    """2 actions; queries q0 (pid 1, action 0), q1 (pid 5, action 1), q2 (pid 2, action 0)."""
    img_dir = tmp_path / 'imgs'
    img_dir.mkdir()

    def make(name, size=(10, 20)):
        path = img_dir / name
        Image.new('RGB', size, GREY).save(path)
        return str(path)

    query = [(make('0-0-20x10.png'), 1, 0, 0), (make('1-1-20x10.png'), 5, 1, 0), (make('2-0-20x10.png'), 2, 0, 0)]
    gallery = [
        (make('g0.png'), 1, 0, 0), (make('g1.png'), 2, 0, 0), (make('g2.png', (30, 12)), 3, 0, 0),
        (make('g3.png'), 5, 1, 0), (make('g4.png'), 6, 1, 0),
    ]
    return query, gallery


def _rankings():
    # per-action rankings: positions in the gallery list, best first
    return [np.array([1, 0, 2]), np.array([3, 4]), np.array([1, 2, 0])]


def test_writes_one_png_per_query_with_borders(records, tmp_path):
    query, gallery = records
    out = tmp_path / 'vis'
    paths = visualize_ranked_results(_rankings(), query, gallery, str(out), topk=3, width=W, height=H)
    names = sorted(os.listdir(out))
    assert names == ['0-0-20x10.png', '1-1-20x10.png', '2-0-20x10.png']  # nothing else (no temp files)
    assert [os.path.basename(p) for p in paths] == ['0-0-20x10.png', '1-1-20x10.png', '2-0-20x10.png']
    grid_w = 4 * W + 3 * GRID_SPACING + QUERY_EXTRA_SPACING
    q0 = Image.open(out / '0-0-20x10.png').convert('RGB')
    assert q0.size == (grid_w, H)
    # q0 (pid 1): rank 0 is g1 (pid 2, wrong), rank 1 is g0 (pid 1, right), rank 2 is g2 (wrong)
    assert q0.getpixel((_cell_x(0), 0)) == RED
    assert q0.getpixel((_cell_x(1) + BORDER_WIDTH - 1, H // 2)) == GREEN
    assert q0.getpixel((_cell_x(2) + W - 1, H - 1)) == RED
    # inside the border the image itself is visible; the gaps stay white
    assert q0.getpixel((_cell_x(1) + W // 2, H // 2)) == GREY
    assert q0.getpixel((_cell_x(0) - 1, 0)) == WHITE
    # q1 has only 2 gallery items in its action: the 3rd cell stays empty (white)
    q1 = Image.open(out / '1-1-20x10.png').convert('RGB')
    assert q1.getpixel((_cell_x(0), 0)) == GREEN and q1.getpixel((_cell_x(1), 0)) == RED
    assert q1.getpixel((_cell_x(2) + W // 2, H // 2)) == WHITE


def test_no_borders_when_labels_hidden(records, tmp_path):
    query, gallery = records
    for kwargs in (dict(hidden_labels=True), dict(display_border=False)):
        out = tmp_path / str(sorted(kwargs))
        visualize_ranked_results(_rankings(), query, gallery, str(out), topk=3, width=W, height=H, **kwargs)
        img = Image.open(out / '0-0-20x10.png').convert('RGB')
        assert img.getpixel((_cell_x(0), 0)) == GREY and img.getpixel((_cell_x(1), 0)) == GREY
    # a query of unknown identity (pid -1, challenge) gets no borders either
    hidden_query = [(p, -1, c, d) for p, _, c, d in query]
    out = tmp_path / 'unknown'
    visualize_ranked_results(_rankings(), hidden_query, gallery, str(out), topk=3, width=W, height=H)
    assert Image.open(out / '0-0-20x10.png').convert('RGB').getpixel((_cell_x(0), 0)) == GREY


def test_max_queries(records, tmp_path):
    query, gallery = records
    assert visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'none'), max_queries=0) == []
    assert not (tmp_path / 'none').exists()
    out = tmp_path / 'two'
    visualize_ranked_results(_rankings(), query, gallery, str(out), topk=2, width=W, height=H, max_queries=2)
    assert sorted(os.listdir(out)) == ['0-0-20x10.png', '1-1-20x10.png']  # the first two, deterministically


def test_distmat_same_action(records, tmp_path):
    query, gallery = records
    rng = np.random.default_rng(0)
    distmat = rng.random((3, 5))
    distmat[0] = [0.9, 0.1, 0.5, 0.0, 0.05]  # g3/g4 (action 1) are closest but belong to another action
    out = tmp_path / 'dm'
    visualize_ranked_results(distmat, query, gallery, str(out), topk=3, width=W, height=H, same_action=True)
    img = Image.open(out / '0-0-20x10.png').convert('RGB')
    # same-action order for q0: g1 (0.1, wrong), g2 (0.5, wrong), g0 (0.9, right)
    assert [img.getpixel((_cell_x(r), 0)) for r in range(3)] == [RED, RED, GREEN]


def test_torchreid_call_shape(records, tmp_path):
    query, gallery = records
    distmat = np.tile(np.arange(5, dtype=float), (3, 1))
    out = tmp_path / 'tr'
    visualize_ranked_results(distmat, (query, gallery), 'image', width=W, height=H, save_dir=str(out), topk=2)
    assert len(os.listdir(out)) == 3
    img = Image.open(out / '0-0-20x10.png').convert('RGB')
    # Market rule: same pid + same camid is junk, so g0 is skipped for q0 -> g1, g2 (both wrong)
    assert img.getpixel((_cell_x(0), 0)) == RED and img.getpixel((_cell_x(1), 0)) == RED


def test_bad_inputs(records, tmp_path):
    query, gallery = records
    with pytest.raises(ValueError, match='one per query'):
        visualize_ranked_results(_rankings()[:2], query, gallery, str(tmp_path / 'x'))
    with pytest.raises(ValueError, match=r'rankings\[0\].*outside'):
        visualize_ranked_results([np.array([7]), np.array([]), np.array([])], query, gallery, str(tmp_path / 'y'))
    with pytest.raises(ValueError, match='distmat has shape'):
        visualize_ranked_results(np.zeros((3, 4)), query, gallery, str(tmp_path / 'z'))
    with pytest.raises(ValueError, match='data_type'):
        visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'w'), data_type='audio')
