"""Faults in SoccerNet-v3 data on disk are refused when the dataset is built, naming the file, folder or action
at fault (never found hours later at the final test, or never). Each test records (fault, outcome, lost files)
with ``record_property``: ``pytest --junitxml=faults.xml tests/reliability`` keeps them for a table."""
import faulthandler
import os
import os.path as osp
import shutil
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from torchreid.data.datasets import (GroundTruthMismatchError, SoccerNetDataError, UnreadableImageError,
                                     init_image_dataset, read_image)
from torchreid.data.datasets.image.soccernetv3 import scan_subset
from torchreid.soccernet_format import (CLASSES, GroundTruthError, SoccerNetSample, format_filename,
                                        samples_to_gt_split, write_ground_truth)
from torchreid.utils.io import atomic_write_json

SIZE = (16, 8)   # thumbnail (H, W)


def _record(record_property, fault, outcome, lost_files=0):
    record_property('fault', fault)
    record_property('outcome', outcome)
    record_property('lost_files', lost_files)


def _png(path, value=120, size=SIZE):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.new('RGB', (size[1], size[0]), (value, 255 - value, 60)).save(path)


def _subset(folder, n_actions, per_action, flat=False, uid0=0):
    """Labelled samples written under ``folder`` (flat challenge names when ``flat``), bbox_idx 0..N-1."""
    samples, bbox = [], 0
    for a in range(n_actions):
        rel = f'league/2015-2016/game{a // 2}/{a}'
        for k in range(per_action):
            s = SoccerNetSample(bbox_idx=bbox, action_idx=a, height=SIZE[0], width=SIZE[1],
                                person_uid=uid0 + 10 * a + k % 2, frame_idx=k, clazz=CLASSES[k % len(CLASSES)], id=str(k), UAI=f'u{a}_{k}',
                                relative_path=rel)
            path = (osp.join(folder, format_filename(s, hide_labels=True)) if flat else
                    osp.join(folder, rel, format_filename(s)))
            _png(path, value=(bbox * 37) % 256)
            samples.append(s)
            bbox += 1
    return samples


@pytest.fixture
def tree(tmp_path):
    """``(root, reid dir, samples)``: train (+ train_bbox_info.json), valid, test and a labelled challenge."""
    reid = tmp_path / 'soccernetv3' / 'reid'
    samples = {'train': _subset(str(reid / 'train'), 3, 4)}
    atomic_write_json(str(reid / 'train' / 'train_bbox_info.json'), samples_to_gt_split(samples['train']))
    for split, gt_name in (('valid', 'valid/bbox_info.json'), ('test', 'test/test_bbox_info.json')):
        q = _subset(str(reid / split / 'query'), 3, 2, uid0=1000)
        g = _subset(str(reid / split / 'gallery'), 3, 4, uid0=1000)
        write_ground_truth(str(reid / gt_name), q, g)
        samples[split] = {'query': q, 'gallery': g}
    q = _subset(str(reid / 'challenge' / 'query'), 3, 2, flat=True, uid0=2000)
    g = _subset(str(reid / 'challenge' / 'gallery'), 3, 4, flat=True, uid0=2000)
    write_ground_truth(str(reid / 'challenge_labels' / 'bbox_info.json'), q, g)
    samples['challenge'] = {'query': q, 'gallery': g}
    return str(tmp_path), str(reid), samples


def _load(name, root, **kw):
    return init_image_dataset(name, root=root, download=False, verbose=False, **kw)


def _path(reid, split, subset, sample):
    if split == 'challenge':
        return osp.join(reid, split, subset, format_filename(sample, hide_labels=True))
    return osp.join(reid, split, *([subset] if subset else []), sample.relative_path, format_filename(sample))


def test_intact_tree_loads_and_matches_its_ground_truth(tree, record_property):
    """fault: none (control) -> expected: every split loads, every ground truth checked."""
    root, reid, samples = tree
    assert len(_load('soccernetv3', root).train) == 12
    assert len(_load('soccernetv3_test', root).gallery) == 12
    assert _load('soccernetv3_challenge', root).check_ground_truth() == 18
    _record(record_property, 'none', 'loaded')


