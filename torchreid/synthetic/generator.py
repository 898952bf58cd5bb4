"""Write a synthetic SoccerNet-v3 ReID set to disk in the real release's layout and naming.

``generate_dataset(root, preset, seed)`` plans the set (:mod:`.plan`), draws every box (:mod:`.render`)
into a temporary folder beside the target, writes the ground truth, the identity map and last the
completion marker ``synthetic_meta.json``, then renames the folder into place. An interrupted run never
leaves a folder that looks complete.
"""
import dataclasses
import json
import logging
import multiprocessing
import os
import os.path as osp
import shutil
import time
import uuid
from typing import Optional, Union

from torchreid.soccernet_format import SoccerNetSample, format_filename, samples_to_gt_split, write_ground_truth
from torchreid.utils.io import atomic_write_json

from .plan import DatasetPlan, plan_dataset, plan_statistics
from .presets import SPLITS, Preset, get_preset
from .render import render_action

logger = logging.getLogger(__name__)

__all__ = ['generate_dataset', 'dataset_dir', 'read_meta', 'META_NAME', 'IDENTITIES_NAME', 'FORMAT_VERSION']

META_NAME = 'synthetic_meta.json'
IDENTITIES_NAME = 'synthetic_identities.json'
FORMAT_VERSION = 1
_FORMAT_TAG = 'torchreid-synthetic-soccernetv3-reid'


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
    for n in results:
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
        gt_dir = 'challenge_labels' if name == 'challenge' else name
        write_ground_truth(osp.join(out_dir, gt_dir, 'bbox_info.json'), query, gallery)
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


def generate_dataset(root: str, preset: Union[str, Preset] = 'tiny', seed: int = 0, overwrite: bool = False,
                     workers: Optional[int] = None) -> str:
    """Generate a synthetic SoccerNet-v3 ReID set under ``<root>/soccernetv3/reid`` and return that path.

    Args:
        root: data root (the same ``root`` the dataset classes take).
        preset: a name in :data:`PRESETS` ('tiny', 'demo', 'full') or a :class:`Preset`.
        seed: the same seed gives byte-identical images and labels.
        overwrite: replace an existing folder that is incomplete or was made with another preset/seed.
        workers: processes drawing images (default: 1 for small sets, else the CPU count).

    A complete set for the same preset and seed is returned at once. An existing folder that is
    incomplete (no marker: interrupted, or real data) or made differently raises ``FileExistsError``
    unless ``overwrite`` is set.
    """
    preset = get_preset(preset)
    target = dataset_dir(root)
    if osp.exists(target):
        if not osp.isdir(target):
            raise FileExistsError(f'{target} exists and is not a folder')
        meta = read_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            logger.info('synthetic set already complete in %s (preset %s, seed %d)', target, preset.name, seed)
            return target
        if not overwrite:
            if meta is None:
                raise FileExistsError(
                    f'{target} exists but has no {META_NAME} marker (an interrupted generation, or real data); '
                    'remove it or pass overwrite=True')
            raise FileExistsError(
                f'{target} holds a synthetic set made with preset {meta.get("preset", {}).get("name")!r}, '
                f'seed {meta.get("seed")!r}, not preset {preset.name!r}, seed {seed}; pass overwrite=True to replace it')

    start = time.time()
    if workers is None:
        workers = _default_workers(_estimated_images(preset))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be a positive integer, got {workers!r}')
    parent = osp.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.reid.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}')
    os.makedirs(tmp)
    # Workers are forked before the plan exists, so they do not each inherit a copy of it.
    pool = None
    if workers > 1 and 'fork' in multiprocessing.get_all_start_methods():
        pool = multiprocessing.get_context('fork').Pool(workers)
    try:
        plan = plan_dataset(preset, seed)
        stats = plan_statistics(plan)
        n_images = sum(s['images'] for s in stats.values())
        logger.info('synthetic: preset %s, seed %d: %d images in %d actions, %d worker(s); planned in %.2f s',
                    preset.name, seed, n_images, sum(s['actions'] for s in stats.values()),
                    workers if pool is not None else 1, time.time() - start)
        for name in SPLITS:   # every split folder exists even when a custom preset makes it small
            os.makedirs(osp.join(tmp, name), exist_ok=True)
        _render_all(plan, tmp, pool)
        _write_labels(plan, tmp)
        atomic_write_json(osp.join(tmp, IDENTITIES_NAME), plan.identities())
        atomic_write_json(osp.join(tmp, META_NAME), _meta(plan, stats), indent=1)
        _move_into_place(tmp, target, preset, seed, overwrite)
    except BaseException:
        if pool is not None:
            pool.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    logger.info('synthetic: wrote %d images to %s in %.1f s', n_images, target, time.time() - start)
    return target


def _move_into_place(tmp: str, target: str, preset: Preset, seed: int, overwrite: bool) -> None:
    old = None
    if osp.exists(target):
        meta = read_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            # another process finished the same set first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if not overwrite:
            raise FileExistsError(f'{target} appeared during generation; pass overwrite=True to replace it')
        old = f'{tmp}.old'
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        meta = read_meta(target)
        if meta is not None and _matches(meta, preset, seed):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
