"""The ranked-results index opened in a real headless browser: the screenshot must show the pictures.

Skipped where no Chromium / Chrome is installed (``apt-get install chromium`` provides one)."""
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from torchreid.utils.reidtools import INDEX_NAME, visualize_ranked_results

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome',
            'chrome-headless-shell', 'headless_shell')
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
MAGENTA = (255, 0, 255)  # the test images' colour: nothing else on the page has it
TOPK = 3


def _runs(mask):
    """``[(start, stop)]`` of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


@pytest.mark.skipif(BROWSER is None, reason='no headless browser: none of ' + ', '.join(BROWSERS) + ' is on PATH '
                    '(apt-get install chromium)')
def test_index_shows_the_pictures_in_a_browser(tmp_path):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    records = []
    for i in range(2 + 6):
        path = imgs / f'{i}.png'
        Image.new('RGB', (40, 80), MAGENTA).save(path)
        records.append((str(path), i % 3, 0, 0))
    query, gallery = records[:2], records[2:]
    out = tmp_path / 'vis'
    visualize_ranked_results([np.array([0, 1, 2]), np.array([3, 4, 5])], query, gallery, str(out), topk=TOPK,
                             width=40, height=80, min_cell_height=80)
    shot = tmp_path / 'shot.png'
    env = dict(os.environ, HOME=str(tmp_path))  # the browser's profile and crash files stay in tmp_path
    proc = subprocess.run(
        [BROWSER, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run',
         f'--user-data-dir={tmp_path / "profile"}', '--window-size=1000,1000', f'--screenshot={shot}',
         (out / INDEX_NAME).as_uri()],
        capture_output=True, text=True, timeout=120, env=env)
    assert shot.exists(), f'no screenshot; browser said:\n{proc.stderr[-2000:]}'
    page = np.asarray(Image.open(shot).convert('RGB')).astype(int)
    assert page.std() > 10  # not a blank page

    # where the pictures' images are: rows / columns of the test images' colour
    magenta = (np.abs(page - np.array(MAGENTA)).sum(axis=2) < 60)
    bands = [b for b in _runs(magenta.any(axis=1)) if b[1] - b[0] >= 40]
    assert len(bands) == 2, f'expected the 2 query pictures one under the other, found image rows {bands}'
    for top, bottom in bands:
        cells = [c for c in _runs(magenta[top:bottom].any(axis=0)) if c[1] - c[0] >= 20]
        # the query and its top-3 gallery images, side by side, each a solid block of its image
        assert len(cells) == TOPK + 1, f'rows {top}-{bottom}: expected {TOPK + 1} images, found columns {cells}'
        for left, right in cells:
            assert magenta[top + 10:bottom - 10, left + 10:right - 10].mean() > 0.95