def test_deleted_last_valid_action_is_named(tree, record_property):
    """fault: the last action folder of valid/gallery deleted -> expected: refused at init naming the action."""
    root, reid, samples = tree
    last = samples['valid']['gallery'][-1]
    shutil.rmtree(osp.dirname(_path(reid, 'valid', 'gallery', last)))
    with pytest.raises(SoccerNetDataError) as err:   # its queries have no gallery left
        _load('soccernetv3', root)
    assert 'action 2' in str(err.value) and 'no gallery' in str(err.value)
    _record(record_property, 'last valid gallery action deleted', 'refused at init', lost_files=4)


def test_deleted_last_action_everywhere_found_by_the_ground_truth(tree, record_property):
    """fault: the last test action deleted from query and gallery -> expected: ground-truth mismatch naming it."""
    root, reid, samples = tree
    for subset in ('query', 'gallery'):
        shutil.rmtree(osp.dirname(_path(reid, 'test', subset, samples['test'][subset][-1])))
    with pytest.raises(GroundTruthMismatchError) as err:
        _load('soccernetv3_test', root)
    msg = str(err.value)
    assert 'action 2 (2: bbox_idx 4-5)' in msg and 'action 2 (4: bbox_idx 8-11)' in msg
    assert osp.join(reid, 'test', 'test_bbox_info.json') in msg
    _record(record_property, 'last test action deleted', 'refused at init', lost_files=6)


def test_deleted_last_train_action_found_by_train_ground_truth(tree, record_property):
    """fault: the last train action deleted -> expected: mismatch with train/train_bbox_info.json at init."""
    root, reid, samples = tree
    shutil.rmtree(osp.dirname(_path(reid, 'train', None, samples['train'][-1])))
    with pytest.raises(GroundTruthMismatchError, match=r'action 2 \(4: bbox_idx 8-11\)'):
        _load('soccernetv3', root)
    assert len(_load('soccernetv3', root, check_ground_truth=False).train) == 8   # the option turns it off
    _record(record_property, 'last train action deleted', 'refused at init', lost_files=4)


def test_missing_middle_gallery_file_names_the_gap(tree, record_property):
    """fault: one gallery thumbnail deleted -> expected: refused at scan naming the missing bbox_idx."""
    root, reid, samples = tree
    os.remove(_path(reid, 'valid', 'gallery', samples['valid']['gallery'][5]))
    with pytest.raises(SoccerNetDataError, match='missing bbox_idx: 5;'):
        _load('soccernetv3', root)
    _record(record_property, 'one gallery file deleted', 'refused at scan', lost_files=1)


def test_challenge_missing_last_gallery_file(tree, record_property):
    """fault: the last challenge gallery file deleted -> expected: refused at init (labels present), not exported."""
    root, reid, samples = tree
    os.remove(_path(reid, 'challenge', 'gallery', samples['challenge']['gallery'][-1]))
    with pytest.raises(GroundTruthMismatchError, match=r'no thumbnail on disk for 1 record\(s\): action 2'):
        _load('soccernetv3_challenge', root)
    _record(record_property, 'last challenge gallery file deleted', 'refused at init', lost_files=1)


def test_challenge_action_without_gallery_refused_without_labels(tree, record_property):
    """fault: a challenge action's whole gallery deleted, no labels -> expected: refused naming the action."""
    root, reid, samples = tree
    shutil.rmtree(osp.join(reid, 'challenge_labels'))
    for s in samples['challenge']['gallery'][-4:]:
        os.remove(_path(reid, 'challenge', 'gallery', s))
    with pytest.raises(SoccerNetDataError, match='queries but no gallery thumbnail') as err:
        _load('soccernetv3_challenge', root)
    assert 'action 2' in str(err.value)
    _record(record_property, 'challenge action gallery deleted, no labels', 'refused at scan', lost_files=4)


