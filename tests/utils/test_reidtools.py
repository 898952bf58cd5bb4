"""Ranked-result pictures: layout, frames, captions, distances, the call shapes (ours and Torchreid's) and the
HTML index."""
import html
import os
import re

import numpy as np
import pytest
from PIL import Image

from torchreid.utils.reidtools import (
    GREEN, GREY, GRID_SPACING, INDEX_NAME, MARGIN, QUERY_COLOUR, QUERY_EXTRA_SPACING, RED, WHITE,
    visualize_ranked_results,
)

H, W = 32, 16
FILL = (100, 100, 100)
SMALL = dict(width=W, height=H, min_cell_height=0)  # draw at exactly W x H


def _cell_x(rank, w=W):
    """Left x of the gallery image at 0-based rank (None: the query)."""
    if rank is None:
        return MARGIN
    return MARGIN + w + QUERY_EXTRA_SPACING + rank * (w + GRID_SPACING)


def _image_top(img):
    """Top row of the images: the first row where the query's frame is drawn (below the title line)."""
    for y in range(img.height):
        if img.getpixel((MARGIN, y)) == QUERY_COLOUR:
            return y
    raise AssertionError('no query frame in the picture')


def _open(path):
    return Image.open(path).convert('RGB')


@pytest.fixture
def records(tmp_path):
    """2 actions; queries q0 (pid 1, action 0), q1 (pid 5, action 1), q2 (pid 2, action 0)."""
    img_dir = tmp_path / 'imgs'
    img_dir.mkdir()

    def make(name, size=(10, 20)):
        path = img_dir / name
        Image.new('RGB', size, FILL).save(path)
        return str(path)

    query = [(make('q0.jpg'), 1, 0, 0), (make('q1.jpg'), 5, 1, 0), (make('q2.jpg'), 2, 0, 0)]
    gallery = [
        (make('g0.jpg'), 1, 0, 0), (make('g1.jpg'), 2, 0, 0), (make('g2.jpg', (30, 12)), 3, 0, 0),
        (make('g3.jpg'), 5, 1, 0), (make('g4.jpg'), 6, 1, 0),
    ]
    return query, gallery


def _rankings():
    # per-action rankings: positions in the gallery list, best first
    return [np.array([1, 0, 2]), np.array([3, 4]), np.array([1, 2, 0])]


def test_layout_frames_and_files(records, tmp_path):
    query, gallery = records
    out = tmp_path / 'vis'
    paths = visualize_ranked_results(_rankings(), query, gallery, str(out), topk=3, **SMALL)
    assert sorted(os.listdir(out)) == [INDEX_NAME, 'q0.png', 'q1.png', 'q2.png']  # nothing else (no temp files)
    assert [os.path.basename(p) for p in paths] == ['q0.png', 'q1.png', 'q2.png']
    q0 = _open(out / 'q0.png')
    assert q0.width == 2 * MARGIN + 4 * W + QUERY_EXTRA_SPACING + 2 * GRID_SPACING
    top = _image_top(q0)
    assert top > MARGIN  # a title line above the images
    assert q0.height > top + H + 3 * 10  # captions below them
    assert q0.getpixel((_cell_x(None), top)) == QUERY_COLOUR
    # q0 (pid 1): rank 0 is g1 (pid 2, wrong), rank 1 is g0 (pid 1, right), rank 2 is g2 (wrong)
    assert [q0.getpixel((_cell_x(r), top)) for r in range(3)] == [RED, GREEN, RED]
    assert q0.getpixel((_cell_x(2) + W - 1, top + H - 1)) == RED
    assert q0.getpixel((_cell_x(1) + W // 2, top + H // 2)) == FILL  # the image inside its frame
    assert q0.getpixel((_cell_x(0) - 1, top)) == WHITE  # gaps stay white
    # q1 has only 2 gallery items in its action: the 3rd cell stays empty
    q1 = _open(out / 'q1.png')
    assert [q1.getpixel((_cell_x(r), top)) for r in range(3)] == [GREEN, RED, WHITE]


def test_small_images_are_enlarged_to_a_readable_size(records, tmp_path):
    query, gallery = records
    out = tmp_path / 'big'
    visualize_ranked_results(_rankings(), query, gallery, str(out), topk=2, width=48, height=96)  # the demo's size
    img = _open(out / 'q0.png')
    cell_w, cell_h = 96, 192  # enlarged to MIN_CELL_HEIGHT, aspect ratio kept
    assert img.width == 2 * MARGIN + 3 * cell_w + QUERY_EXTRA_SPACING + GRID_SPACING
    top = _image_top(img)
    assert img.getpixel((_cell_x(0, cell_w), top + cell_h - 1)) == RED  # bottom row of the frame
    assert img.getpixel((_cell_x(0, cell_w), top + cell_h)) == WHITE
    # Torchreid's default size stays as it is
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'tr'), topk=2)
    assert _open(tmp_path / 'tr' / 'q0.png').width == 2 * MARGIN + 3 * 128 + QUERY_EXTRA_SPACING + GRID_SPACING


