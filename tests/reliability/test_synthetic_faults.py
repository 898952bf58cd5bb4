"""The synthetic generator never destroys data it did not write, and stops cleanly when interrupted or killed.

Interrupts and kills hit REAL processes (``python -m torchreid.synthetic``) at named points: the generator's
test hook ``TORCHREID_FAULT_AT=<point>`` logs the point (and the pool's worker pids) and waits there. Each
test records (fault, outcome, lost files) with ``record_property`` (kept by ``pytest --junitxml``)."""
import glob
import os
import os.path as osp
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from torchreid.synthetic import META_NAME, clean_stale_temporaries, generate_dataset
from torchreid.synthetic.cli import main as cli_main
from torchreid.synthetic.generator import TMP_MARKER_NAME
from torchreid.utils.io import atomic_write_json

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_TMP_GLOB = '.reid.tmp-*'


def _record(record_property, fault, outcome, lost_files=0):
    record_property('fault', fault)
    record_property('outcome', outcome)
    record_property('lost_files', lost_files)


class Generator:
    """``python -m torchreid.synthetic`` in its own session (a process group, as a shell job), its stderr read
    line by line."""

    def __init__(self, root, fault, wait=60.0):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   TORCHREID_FAULT_AT=fault, TORCHREID_FAULT_WAIT=str(wait))
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'torchreid.synthetic', '--root', root, '--preset', 'tiny', '--workers', '2'],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines = queue.Queue()
        self.text = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.text.append(line)
            self.lines.put(line)

    def wait_for(self, needle, timeout=30.0):
        """The first stderr line holding ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if needle in line:
                return line
        self.kill_group()
        raise AssertionError(f'{needle!r} never came; stderr:\n{"".join(self.text)}')

    def fault_children(self, line):
        return [int(p) for p in line.rsplit('children=', 1)[1].split(',') if p.strip()]

    def ctrl_c(self):
        """SIGINT to the whole group, as a terminal's Ctrl-C."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:      # a zombie is dead
        return f.read().split(')')[-1].split()[0] != 'Z'


def _wait_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _leftovers(root):
    parent = osp.join(root, 'soccernetv3')
    return sorted(glob.glob(osp.join(parent, _TMP_GLOB))) + \
        ([osp.join(parent, 'reid')] if osp.exists(osp.join(parent, 'reid')) else [])


def _dead_pid():
    done = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    return int(done.stdout)


def test_ctrl_c_while_drawing_stops_cleanly(tmp_path, record_property):
    """fault: Ctrl-C (SIGINT to the group) while workers draw -> expected: exit 130, workers gone, nothing left."""
    gen = Generator(str(tmp_path), 'render')
    line = gen.wait_for('TORCHREID_FAULT_AT render')
    workers = gen.fault_children(line)
    assert len(workers) == 2
    start = time.monotonic()
    gen.ctrl_c()
    assert gen.proc.wait(timeout=20) == 130, ''.join(gen.text)
    assert time.monotonic() - start < 15   # generous for a loaded 2-core machine
    assert _wait_gone(workers, 5) == []
    assert _leftovers(str(tmp_path)) == []
    assert 'interrupted' in ''.join(gen.text)
    _record(record_property, 'Ctrl-C while drawing', f'exit 130 in {time.monotonic() - start:.1f} s, clean')


def test_second_ctrl_c_during_cleanup_does_not_hang_or_leave_files(tmp_path, record_property):
    """fault: Ctrl-C, then twice more during the cleanup -> expected: cleanup finishes, exit 130, nothing left."""
    gen = Generator(str(tmp_path), 'render,cleanup', wait=2)
    gen.wait_for('TORCHREID_FAULT_AT render')
    gen.ctrl_c()
    gen.wait_for('TORCHREID_FAULT_AT cleanup')
    start = time.monotonic()
    gen.ctrl_c()
    time.sleep(0.3)
    gen.ctrl_c()
    assert gen.proc.wait(timeout=20) == 130, ''.join(gen.text)
    assert time.monotonic() - start < 15   # 2 s of it the hook's pause
    assert 'cannot be stopped half-way' in ''.join(gen.text)
    assert _leftovers(str(tmp_path)) == []
    _record(record_property, 'Ctrl-C three times (twice during cleanup)',
            f'exit 130 in {time.monotonic() - start:.1f} s, clean')


def test_ctrl_c_while_writing_labels_stops_cleanly(tmp_path, record_property):
    """fault: Ctrl-C after drawing, before the labels -> expected: exit 130, nothing left."""
    gen = Generator(str(tmp_path), 'labels')
    gen.wait_for('TORCHREID_FAULT_AT labels')
    gen.ctrl_c()
    assert gen.proc.wait(timeout=20) == 130, ''.join(gen.text)
    assert _leftovers(str(tmp_path)) == []
    _record(record_property, 'Ctrl-C before the labels', 'exit 130, clean')