def test_ground_truth_disagreeing_with_files(tree, record_property):
    """fault: a ground-truth record with another person_uid -> expected: refused at init naming the file."""
    root, reid, samples = tree
    gallery = list(samples['valid']['gallery'])
    gallery[3] = SoccerNetSample(**{**gallery[3].__dict__, 'person_uid': 777})
    write_ground_truth(osp.join(reid, 'valid', 'bbox_info.json'), samples['valid']['query'], gallery)
    with pytest.raises(GroundTruthMismatchError) as err:
        _load('soccernetv3', root)
    msg = str(err.value)
    assert 'person_uid: disk 1001 vs gt 777' in msg and format_filename(samples['valid']['gallery'][3]) in msg
    _record(record_property, 'ground truth disagrees with a file', 'refused at init')


def test_ground_truth_cut_in_half(tree, record_property):
    """fault: test_bbox_info.json cut in half -> expected: GroundTruthError at init naming the file."""
    root, reid, _ = tree
    path = osp.join(reid, 'test', 'test_bbox_info.json')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(GroundTruthError, match='not valid JSON') as err:
        _load('soccernetv3_test', root)
    assert path in str(err.value)
    _record(record_property, 'ground truth cut in half', 'refused at init')


def test_unreadable_gallery_folder_is_named(tree, monkeypatch, record_property):
    """fault: a gallery folder that cannot be listed -> expected: refused naming it (never skipped)."""
    root, reid, samples = tree
    locked = osp.dirname(_path(reid, 'valid', 'gallery', samples['valid']['gallery'][0]))
    real_scandir = os.scandir

    def scandir(path='.'):   # the tests run as root, for whom chmod 000 changes nothing
        if osp.abspath(os.fspath(path)) == locked:
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    with pytest.raises(SoccerNetDataError) as err:
        _load('soccernetv3', root)
    assert f'{locked}: folder cannot be read (Permission denied)' in str(err.value)
    _record(record_property, 'gallery folder unreadable', 'refused at scan', lost_files=4)


@pytest.mark.parametrize('kind', ['empty', 'broken_link', 'folder'])
def test_unreadable_gallery_file_is_named(tree, kind, record_property):
    """fault: an empty file / dangling link / folder in place of a gallery PNG -> expected: refused naming it."""
    root, reid, samples = tree
    path = _path(reid, 'test', 'gallery', samples['test']['gallery'][7])
    os.remove(path)
    if kind == 'empty':
        open(path, 'wb').close()
    elif kind == 'broken_link':
        os.symlink(path + '.gone', path)
    reason = {'empty': 'holds 0 bytes', 'broken_link': 'broken symbolic link', 'folder': 'cannot be read'}[kind]
    if kind == 'folder':   # a folder at the action depth named like a thumbnail: its PNG is misplaced
        os.makedirs(path)
        _png(osp.join(path, 'x.png'))
        reason = 'misplaced'
    with pytest.raises(SoccerNetDataError) as err:
        _load('soccernetv3_test', root)
    assert reason in str(err.value) and path in str(err.value)
    _record(record_property, f'gallery file {kind}', 'refused at scan', lost_files=1)


def test_corrupt_image_found_by_verify_images(tree, record_property):
    """fault: a cut PNG and one of the wrong size -> expected: verify_images 'header'/'full' names them."""
    root, reid, samples = tree
    cut = _path(reid, 'valid', 'gallery', samples['valid']['gallery'][2])
    with open(cut, 'rb') as f:
        data = f.read()
    with open(cut, 'wb') as f:
        f.write(data[:-30])                     # header intact, the end of the pixels gone
    wrong = _path(reid, 'valid', 'query', samples['valid']['query'][1])
    _png(wrong, size=(20, 8))                   # its name says 16x8
    assert len(_load('soccernetv3', root).gallery) == 12       # default: names and files only
    with pytest.raises(UnreadableImageError) as err:
        _load('soccernetv3', root, verify_images='header')
    assert 'is 8x20 (WxH) but its name says 8x16' in str(err.value) and cut not in str(err.value)
    with pytest.raises(UnreadableImageError) as err:
        _load('soccernetv3', root, verify_images=True)
    assert cut in str(err.value) and wrong in str(err.value) and '2 of 30' in str(err.value)
    with pytest.raises(ValueError, match="verify_images must be one of off, header, full"):
        _load('soccernetv3', root, verify_images='fast')
    _record(record_property, 'corrupt / wrong-size PNG', 'refused at init with verify_images')


