"""Every ```python and ```bash block of README.md and docs/*.md runs as written.

Each block runs in a fresh interpreter (``bash`` for bash blocks), in its own temporary working folder that
looks like a clone of the repository (the top-level folders are linked in, the output folders are not), with
this checkout on ``PYTHONPATH`` as ``pip install -e .`` would make it importable. A block that cannot run here
(the real dataset, a GPU, an install) carries a marker on the line before its opening fence::

    <!-- doctest: skip (the reason) -->

and is reported as skipped with that reason. Other fences (``text``, ``json``, layouts without a language) are
not code to run and are left alone.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
RUNNERS = {'python': [sys.executable], 'bash': ['bash', '-e', '-o', 'pipefail']}
MARKER = re.compile(r'^<!--\s*doctest:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$')
ANY_MARKER = re.compile(r'<!--\s*doctest')
FENCE = re.compile(r'^```(?P<lang>[\w+-]*)\s*$')
# Folders a block writes into (or build leftovers): never linked, so nothing is written into the checkout.
NOT_LINKED = {'log', 'reid-data', 'datasets', 'build', 'dist'}
TIMEOUT_S = 300


class Block(NamedTuple):
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip_reason: Optional[str]

    @property
    def name(self) -> str:
        return f'{self.path.relative_to(REPO)}:{self.line}'


class MarkerError(ValueError):
    """A doctest marker that is malformed or not directly above a python / bash block."""


def extract_blocks(path: Path) -> List[Block]:
    """The fenced code blocks of one markdown file (every language), with the skip marker above each."""
    lines = path.read_text(encoding='utf-8').splitlines()
    blocks = []
    i = 0
    pending = None  # (line number, reason) of a marker waiting for its block
    while i < len(lines):
        text = lines[i]
        fence = FENCE.match(text)
        if ANY_MARKER.search(text):
            marker = MARKER.match(text.strip())
            if marker is None:
                raise MarkerError(f'{path.name}:{i + 1}: malformed marker {text.strip()!r}; the form is '
                                  '"<!-- doctest: skip (reason) -->"')
            pending = (i + 1, marker.group('reason').strip())
        elif fence is not None:
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() != '```':
                i += 1
            if i == len(lines):
                raise MarkerError(f'{path.name}:{start + 1}: code block never closed')
            lang = fence.group('lang')
            if pending is not None and lang not in RUNNERS:
                raise MarkerError(f'{path.name}:{pending[0]}: a doctest marker above a block that is not run '
                                  f'(```{lang}); remove it')
            blocks.append(Block(path, start + 1, lang, '\n'.join(lines[start + 1:i]) + '\n',
                                None if pending is None else pending[1]))
            pending = None
        elif text.strip() and pending is not None:
            raise MarkerError(f'{path.name}:{pending[0]}: a doctest marker must be the line just before the '
                              'opening fence of its block')
        i += 1
    if pending is not None:
        raise MarkerError(f'{path.name}:{pending[0]}: a doctest marker with no block after it')
    return blocks


def _runnable() -> List[Block]:
    return [b for path in DOCUMENTS for b in extract_blocks(path) if b.lang in RUNNERS]


def _params():
    return [pytest.param(b, id=b.name, marks=[pytest.mark.skip(reason=f'{b.name}: {b.skip_reason}')]
                         if b.skip_reason else []) for b in _runnable()]


def _clone_like(workdir: Path) -> None:
    """Link the checkout's top-level files and folders into ``workdir`` (not its output folders)."""
    for entry in REPO.iterdir():
        if entry.name.startswith('.') or entry.name in NOT_LINKED or entry.name.endswith('.egg-info'):
            continue
        (workdir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


@pytest.mark.parametrize('block', _params())
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    _clone_like(tmp_path)
    script = tmp_path / ('doc_block.py' if block.lang == 'python' else 'doc_block.sh')
    script.write_text(block.code, encoding='utf-8')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    env['PATH'] = os.pathsep.join([str(Path(sys.executable).parent), env.get('PATH', '')])  # `python` is this one
    env.setdefault('OMP_NUM_THREADS', '1')  # tiny models: one thread, as in tests/conftest.py
    proc = subprocess.run([*RUNNERS[block.lang], str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (
        f'{block.name} ({block.lang}) failed with status {proc.returncode}:\n{block.code}\n'
        f'--- stdout (end) ---\n{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-6000:]}')


def test_every_document_has_runnable_blocks_and_markers_are_attached() -> None:
    blocks = _runnable()
    names = {b.path.name for b in blocks}
    assert {'README.md', 'data.md', 'evaluation.md'} <= names
    run = [b for b in blocks if not b.skip_reason]
    assert sum(b.lang == 'python' for b in run) >= 4 and any(b.lang == 'bash' for b in run)


def test_markers_are_checked(tmp_path: Path) -> None:
    doc = tmp_path / 'doc.md'
    doc.write_text('x\n<!-- doctest: skip (needs a GPU) -->\n```python\nimport torch\n```\n\n```json\n{}\n```\n')
    blocks = extract_blocks(doc)
    assert [(b.line, b.lang, b.skip_reason, b.code) for b in blocks] == [
        (3, 'python', 'needs a GPU', 'import torch\n'), (7, 'json', None, '{}\n')]
    for text, message in (
        ('<!-- doctest: skip -->\n```python\npass\n```\n', 'malformed'),
        ('<!-- doctest: skip (r) -->\ntext\n```python\npass\n```\n', 'just before'),
        ('<!-- doctest: skip (r) -->\n```json\n{}\n```\n', 'not run'),
        ('```python\npass\n', 'never closed'),
        ('<!-- doctest: skip (r) -->\n', 'no block after it'),
    ):
        doc.write_text(text)
        with pytest.raises(MarkerError, match=message):
            extract_blocks(doc)