def _caption_band(img, top):
    """Pixels below the images (the captions) and above them (the title)."""
    arr = np.asarray(img)
    return arr[top + H + 1:], arr[:top]


def test_captions_are_drawn(records, tmp_path):
    query, gallery = records
    with_text = tmp_path / 'text'
    without = tmp_path / 'plain'
    visualize_ranked_results(_rankings(), query, gallery, str(with_text), topk=3, **SMALL)
    visualize_ranked_results(_rankings(), query, gallery, str(without), topk=3, captions=False, **SMALL)
    a, b = _open(with_text / 'q0.png'), _open(without / 'q0.png')
    assert a.size == b.size
    top = _image_top(a)
    below_a, above_a = _caption_band(a, top)
    below_b, above_b = _caption_band(b, top)
    assert (below_b == 255).all() and (above_b == 255).all()  # no text: blank bands
    assert (below_a != 255).any(axis=2).sum() > 100 and (above_a != 255).any(axis=2).sum() > 50
    # the images themselves are the same in both renders
    np.testing.assert_array_equal(np.asarray(a)[top:top + H], np.asarray(b)[top:top + H])
    # each gallery caption is coloured as its frame: rank 1 (right) has green text, rank 0 (wrong) red
    col = lambda r: below_a[:, _cell_x(r):_cell_x(r) + W].reshape(-1, 3).astype(int)  # noqa: E731
    assert (col(1)[:, 1] > col(1)[:, 0] + 60).any() and not (col(0)[:, 1] > col(0)[:, 0] + 60).any()


def test_distances_and_hidden_labels_change_the_text(records, tmp_path):
    query, gallery = records
    distmat = np.array([[0.2, 0.1, 0.3, 9, 9], [9, 9, 9, 0.1, 0.2], [0.3, 0.1, 0.2, 9, 9]])
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'plain'), topk=3, **SMALL)
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'dist'), topk=3, distances=distmat,
                             **SMALL)
    aligned = [distmat[i, r[:3]] for i, r in enumerate(_rankings())]  # the top-k of each query drawn
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'aligned'), topk=3, distances=aligned,
                             **SMALL)
    plain, dist = np.asarray(_open(tmp_path / 'plain' / 'q0.png')), np.asarray(_open(tmp_path / 'dist' / 'q0.png'))
    assert (plain != dist).any()
    np.testing.assert_array_equal(dist, np.asarray(_open(tmp_path / 'aligned' / 'q0.png')))
    # rows only for the queries drawn (what an engine holding per-action rankings can give cheaply)
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'first'), topk=3, distances=aligned[:1],
                             max_queries=1, **SMALL)
    first = _open(tmp_path / 'first' / 'q0.png')
    top = _image_top(first)  # the title differs ('Query 1/1'); the images and captions are the same
    np.testing.assert_array_equal(dist[top:], np.asarray(first)[top:])

    # hidden labels: grey frames, and the pid reads '?'
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'hidden'), topk=3, hidden_labels=True,
                             **SMALL)
    hidden = _open(tmp_path / 'hidden' / 'q0.png')
    top = _image_top(hidden)
    assert [hidden.getpixel((_cell_x(r), top)) for r in range(3)] == [GREY] * 3
    assert (np.asarray(hidden)[top + H + 1:] != plain[top + H + 1:]).any()
    # a query of unknown identity (pid -1, challenge) is drawn as hidden too
    unknown = [(p, -1, c, d) for p, _, c, d in query]
    visualize_ranked_results(_rankings(), unknown, gallery, str(tmp_path / 'unknown'), topk=3, **SMALL)
    assert _open(tmp_path / 'unknown' / 'q0.png').getpixel((_cell_x(0), top)) == GREY
    # no frames at all
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'nof'), topk=3, display_border=False,
                             **SMALL)
    assert _open(tmp_path / 'nof' / 'q0.png').getpixel((_cell_x(0), top)) == FILL


