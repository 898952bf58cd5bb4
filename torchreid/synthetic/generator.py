"""Write a synthetic SoccerNet-v3 ReID set to disk in the real release's layout and naming.

``generate_dataset(root, preset, seed)`` plans the set (:mod:`.plan`), draws every box (:mod:`.render`)
into a temporary folder beside the target, writes the ground truth, the identity map and last the
completion marker ``synthetic_meta.json``, then renames the folder into place. An interrupted run never
leaves a folder that looks complete.

What it deletes is only ever its own: a set is replaced (``overwrite``) only when it holds the generator's
marker, and the temporary folders of a killed run (``.reid.tmp-<pid>-<hex>`` holding an in-progress marker,
their processes gone) are removed by the next run. Ctrl-C stops cleanly: workers ignore SIGINT and are
terminated and joined, the temporary folder is removed, and a second Ctrl-C during that cleanup is logged and
ignored rather than leaving a half-removed folder or a hung pool.

Test hook: the environment variable ``TORCHREID_FAULT_AT`` (comma-separated names among ``render``,
``labels``, ``move``, ``cleanup``) makes the run log ``TORCHREID_FAULT_AT <name> ...`` at that point and wait
``TORCHREID_FAULT_WAIT`` seconds (default 60) so that a test can interrupt or kill it there. Unset, it does
nothing.
"""
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import os.path as osp
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from typing import Iterator, List, Optional, Union

from torchreid.soccernet_format import (GROUND_TRUTH_NAMES, SoccerNetSample, format_filename, samples_to_gt_split,
                                        write_ground_truth)
from torchreid.utils.io import atomic_write_json

from .plan import DatasetPlan, plan_dataset, plan_statistics
from .presets import SPLITS, Preset, get_preset
from .render import render_action

logger = logging.getLogger(__name__)

__all__ = ['generate_dataset', 'dataset_dir', 'read_meta', 'clean_stale_temporaries', 'META_NAME', 'IDENTITIES_NAME',
           'FORMAT_VERSION', 'TMP_MARKER_NAME', 'FAULT_ENV']

META_NAME = 'synthetic_meta.json'
IDENTITIES_NAME = 'synthetic_identities.json'
FORMAT_VERSION = 1
_FORMAT_TAG = 'torchreid-synthetic-soccernetv3-reid'
#: Written first into a temporary folder (and removed just before it is renamed into place): proves the folder
#: is this generator's, and names the processes that write into it.
TMP_MARKER_NAME = '.torchreid_synthetic_in_progress.json'
_TMP_NAME = re.compile(r'^\.reid\.tmp-(\d+)-[0-9a-f]{8}(\.old)?$')
FAULT_ENV = 'TORCHREID_FAULT_AT'


def _fault_point(name: str) -> None:
    """The test hook (see the module docstring); inert unless ``TORCHREID_FAULT_AT`` names ``name``."""
    points = os.environ.get(FAULT_ENV)
    if not points or name not in points.split(','):
        return
    children = sorted(p.pid for p in multiprocessing.active_children())
    logger.warning('%s %s pid=%d children=%s', FAULT_ENV, name, os.getpid(), ','.join(map(str, children)))
    time.sleep(float(os.environ.get('TORCHREID_FAULT_WAIT', '60')))


def dataset_dir(root: str) -> str:
    """``<root>/soccernetv3/reid``: where the set lives (as for the real data)."""
    return osp.join(os.fspath(root), 'soccernetv3', 'reid')