@pytest.mark.parametrize('point', ['render', 'move'])
def test_sigkill_leftovers_are_cleaned_by_the_next_run(tmp_path, point, record_property):
    """fault: SIGKILL of the generator (drawing / about to move in) -> expected: workers exit, next run cleans."""
    gen = Generator(str(tmp_path), point)
    line = gen.wait_for(f'TORCHREID_FAULT_AT {point}')
    os.kill(gen.proc.pid, signal.SIGKILL)   # the parent only, as `kill -9 <pid>`
    gen.proc.wait()
    workers = gen.fault_children(line)
    assert _wait_gone(workers, 5) == [], 'pool workers outlived their killed parent'
    temps = glob.glob(osp.join(str(tmp_path), 'soccernetv3', _TMP_GLOB))
    assert len(temps) == 1 and not osp.exists(osp.join(str(tmp_path), 'soccernetv3', 'reid'))
    marker = TMP_MARKER_NAME if point == 'render' else META_NAME
    assert osp.isfile(osp.join(temps[0], marker))
    target = generate_dataset(str(tmp_path), preset='tiny', seed=0, workers=1)
    assert _leftovers(str(tmp_path)) == [target] and osp.isfile(osp.join(target, META_NAME))
    _record(record_property, f'SIGKILL at {point}', 'temporary folder removed by the next run')


def test_only_dead_marked_temporaries_are_removed(tmp_path, record_property):
    """fault: look-alike temp folders (no marker / live owner / dead owner) -> expected: only the dead one goes."""
    parent = tmp_path / 'soccernetv3'
    dead, live, foreign = (parent / f'.reid.tmp-{_dead_pid()}-0000aaaa', parent / f'.reid.tmp-{os.getpid()}-0000bbbb',
                           parent / '.reid.tmp-1-0000cccc')
    for folder in (dead, live, foreign):
        (folder / 'train').mkdir(parents=True)
        (folder / 'train' / 'keep.png').write_bytes(b'x')
    for folder in (dead, live):
        pid = int(folder.name.split('-')[1])
        atomic_write_json(str(folder / TMP_MARKER_NAME), {'format': 'torchreid-synthetic-soccernetv3-reid',
                                                          'pid': pid, 'host': os.uname().nodename, 'workers': []})
    (parent / 'notes.txt').write_text('mine')
    assert clean_stale_temporaries(str(parent)) == [str(dead)]
    assert sorted(os.listdir(parent)) == sorted([live.name, foreign.name, 'notes.txt'])
    _record(record_property, 'temporary look-alikes', 'only the dead marked one removed', lost_files=0)


def _tree_files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize('marker', ['none', 'broken'])
def test_overwrite_never_deletes_real_data(tmp_path, marker, caplog, record_property):
    """fault: --overwrite on a root holding real data -> expected: refused (exit 1), every file kept."""
    reid = tmp_path / 'soccernetv3' / 'reid'
    (reid / 'train' / 'league' / 's' / 'g' / '0').mkdir(parents=True)
    (reid / 'train' / 'league' / 's' / 'g' / '0' / '0-0-1-0-Main_referee-None-x-20x10.png').write_bytes(b'real')
    (reid / 'valid').mkdir()
    (reid / 'valid' / 'bbox_info.json').write_text('{"query": {}, "gallery": {}}')
    if marker == 'broken':
        (reid / META_NAME).write_text('{"format": "torchreid-synthetic-')
    before = _tree_files(str(tmp_path))
    with caplog.at_level('ERROR'):
        assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--overwrite']) == 1
    assert 'never deleted' in caplog.text and str(reid) in caplog.text
    after = _tree_files(str(tmp_path))
    assert after == before
    _record(record_property, f'--overwrite on real data (marker: {marker})', 'refused, exit 1',
            lost_files=len(set(before) - set(after)))


def test_overwrite_replaces_its_own_set(tmp_path, record_property):
    """fault: none: --overwrite on a set the generator made with another seed -> expected: replaced."""
    assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--scale', '0.5', '--seed', '1']) == 0
    assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--scale', '0.5', '--seed', '2']) == 1
    assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--scale', '0.5', '--seed', '2',
                     '--overwrite']) == 0
    assert _leftovers(str(tmp_path)) == [osp.join(str(tmp_path), 'soccernetv3', 'reid')]
    _record(record_property, '--overwrite on its own set', 'replaced')