def test_max_queries(records, tmp_path):
    query, gallery = records
    assert visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'none'), max_queries=0) == []
    assert not (tmp_path / 'none').exists()
    out = tmp_path / 'two'
    visualize_ranked_results(_rankings(), query, gallery, str(out), topk=2, max_queries=2, **SMALL)
    assert sorted(os.listdir(out)) == [INDEX_NAME, 'q0.png', 'q1.png']  # the first two, deterministically


def test_distmat_same_action(records, tmp_path):
    query, gallery = records
    distmat = np.random.default_rng(0).random((3, 5))
    distmat[0] = [0.9, 0.1, 0.5, 0.0, 0.05]  # g3/g4 (action 1) are closest but belong to another action
    out = tmp_path / 'dm'
    visualize_ranked_results(distmat, query, gallery, str(out), topk=3, same_action=True, **SMALL)
    img = _open(out / 'q0.png')
    top = _image_top(img)
    # same-action order for q0: g1 (0.1, wrong), g2 (0.5, wrong), g0 (0.9, right)
    assert [img.getpixel((_cell_x(r), top)) for r in range(3)] == [RED, RED, GREEN]


def test_torchreid_call_shape_with_record_lists(records, tmp_path):
    query, gallery = records
    distmat = np.tile(np.arange(5, dtype=float), (3, 1))
    for i, call in enumerate((
        lambda out: visualize_ranked_results(distmat, (query, gallery), 'image', save_dir=out, topk=2, **SMALL),
        lambda out: visualize_ranked_results(distmat, dataset=(query, gallery), data_type='image', save_dir=out,
                                             topk=2, **SMALL),
    )):
        out = tmp_path / f'tr{i}'
        assert len(call(str(out))) == 3
        img = _open(out / 'q0.png')
        top = _image_top(img)
        # Market rule: same pid + same camid is junk, so g0 is skipped for q0 -> g1, g2 (both wrong)
        assert [img.getpixel((_cell_x(r), top)) for r in range(2)] == [RED, RED]