def read_meta(path: str) -> Optional[dict]:
    """The completion marker of the set in ``path`` (the reid folder), or None when it has none."""
    meta_path = osp.join(path, META_NAME)
    if not osp.isfile(meta_path):
        return None
    with open(meta_path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{meta_path}: broken completion marker ({err}); regenerate with overwrite=True') from err


def _sample(box, action, img_path: str = '') -> SoccerNetSample:
    return SoccerNetSample(
        bbox_idx=box.bbox_idx, action_idx=action.action_idx, height=box.height, width=box.width,
        person_uid=box.person_uid, frame_idx=box.frame_idx, clazz=box.clazz, id=box.id, UAI=box.UAI,
        relative_path=action.relative_path, img_path=img_path)


def _box_path(out_dir: str, split: str, action, box) -> str:
    """Where a box's PNG goes under the reid folder ``out_dir``."""
    sample = _sample(box, action)
    if split == 'train':
        return osp.join(out_dir, 'train', action.relative_path, format_filename(sample))
    if split == 'challenge':
        return osp.join(out_dir, 'challenge', box.subset, format_filename(sample, hide_labels=True))
    return osp.join(out_dir, split, box.subset, action.relative_path, format_filename(sample))


def _render_game(task) -> int:
    """Draw and save every box of some actions of one game (runs in a worker process)."""
    split, game, actions, out_dir, render_height, seed = task
    split_no = SPLITS.index(split)
    made_dirs = set()
    count = 0
    for action in actions:
        for box, image in render_action(game, action, render_height, seed, split_no):
            path = _box_path(out_dir, split, action, box)
            folder = osp.dirname(path)
            if folder not in made_dirs:
                os.makedirs(folder, exist_ok=True)
                made_dirs.add(folder)
            if image.size != (box.width, box.height):
                raise RuntimeError(f'{path}: rendered {image.size[1]}x{image.size[0]}, '
                                   f'planned {box.height}x{box.width}')
            image.save(path, format='PNG', compress_level=1)
            count += 1
    return count


def _tasks(plan: DatasetPlan, out_dir: str, actions_per_task: int):
    for name, split in plan.splits.items():
        for game in split.games:
            # the roster travels without the other actions of the game, to keep each task small
            shell = dataclasses.replace(game, actions=[])
            for i in range(0, len(game.actions), actions_per_task):
                yield (name, shell, game.actions[i:i + actions_per_task], out_dir, plan.preset.render_height,
                       plan.seed)


def _render_all(plan: DatasetPlan, out_dir: str, pool) -> int:
    total = sum(len(a.boxes) for s in plan.splits.values() for _, a in s.actions())
    done = 0
    next_log = 0.0
    start = time.time()
    results = pool.imap_unordered(_render_game, _tasks(plan, out_dir, 8)) if pool is not None else (
        _render_game(t) for t in _tasks(plan, out_dir, 8))
    for batch, n in enumerate(results):
        if batch == 0:
            _fault_point('render')
        done += n
        if done >= next_log:
            logger.info('synthetic: %d / %d images (%.1f s)', done, total, time.time() - start)
            next_log += max(1000, total / 10)
    if done != total:
        raise RuntimeError(f'synthetic: rendered {done} images, planned {total}')
    return done


def _write_labels(plan: DatasetPlan, out_dir: str) -> None:
    for name, split in plan.splits.items():
        if name == 'train':
            train = samples_to_gt_split(_sample(b, a) for _, a, b in split.boxes('train'))
            atomic_write_json(osp.join(out_dir, 'train', 'train_bbox_info.json'), train)
            continue
        query = [_sample(b, a) for _, a, b in split.boxes('query')]
        gallery = [_sample(b, a) for _, a, b in split.boxes('gallery')]
        # the release's name (test/test_bbox_info.json...); challenge_labels/bbox_info.json for the challenge
        write_ground_truth(osp.join(out_dir, GROUND_TRUTH_NAMES[name][0][0]), query, gallery)
        for subset in ('query', 'gallery'):   # an empty list still has its folder, as the loaders expect
            os.makedirs(osp.join(out_dir, name, subset), exist_ok=True)


def _meta(plan: DatasetPlan, stats: dict) -> dict:
    # no timings or paths: the marker is as reproducible as the rest of the set
    return {
        'format': _FORMAT_TAG, 'version': FORMAT_VERSION, 'preset': plan.preset.to_dict(), 'seed': plan.seed,
        'counts': {name: {k: s[k] for k in ('images', 'queries', 'gallery', 'actions', 'games', 'identities')}
                   for name, s in stats.items()},
        'identities_file': IDENTITIES_NAME,
    }


def _matches(meta: dict, preset: Preset, seed: int) -> bool:
    return (meta.get('format') == _FORMAT_TAG and meta.get('version') == FORMAT_VERSION
            and meta.get('seed') == seed and meta.get('preset') == json.loads(json.dumps(preset.to_dict())))


def _estimated_images(preset: Preset) -> int:
    return int(sum(preset.split(name).actions for name in SPLITS) * 26 * preset.crowd)


def _default_workers(n_images: int) -> int:
    if n_images < 2000:
        return 1   # forking costs more than it saves
    return max(1, min(os.cpu_count() or 1, 16))


def _own_meta(path: str) -> Optional[dict]:
    """The generator's completion marker in ``path``, or None when it has none that is readable and ours."""
    try:
        meta = read_meta(path)
    except (ValueError, OSError):
        return None
    return meta if isinstance(meta, dict) and meta.get('format') == _FORMAT_TAG else None


def _pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (an exited, unreaped process writes nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # exists, another user's
        pass
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as f:
            return f.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (OSError, IndexError):   # no /proc (not Linux): existence is all we know
        return True


def _stale_temp_owner(path: str, name_pid: int) -> Optional[str]:
    """Why the temporary folder ``path`` is a dead run of this generator (a description), or None when it must
    be left alone: not provably ours (no marker), or written by a process that may still run."""
    marker_path = osp.join(path, TMP_MARKER_NAME)
    marker = None
    if osp.isfile(marker_path):
        try:
            with open(marker_path, encoding='utf-8') as f:
                marker = json.load(f)
        except (OSError, ValueError):
            marker = None
    if isinstance(marker, dict) and marker.get('format') == _FORMAT_TAG:
        if marker.get('host') != socket.gethostname():
            return None     # another machine's run (shared disk): its processes cannot be checked from here
        pids = [int(p) for p in [marker.get('pid', name_pid)] + list(marker.get('workers', []))]
    elif _own_meta(path) is not None:   # a complete set: renamed aside to be replaced, or about to move in
        pids = [name_pid]
    else:
        return None
    if any(_pid_alive(pid) for pid in pids):
        return None
    return f'left by generator process {name_pid}, which is gone'


def clean_stale_temporaries(parent: str) -> List[str]:
    """Remove the temporary folders that killed runs left in ``parent`` (``<root>/soccernetv3``); returns them.

    Only folders named ``.reid.tmp-<pid>-<hex>[.old]`` that hold this generator's marker (in-progress marker
    or completion marker) and whose processes are all gone are removed; anything else is left as it is.
    """
    removed = []
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return removed
    for name in names:
        match = _TMP_NAME.match(name)
        path = osp.join(parent, name)
        if match is None or osp.islink(path) or not osp.isdir(path):
            continue
        why = _stale_temp_owner(path, int(match.group(1)))
        if why is None:
            logger.info('synthetic: leaving %s (not provably a dead run of this generator)', path)
            continue
        shutil.rmtree(path, ignore_errors=True)
        logger.info('synthetic: removed %s, %s', path, why)
        removed.append(path)
    return removed


def _worker_init(parent_pid: int) -> None:
    """Pool workers: Ctrl-C is the parent's to handle (it terminates them), and they exit with their parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(1)     # the parent was killed: nothing may keep writing into its temporary folder


@contextlib.contextmanager
def _uninterruptible(what: str) -> Iterator[None]:
    """Run a cleanup to the end: a Ctrl-C meanwhile is logged and ignored (main thread only; elsewhere a
    no-op, signals being delivered to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def refuse(signum, frame):
        logger.warning('synthetic: still %s; it takes a moment and cannot be stopped half-way', what)

    previous = signal.signal(signal.SIGINT, refuse)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def generate_dataset(root: str, preset: Union[str, Preset] = 'tiny', seed: int = 0, overwrite: bool = False,
                     workers: Optional[int] = None) -> str:
    """Generate a synthetic SoccerNet-v3 ReID set under ``<root>/soccernetv3/reid`` and return that path.

    Args:
        root: data root (the same ``root`` the dataset classes take).
        preset: a name in :data:`PRESETS` ('tiny', 'demo', 'full') or a :class:`Preset`.
        seed: the same seed gives byte-identical images and labels.
        overwrite: replace an existing set this generator made with another preset/seed.
        workers: processes drawing images (default: 1 for small sets, else the CPU count).

    A complete set for the same preset and seed is returned at once. A folder without the generator's marker
    (real data, a copy, anything else) is never deleted: ``FileExistsError``, with or without ``overwrite``.
    Temporary folders of killed runs are cleaned first (:func:`clean_stale_temporaries`).
    """
    preset = get_preset(preset)
    target = dataset_dir(root)
    parent = osp.dirname(target)
    clean_stale_temporaries(parent)
    if osp.lexists(target):
        if not osp.isdir(target) or osp.islink(target):
            raise FileExistsError(f'{target} exists and is not a folder the generator made (a file or a link); '
                                  'it is never deleted: move it away or choose another root')
        meta = _own_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            logger.info('synthetic set already complete in %s (preset %s, seed %d)', target, preset.name, seed)
            return target
        if meta is None:
            raise FileExistsError(
                f'{target} exists but holds no readable {META_NAME} marker of this generator: it was not written '
                'by it (real data, a copy, or another tool), so it is never deleted, not even with overwrite / '
                '--overwrite. Move it away or choose another root.')
        if not overwrite:
            raise FileExistsError(
                f'{target} holds a synthetic set made with preset {meta.get("preset", {}).get("name")!r}, '
                f'seed {meta.get("seed")!r}, not preset {preset.name!r}, seed {seed}; pass overwrite=True '
                '(--overwrite) to replace it')

    start = time.time()
    if workers is None:
        workers = _default_workers(_estimated_images(preset))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be a positive integer, got {workers!r}')
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.reid.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}')
    marker = {'format': _FORMAT_TAG, 'pid': os.getpid(), 'host': socket.gethostname(), 'workers': []}
    pool = None
    try:
        os.makedirs(tmp)
        atomic_write_json(osp.join(tmp, TMP_MARKER_NAME), marker)
        if workers > 1 and 'fork' in multiprocessing.get_all_start_methods():
            # Forked before the plan exists, so that the workers do not each inherit a copy of it.
            pool = multiprocessing.get_context('fork').Pool(workers, initializer=_worker_init,
                                                             initargs=(os.getpid(),))
            marker['workers'] = sorted(p.pid for p in multiprocessing.active_children())
            atomic_write_json(osp.join(tmp, TMP_MARKER_NAME), marker)
        plan = plan_dataset(preset, seed)
        stats = plan_statistics(plan)
        n_images = sum(s['images'] for s in stats.values())
        logger.info('synthetic: preset %s, seed %d: %d images in %d actions, %d worker(s); planned in %.2f s',
                    preset.name, seed, n_images, sum(s['actions'] for s in stats.values()),
                    workers if pool is not None else 1, time.time() - start)
        for name in SPLITS:   # every split folder exists even when a custom preset makes it small
            os.makedirs(osp.join(tmp, name), exist_ok=True)
        _render_all(plan, tmp, pool)
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        _fault_point('labels')
        _write_labels(plan, tmp)
        atomic_write_json(osp.join(tmp, IDENTITIES_NAME), plan.identities())
        atomic_write_json(osp.join(tmp, META_NAME), _meta(plan, stats), indent=1)
        os.remove(osp.join(tmp, TMP_MARKER_NAME))    # the completion marker proves it ours from here on
        _fault_point('move')
        _move_into_place(tmp, target, preset, seed, overwrite)
    except BaseException as err:
        with _uninterruptible(f'removing the unfinished {tmp}'):
            if isinstance(err, KeyboardInterrupt):
                logger.warning('synthetic: interrupted; stopping the workers and removing %s', tmp)
            _fault_point('cleanup')
            if pool is not None:
                pool.terminate()
                pool.join()
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(f'{tmp}.old', ignore_errors=True)
        raise
    logger.info('synthetic: wrote %d images to %s in %.1f s', n_images, target, time.time() - start)
    return target


def _move_into_place(tmp: str, target: str, preset: Preset, seed: int, overwrite: bool) -> None:
    old = None
    if osp.lexists(target):
        meta = _own_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            # another process finished the same set first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if meta is None or not overwrite:
            raise FileExistsError(f'{target} appeared during generation and is not a set this generator may '
                                  'replace; it is left as it is')
        old = f'{tmp}.old'
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if old is not None and not osp.lexists(target):
            os.rename(old, target)      # put the previous set back
            old = None
        meta = _own_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