def test_huge_bbox_idx_is_linear(tree, record_property):
    """fault: one file named with bbox_idx 1e8 -> expected: gap refused in linear time and memory."""
    root, reid, samples = tree
    s = samples['valid']['query'][-1]
    os.rename(_path(reid, 'valid', 'query', s),
              _path(reid, 'valid', 'query', SoccerNetSample(**{**s.__dict__, 'bbox_idx': 10 ** 8})))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SoccerNetDataError, match='missing bbox_idx: 5-99999999'):
            scan_subset(osp.join(reid, 'valid', 'query'), flat=False, labelled=True)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2 and peak < 5 * 2 ** 20, (seconds, peak)   # range(1e8) would take GBs
    _record(record_property, 'bbox_idx 1e8', f'refused in {seconds:.3f} s, peak {peak / 2 ** 20:.2f} MiB')


def test_symlink_cycle_is_refused(tree, record_property):
    """fault: two '..'-style symlinks in a folder -> expected: refused naming the link, no endless walk."""
    root, reid, samples = tree
    game = osp.dirname(osp.dirname(_path(reid, 'train', None, samples['train'][0])))
    os.symlink('..', osp.join(game, 'up'))
    os.symlink('../..', osp.join(game, 'upup'))
    faulthandler.dump_traceback_later(30, exit=True)   # a regression would walk forever: end the run instead
    try:
        with pytest.raises(SoccerNetDataError, match='symbolic-link cycle') as err:
            _load('soccernetv3', root)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert osp.join(game, 'up') in str(err.value) and osp.join(game, 'upup') in str(err.value)
    _record(record_property, 'symlink cycle in train', 'refused at scan')


def test_linked_data_folder_still_loads(tree, tmp_path_factory, record_property):
    """fault: none: the split folder is a symlink to the data -> expected: followed and loaded."""
    root, reid, _ = tree
    elsewhere = str(tmp_path_factory.mktemp('elsewhere') / 'train')
    shutil.move(osp.join(reid, 'train'), elsewhere)
    os.symlink(elsewhere, osp.join(reid, 'train'))
    assert len(_load('soccernetv3', root).train) == 12
    _record(record_property, 'split folder is a symlink', 'loaded')


def test_action_gap_with_contiguous_bbox_idx(tree, record_property):
    """fault: train actions 0, 1, 3 (action 2 renamed away) -> expected: refused naming action 2."""
    root, reid, samples = tree
    for s in samples['train'][8:]:
        os.remove(_path(reid, 'train', None, s))
        _png(_path(reid, 'train', None, SoccerNetSample(**{**s.__dict__, 'action_idx': 3})))
    with pytest.raises(SoccerNetDataError, match=r'action_idx must run 0..A-1.*have no thumbnail at all.*: 2$'):
        _load('soccernetv3', root, check_ground_truth=False)
    _record(record_property, 'action index gap', 'refused at scan')


def test_16_bit_png_keeps_its_tones(tmp_path, record_property):
    """fault: a 16-bit grey PNG (read as pure white before) -> expected: scaled to 8 bits, tones kept."""
    grey = (np.arange(16 * 8, dtype=np.uint16).reshape(16, 8) * 500)
    path = str(tmp_path / 'grey16.png')
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith('I')
    pixels = np.asarray(read_image(path))
    assert pixels.shape == (16, 8, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[..., 0], np.rint(grey / 257.0).astype(np.uint8))
    assert (pixels[..., 0] == pixels[..., 2]).all() and pixels.min() == 0 and pixels.max() == 247
    _record(record_property, '16-bit grey PNG', 'read with its tones')
