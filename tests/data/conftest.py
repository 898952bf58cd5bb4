"""Helpers for the data tests: small hand-built SoccerNet-v3 trees (independent of the synthetic generator)."""
import os
import os.path as osp
import shutil

import pytest
from PIL import Image

from torchreid.soccernet_format import (CLASSES, GROUND_TRUTH_NAMES, SoccerNetSample, format_filename,
                                        write_ground_truth)

_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def _write_png(path, colour, size=(16, 8)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.new('RGB', (size[1], size[0]), colour).save(path)


def _action_dir(action_idx):
    # <championship>/<season>/<game>/<action>
    game = action_idx // 2
    return f'england_epl/2015-2016/2015-08-{game + 10:02d} - 17-00 Team{game} 1 - 0 Other/{action_idx}'


def build_labelled_subset(subset_dir, n_actions, ids_per_action, imgs_per_id, uid_start=0, size=(16, 8),
                          first_action=0):
    """Write a labelled subset (train or query/gallery) and return its samples in bbox_idx order."""
    samples, bbox, uid = [], 0, uid_start
    for a in range(first_action, first_action + n_actions):
        rel = _action_dir(a)
        for i in range(ids_per_action):
            for k in range(imgs_per_id):
                s = SoccerNetSample(bbox_idx=bbox, action_idx=a, height=size[0], width=size[1], person_uid=uid,
                                    frame_idx=a * 10 + k, clazz=CLASSES[i % len(CLASSES)], id=str(i + 1),
                                    UAI=f'uai_{a}_{k}', relative_path=rel)
                path = osp.join(subset_dir, rel, format_filename(s))
                _write_png(path, _COLOURS[(uid + k) % len(_COLOURS)], size)
                samples.append(s)
                bbox += 1
            uid += 1
    return samples


def build_tree(root, splits=('train', 'valid', 'test', 'challenge'), n_actions=4, ids_per_action=4,
               imgs_per_id=3):
    """A complete small tree under ``<root>/soccernetv3/reid``; returns {split: {subset: samples}}."""
    reid = osp.join(root, 'soccernetv3', 'reid')
    out = {}
    uid = 0
    if 'train' in splits:
        out['train'] = build_labelled_subset(osp.join(reid, 'train'), n_actions, ids_per_action, imgs_per_id)
        uid = 10_000
    for split in ('valid', 'test'):
        if split not in splits:
            continue
        query = build_labelled_subset(osp.join(reid, split, 'query'), n_actions, ids_per_action, 1, uid_start=uid)
        gallery = build_labelled_subset(osp.join(reid, split, 'gallery'), n_actions, ids_per_action, 2,
                                        uid_start=uid)
        write_ground_truth(osp.join(reid, GROUND_TRUTH_NAMES[split][0][0]), query, gallery)  # the release's name
        out[split] = {'query': query, 'gallery': gallery}
        uid += 10_000
    if 'challenge' in splits:
        query = build_labelled_subset(osp.join(reid, 'challenge_tmp', 'query'), n_actions, 2, 1, uid_start=uid)
        gallery = build_labelled_subset(osp.join(reid, 'challenge_tmp', 'gallery'), n_actions, 2, 2, uid_start=uid)
        # Challenge thumbnails: flat folders, anonymised names.
        for subset, samples in (('query', query), ('gallery', gallery)):
            for s in samples:
                src = osp.join(reid, 'challenge_tmp', subset, s.relative_path, format_filename(s))
                dst = osp.join(reid, 'challenge', subset, format_filename(s, hide_labels=True))
                os.makedirs(osp.dirname(dst), exist_ok=True)
                os.replace(src, dst)
        shutil.rmtree(osp.join(reid, 'challenge_tmp'))
        write_ground_truth(osp.join(reid, 'challenge_labels', 'bbox_info.json'), query, gallery)
        out['challenge'] = {'query': query, 'gallery': gallery}
    return out


@pytest.fixture
def small_tree(tmp_path):
    """(root, samples) of a fresh small tree with every split."""
    samples = build_tree(str(tmp_path))
    return str(tmp_path), samples


@pytest.fixture(scope='module')
def shared_tree(tmp_path_factory):
    """A read-only small tree shared by a module's tests."""
    root = tmp_path_factory.mktemp('sn_tree')
    samples = build_tree(str(root))
    return str(root), samples