def test_torchreid_call_shape_with_the_data_managers_loaders(tiny_root, tmp_path):
    """What Torchreid's engine calls: ``visualize_ranked_results(distmat, dm.fetch_test_loaders(name),
    dm.data_type, width=..., height=..., save_dir=..., topk=...)`` (loaders, not record lists)."""
    import torchreid

    dm = torchreid.data.ImageDataManager(root=tiny_root, sources='soccernetv3',
                                         targets=['soccernetv3', 'soccernetv3_challenge'], height=32, width=16,
                                         workers=0, batch_size_test=8)
    qset, gset = (loader.dataset for loader in dm.fetch_test_loaders('soccernetv3'))
    q_pids = np.array([r[1] for r in qset.data])
    g_pids = np.array([r[1] for r in gset.data])
    q_act = np.array([r[2] for r in qset.data])
    g_act = np.array([r[2] for r in gset.data])
    # the right answer is nearest in its action; items of other actions are nearer still
    distmat = np.where(q_act[:, None] == g_act[None], 1.0, 0.0)
    distmat[q_pids[:, None] == g_pids[None]] = 0.5
    distmat[q_act[:, None] != g_act[None]] = 0.1
    out = tmp_path / 'valid'
    paths = visualize_ranked_results(distmat, dm.fetch_test_loaders('soccernetv3'), dm.data_type, width=dm.width,
                                     height=dm.height, save_dir=str(out), topk=3, min_cell_height=0)
    assert len(paths) == len(qset.data)
    has_match = [bool((g_pids[g_act == a] == p).any()) for p, a in zip(q_pids, q_act)]
    for path, matched in zip(paths, has_match):
        img = _open(path)
        top = _image_top(img)
        # the dataset declares the same-action metric: only the query's action is ranked, right answer first
        assert img.getpixel((_cell_x(0), top)) == (GREEN if matched else RED)
    index = (out / INDEX_NAME).read_text(encoding='utf-8')
    assert len(re.findall(r'<section id="action-', index)) == len(set(q_act.tolist()))
    assert f'bbox {qset.data_info[0].bbox_idx}' in index

    # the challenge target declares hidden labels: grey frames without being told
    ql, gl = dm.fetch_test_loaders('soccernetv3_challenge')
    out = tmp_path / 'challenge'
    paths = visualize_ranked_results(np.zeros((len(ql.dataset), len(gl.dataset))), (ql, gl), 'image', width=16,
                                     height=32, save_dir=str(out), topk=2, min_cell_height=0)
    img = _open(paths[0])
    assert img.getpixel((_cell_x(0), _image_top(img))) == GREY


def test_index_groups_links_and_escapes(records, tmp_path):
    query, gallery = records
    # an awkward query file name: HTML and URL special characters
    odd = tmp_path / 'imgs' / 'a<b>&"c d.jpg'
    Image.new('RGB', (10, 20), FILL).save(odd)
    query = [(str(odd), 1, 0, 0)] + query[1:]
    out = tmp_path / 'vis'
    visualize_ranked_results(_rankings(), query, gallery, str(out), topk=2, title='run <1> & "x"', **SMALL)
    index = (out / INDEX_NAME).read_text(encoding='utf-8')
    assert '<b>' not in index and 'run <1>' not in index
    assert html.escape('run <1> & "x"') in index
    links = re.findall(r'<img src="([^"]+)"', index)
    assert len(links) == 3
    from urllib.parse import unquote
    for link in links:  # relative, and each one names a picture that exists
        target = unquote(html.unescape(link))
        assert not os.path.isabs(target) and (out / target).is_file()
    assert unquote(html.unescape(links[0])) == 'a<b>&"c d.png'
    # Market-style names: one list of queries, no action sections
    assert '<h2>Queries (3 queries)</h2>' in index and 'id="action-' not in index
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]
    # no index when asked
    visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'noidx'), topk=2, write_index=False, **SMALL)
    assert not (tmp_path / 'noidx' / INDEX_NAME).exists()


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
    with pytest.raises(ValueError, match=r'query_records\[0\] must be an \(img_path'):
        visualize_ranked_results(_rankings(), [{'img': 0}] * 3, gallery, str(tmp_path / 'v'))
    with pytest.raises(ValueError, match='save_dir must be a folder path'):
        visualize_ranked_results(np.zeros((3, 5)), (query, gallery), 'image', 16, 32)
    with pytest.raises(ValueError, match=r'distances\[0\] has 1 values'):
        visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 'u'), distances=[[0.1], [], []])
    with pytest.raises(ValueError, match='1 distance rows for 2 queries drawn'):
        visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 's'), distances=[[0.1] * 3],
                                 max_queries=2)
    with pytest.raises(ValueError, match='topk must be an int >= 1'):
        visualize_ranked_results(_rankings(), query, gallery, str(tmp_path / 't'), topk=0)
