"""SoccerNet-v3 dataset discovery, metadata, ground truth, training subset and every bad-input error."""
import dataclasses
import os
import os.path as osp
import shutil
import sys
import types
import zipfile

import pytest

from torchreid.data.datasets import (GroundTruthMismatchError, SoccerNetDataError, UnreadableImageError,
                                     init_image_dataset, list_image_datasets, register_image_dataset)
from torchreid.soccernet_format import format_filename, gt_split_to_samples, read_ground_truth, write_ground_truth
from torchreid.data.datasets.image.soccernetv3 import Soccernetv3, download_soccernetv3

from .conftest import build_labelled_subset, build_tree


def _load(name, root, **kw):
    return init_image_dataset(name, root=root, download=False, verbose=False, **kw)


# ----- discovery -----
def test_discovery_fields(shared_tree):
    root, samples = shared_tree
    ds = _load('soccernetv3', root)
    assert ds.eval_metric == 'soccernetv3' and ds.hidden_labels is False
    assert len(ds.train) == len(samples['train']) == 48
    assert len(ds.query) == 16 and len(ds.gallery) == 32
    # every record lines up with the parsed name of the file it points to
    for (path, pid, camid, dsetid), info, expected in zip(ds.train, ds.train_info, samples['train']):
        assert info.img_path == path and dsetid == 0
        assert camid == info.action_idx == expected.action_idx
        assert (info.bbox_idx, info.person_uid, info.frame_idx, info.clazz, info.id, info.UAI, info.height,
                info.width, info.relative_path) == (expected.bbox_idx, expected.person_uid, expected.frame_idx,
                                                    expected.clazz, expected.id, expected.UAI, expected.height,
                                                    expected.width, expected.relative_path)
    # train pids relabelled 0..K-1 in bbox order; query/gallery keep person_uid
    assert sorted({r[1] for r in ds.train}) == list(range(ds.num_train_pids)) and ds.num_train_pids == 16
    assert ds.num_train_cams == 4
    assert [r[1] for r in ds.query] == [s.person_uid for s in ds.query_info]
    assert all(isinstance(r[1], int) and r[1] >= 10_000 for r in ds.query + ds.gallery)
    # lists ordered by bbox_idx: position == bbox_idx
    for info_list in (ds.train_info, ds.query_info, ds.gallery_info):
        assert [s.bbox_idx for s in info_list] == list(range(len(info_list)))
    assert ds.ground_truth_path == osp.join(root, 'soccernetv3', 'reid', 'valid', 'bbox_info.json')


def test_modes_and_getitem(shared_tree):
    root, _ = shared_tree
    ds = _load('soccernetv3', root)
    item = ds[0]
    assert set(item) == {'img', 'pid', 'camid', 'impath', 'dsetid'}
    assert item['img'].size == (8, 16)  # PIL (W, H) when no transform
    q = ds.with_mode('query')
    assert q.data is ds.query and q.data_info is ds.query_info and len(q) == 16
    assert q[3]['pid'] == ds.query[3][1]
    assert ds.mode == 'train'  # views do not change the original
    with pytest.raises(ValueError, match='mode'):
        ds.set_mode('valid')


def test_test_and_challenge(shared_tree):
    root, samples = shared_tree
    test = _load('soccernetv3_test', root)
    assert test.train == [] and test.num_train_pids == 0
    assert [r[1] for r in test.gallery] == [s.person_uid for s in samples['test']['gallery']]
    assert osp.basename(test.ground_truth_path) in ('test_bbox_info.json', 'bbox_info.json')
    chal = _load('soccernetv3_challenge', root)
    assert chal.hidden_labels is True and chal.eval_metric == 'soccernetv3'
    assert all(r[1] == -1 for r in chal.query + chal.gallery)
    assert [r[2] for r in chal.gallery] == [s.action_idx for s in samples['challenge']['gallery']]
    assert all(not s.labelled and s.relative_path == '' for s in chal.query_info)
    assert chal.ground_truth_path.endswith(osp.join('challenge_labels', 'bbox_info.json'))
    assert chal.check_ground_truth() == len(chal.query) + len(chal.gallery)


def test_test_gt_names_release_first_other_name_warned(small_tree, caplog):
    root, _ = small_tree
    reid = osp.join(root, 'soccernetv3', 'reid')
    for name in ('test_bbox_info.json', 'bbox_info.json'):   # whichever name the tree was built with
        if osp.exists(osp.join(reid, 'test', name)):
            os.rename(osp.join(reid, 'test', name), osp.join(reid, 'test', 'gt.tmp'))
    os.rename(osp.join(reid, 'test', 'gt.tmp'), osp.join(reid, 'test', 'bbox_info.json'))
    # test/bbox_info.json (other tools' name): used, with a warning naming the release's name
    with caplog.at_level('WARNING', logger='torchreid.data.datasets.image.soccernetv3'):
        assert _load('soccernetv3_test', root).ground_truth_path == osp.join(reid, 'test', 'bbox_info.json')
    assert 'release names it' in caplog.text and osp.join(reid, 'test', 'test_bbox_info.json') in caplog.text
    caplog.clear()
    os.rename(osp.join(reid, 'test', 'bbox_info.json'), osp.join(reid, 'test', 'test_bbox_info.json'))
    with caplog.at_level('WARNING', logger='torchreid.data.datasets.image.soccernetv3'):
        assert _load('soccernetv3_test', root).ground_truth_path == osp.join(reid, 'test', 'test_bbox_info.json')
    assert 'release names it' not in caplog.text
    # where the SoccerNet downloader's test_labels put it: the reid folder
    os.rename(osp.join(reid, 'test', 'test_bbox_info.json'), osp.join(reid, 'test_bbox_info.json'))
    assert _load('soccernetv3_test', root).ground_truth_path == osp.join(reid, 'test_bbox_info.json')
    os.remove(osp.join(reid, 'test_bbox_info.json'))
    with caplog.at_level('WARNING', logger='torchreid.data.datasets.image.soccernetv3'):
        assert _load('soccernetv3_test', root).ground_truth_path is None
    assert 'no ground truth found' in caplog.text


# ----- ground truth -----
def test_ground_truth_round_trip(shared_tree, tmp_path):
    root, _ = shared_tree
    ds = _load('soccernetv3', root)
    assert ds.check_ground_truth() == 48
    out = str(tmp_path / 'gt.json')
    write_ground_truth(out, ds.query_info, ds.gallery_info)
    gt = read_ground_truth(out)
    assert gt == read_ground_truth(ds.ground_truth_path)
    back = gt_split_to_samples(gt['gallery'], root=osp.join(ds.reid_dir, 'valid', 'gallery'))
    assert back == list(ds.gallery_info)
    assert [(s.img_path, s.person_uid, s.action_idx) for s in back] == [tuple(r[:3]) for r in ds.gallery]


def test_ground_truth_mismatch_names_files(small_tree):
    root, samples = small_tree
    reid = osp.join(root, 'soccernetv3', 'reid')
    query = list(samples['valid']['query'])
    query[2] = dataclasses.replace(query[2], person_uid=999_999)
    write_ground_truth(osp.join(reid, 'valid', 'bbox_info.json'), query[:-1], samples['valid']['gallery'])
    with pytest.raises(GroundTruthMismatchError) as err:
        _load('soccernetv3', root, check_ground_truth=True)
    msg = str(err.value)
    assert '2 disagreement' in msg and 'person_uid' in msg and '999999' in msg
    assert format_filename(samples['valid']['query'][2]) in msg
    assert format_filename(samples['valid']['query'][-1]) in msg and 'not in the ground truth' in msg


# ----- training subset -----
@pytest.mark.parametrize('fraction, n_actions', [(1.0, 4), (0.5, 2), (0.3, 1), (0.01, 1)])
def test_training_subset_whole_actions(shared_tree, fraction, n_actions):
    root, samples = shared_tree
    ds = _load('soccernetv3', root, soccernetv3_training_subset=fraction)
    actions = sorted({s.action_idx for s in ds.train_info})
    assert actions == list(range(n_actions))
    # whole actions: every file of a kept action is kept
    assert len(ds.train) == sum(1 for s in samples['train'] if s.action_idx in actions)
    assert sorted({r[1] for r in ds.train}) == list(range(ds.num_train_pids))
    assert len(ds.query) == 16  # the subset touches train only


def test_training_subset_by_action_not_file_order(tmp_path):
    # action indices in the reverse order of bbox_idx: the subset still takes the lowest action_idx
    reid = tmp_path / 'soccernetv3' / 'reid'
    build_tree(str(tmp_path), splits=('valid',))
    base = build_labelled_subset(str(reid / 'tmp'), 4, 2, 2)
    for s in base:
        new = dataclasses.replace(s, action_idx=3 - s.action_idx, relative_path=f'c/s/g/a{3 - s.action_idx}')
        dst = reid / 'train' / new.relative_path / format_filename(new)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(osp.join(reid, 'tmp', s.relative_path, format_filename(s)), dst)
    ds = _load('soccernetv3', str(tmp_path), training_subset=0.5)
    assert {s.action_idx for s in ds.train_info} == {0, 1}
    assert sorted(s.bbox_idx for s in ds.train_info) == list(range(8, 16))


@pytest.mark.parametrize('bad', [0.0, -0.1, 1.5])
def test_training_subset_validated(shared_tree, bad):
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        _load('soccernetv3', shared_tree[0], training_subset=bad)


def test_training_subset_alias_conflict(shared_tree):
    with pytest.raises(ValueError, match='disagree'):
        _load('soccernetv3', shared_tree[0], training_subset=0.5, soccernetv3_training_subset=0.25)


# ----- keyword options -----
def test_misspelt_option_is_a_type_error_with_a_suggestion(tiny_root):
    with pytest.raises(TypeError) as err:
        init_image_dataset('soccernetv3', root=tiny_root, trainig_subset=0.1, download=False, verbose=False)
    message = str(err.value)
    assert message.startswith('Soccernetv3:')
    assert "'trainig_subset'" in message and "did you mean 'training_subset'" in message
    assert 'Accepted:' in message and 'soccernetv3_training_subset' in message and 'verify_images' in message


def test_misspelt_option_fails_before_any_folder_is_read(tmp_path):
    # The root does not exist: the typo, not the missing folder, is reported.
    with pytest.raises(TypeError, match="Soccernetv3Challenge: unknown keyword argument.*'chek_ground_truth'"):
        init_image_dataset('soccernetv3_challenge', root=str(tmp_path / 'nowhere'), chek_ground_truth=True)


def test_shared_options_are_accepted_and_ignored(tiny_root):
    from torchreid.data.datasets.dataset import SHARED_DATASET_OPTIONS

    plain = _load('soccernetv3', tiny_root)
    shared = dict(split_id=3, cuhk03_labeled=True, cuhk03_classic_split=True, market1501_500k=True,
                  soccernetv3_training_subset=1.0)
    # download / the two checks change what is read, not the records: tested on their own
    assert set(shared) | {'download', 'check_ground_truth', 'verify_images'} == set(SHARED_DATASET_OPTIONS)
    for name in ('soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'):
        ds = _load(name, tiny_root, **shared)
        assert len(ds.query) > 0
    assert _load('soccernetv3', tiny_root, **shared).train == plain.train


def test_custom_subclass_without_own_check_is_still_strict():
    from torchreid.data.datasets import ImageDataset

    class Custom(ImageDataset):  # Torchreid-style: builds lists, passes **kwargs up
        def __init__(self, root='', **kwargs):
            super().__init__([('a.jpg', 0, 0)], [('b.jpg', 0, 1)], [('c.jpg', 0, 2)], **kwargs)

    Custom(root='.', verbose=False, split_id=0, download=False)  # shared options ignored
    with pytest.raises(TypeError, match=r"Custom: unknown keyword argument\(s\) 'verbos' .*did you mean 'verbose'"):
        Custom(root='.', verbos=False)
    assert 'train' not in Custom.accepted_options()  # the subclass passes the lists itself
    assert {'train', 'query', 'gallery'} <= set(ImageDataset.accepted_options())


# ----- registry -----
def test_registry_lists_known_names():
    names = list_image_datasets()
    assert {'soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge', 'market1501'} <= set(names)
    with pytest.raises(ValueError) as err:
        init_image_dataset('soccernet_v9', root='.')
    assert 'soccernet_v9' in str(err.value) and all(n in str(err.value) for n in names)


def test_register_custom_dataset(shared_tree):
    class Mine(Soccernetv3):
        pass

    register_image_dataset('mine_sn', Mine)
    register_image_dataset('mine_sn', Mine)  # idempotent
    assert 'mine_sn' in list_image_datasets()
    assert isinstance(_load('mine_sn', shared_tree[0]), Mine)
    with pytest.raises(ValueError, match='already registered'):
        register_image_dataset('mine_sn', Soccernetv3)


# ----- bad input -----
def test_bad_name_lists_all_offenders(small_tree):
    root, samples = small_tree
    action = osp.join(root, 'soccernetv3', 'reid', 'train', samples['train'][0].relative_path)
    for name in ('oops.png', '12-0-3-Player_team_left-1-x-16x8.png', '0-0-0-0-Bad_class-1-u-16x8.png',
                 'notes.txt'):
        open(osp.join(action, name), 'wb').close()
    with pytest.raises(SoccerNetDataError) as err:
        _load('soccernetv3', root)
    msg = str(err.value)
    assert msg.startswith('4 file(s)') and 'naming rule' in msg
    for name in ('oops.png', '12-0-3-Player_team_left-1-x-16x8.png', 'Bad_class', 'notes.txt'):
        assert name in msg


def test_unlabelled_name_in_labelled_split(small_tree):
    root, samples = small_tree
    first = samples['valid']['gallery'][0]
    gallery = osp.join(root, 'soccernetv3', 'reid', 'valid', 'gallery', first.relative_path)
    os.rename(osp.join(gallery, format_filename(first)), osp.join(gallery, format_filename(first, hide_labels=True)))
    with pytest.raises(SoccerNetDataError, match='labelled split needs the 8-field name') as err:
        _load('soccernetv3', root)
    assert format_filename(first, hide_labels=True) in str(err.value)


def test_misplaced_thumbnail(small_tree):
    root, samples = small_tree
    s = samples['train'][0]
    src = osp.join(root, 'soccernetv3', 'reid', 'train', s.relative_path, format_filename(s))
    dst = osp.join(root, 'soccernetv3', 'reid', 'train', format_filename(s))
    os.rename(src, dst)
    with pytest.raises(SoccerNetDataError, match='misplaced') as err:
        _load('soccernetv3', root)
    assert dst in str(err.value)


@pytest.mark.parametrize('split, subset', [('train', None), ('valid', 'query'), ('valid', 'gallery')])
def test_bbox_gap(small_tree, split, subset):
    root, samples = small_tree
    listed = samples[split] if subset is None else samples[split][subset]
    victim = listed[5]
    base = osp.join(root, 'soccernetv3', 'reid', split, *( [subset] if subset else []))
    os.remove(osp.join(base, victim.relative_path, format_filename(victim)))
    with pytest.raises(SoccerNetDataError) as err:
        _load('soccernetv3', root)
    msg = str(err.value)
    assert 'without gaps' in msg and 'missing bbox_idx: 5' in msg and base in msg
    assert format_filename(listed[6]) in msg  # the first file after the gap


def test_duplicate_bbox_idx(small_tree):
    root, samples = small_tree
    s = samples['valid']['query'][0]
    dup = dataclasses.replace(s, frame_idx=s.frame_idx + 1000)
    folder = osp.join(root, 'soccernetv3', 'reid', 'valid', 'query', s.relative_path)
    shutil.copyfile(osp.join(folder, format_filename(s)), osp.join(folder, format_filename(dup)))
    with pytest.raises(SoccerNetDataError, match='unique') as err:
        _load('soccernetv3', root)
    assert format_filename(dup) in str(err.value) and format_filename(s) in str(err.value)


@pytest.mark.parametrize('missing', ['train', 'valid/query', 'valid/gallery'])
def test_missing_split_folder(tmp_path, missing):
    build_tree(str(tmp_path), splits=('train', 'valid'))
    import shutil
    path = osp.join(str(tmp_path), 'soccernetv3', 'reid', missing)
    shutil.rmtree(path)
    with pytest.raises(FileNotFoundError) as err:
        _load('soccernetv3', str(tmp_path))
    msg = str(err.value)
    assert path in msg and 'missing' in msg and 'downloadDataTask' in msg


def test_empty_split_folder(tmp_path):
    build_tree(str(tmp_path), splits=('test',))
    import shutil
    path = osp.join(str(tmp_path), 'soccernetv3', 'reid', 'test', 'gallery')
    shutil.rmtree(path)
    os.makedirs(osp.join(path, 'c', 's', 'g', 'a'))
    with pytest.raises(SoccerNetDataError, match='empty') as err:
        _load('soccernetv3_test', str(tmp_path))
    assert path in str(err.value)


def test_unreadable_image(small_tree):
    root, samples = small_tree
    s = samples['train'][3]
    path = osp.join(root, 'soccernetv3', 'reid', 'train', s.relative_path, format_filename(s))
    with open(path, 'wb') as f:
        f.write(b'not a png at all')
    ds = _load('soccernetv3', root)  # init opens no image
    with pytest.raises(UnreadableImageError) as err:
        ds[3]
    assert path in str(err.value)
    s2 = samples['valid']['gallery'][7]
    path2 = osp.join(root, 'soccernetv3', 'reid', 'valid', 'gallery', s2.relative_path, format_filename(s2))
    with open(path2, 'r+b') as f:  # truncated pixel data
        f.truncate(40)
    with pytest.raises(UnreadableImageError) as err:
        ds.verify_images()
    msg = str(err.value)
    assert '2 of 96 image(s)' in msg and path in msg and path2 in msg
    with pytest.raises(UnreadableImageError):
        _load('soccernetv3', root, verify_images=True)


# ----- download -----
def _fake_soccernet(monkeypatch, behaviour):
    calls = []

    class Downloader:
        def __init__(self, LocalDirectory):
            self.local = LocalDirectory

        def downloadDataTask(self, task, split):
            calls.append((self.local, task, list(split)))
            behaviour(self.local, task, split)

    package = types.ModuleType('SoccerNet')
    module = types.ModuleType('SoccerNet.Downloader')
    module.SoccerNetDownloader = Downloader
    package.Downloader = module
    monkeypatch.setitem(sys.modules, 'SoccerNet', package)
    monkeypatch.setitem(sys.modules, 'SoccerNet.Downloader', module)
    return calls


def test_download_offline_error(tmp_path, monkeypatch):
    def offline(local, task, split):
        raise ConnectionError('network unreachable')

    calls = _fake_soccernet(monkeypatch, offline)
    with pytest.raises(FileNotFoundError) as err:
        init_image_dataset('soccernetv3_test', root=str(tmp_path), verbose=False)
    msg = str(err.value)
    reid = osp.join(str(tmp_path), 'soccernetv3', 'reid')
    assert 'network unreachable' in msg and reid in msg and "downloadDataTask(task='reid'" in msg
    assert calls == [(osp.join(str(tmp_path), 'soccernetv3'), 'reid', ['test'])]


def test_download_only_missing_splits_and_unzip(tmp_path, monkeypatch):
    source = tmp_path / 'src'
    built = build_tree(str(source), splits=('train', 'valid'))

    def fetch(local, task, split):
        (name,) = split
        zip_path = osp.join(local, 'reid', f'{name}.zip')
        os.makedirs(osp.dirname(zip_path), exist_ok=True)
        src_root = osp.join(str(source), 'soccernetv3', 'reid')
        with zipfile.ZipFile(zip_path, 'w') as archive:
            for dirpath, _, files in os.walk(osp.join(src_root, name)):
                for f in files:
                    full = osp.join(dirpath, f)
                    archive.write(full, osp.relpath(full, src_root))

    calls = _fake_soccernet(monkeypatch, fetch)
    root = tmp_path / 'data'
    # train is already there: only valid is fetched
    import shutil
    shutil.copytree(source / 'soccernetv3' / 'reid' / 'train', root / 'soccernetv3' / 'reid' / 'train')
    ds = init_image_dataset('soccernetv3', root=str(root), verbose=False)
    assert [c[2] for c in calls] == [['valid']]
    assert len(ds.query) == len(built['valid']['query'])
    assert not (root / 'soccernetv3' / 'reid' / 'valid.zip').exists()
    assert download_soccernetv3(str(root / 'soccernetv3'), ['train', 'valid']) == []


def test_download_unknown_split(tmp_path):
    with pytest.raises(ValueError, match='unknown SoccerNet-v3 ReID split'):
        download_soccernetv3(str(tmp_path), ['training'])


# ----- the generator's tiny set -----
def test_tiny_set_discovery(request):
    from torchreid.data import synthetic
    if not hasattr(synthetic, 'generate_dataset'):
        pytest.skip('synthetic generator not available yet')
    root = request.getfixturevalue('tiny_root')
    ds = _load('soccernetv3', root, check_ground_truth=True)
    assert ds.train and ds.query and ds.gallery
    assert sorted({r[1] for r in ds.train}) == list(range(ds.num_train_pids))
    # same-action identities: every query pid has a match in the gallery of its own action
    gallery_pairs = {(r[1], r[2]) for r in ds.gallery}
    assert all((r[1], r[2]) in gallery_pairs for r in ds.query)
    test = _load('soccernetv3_test', root, check_ground_truth=True)
    chal = _load('soccernetv3_challenge', root)
    assert all(r[1] == -1 for r in chal.query)
    if chal.ground_truth_path is not None:
        chal.check_ground_truth()
    assert test.query and chal.gallery


def test_combineall_keeps_actions_apart(shared_tree):
    root, _ = shared_tree
    ds = _load('soccernetv3', root, combineall=True)
    assert len(ds.train) == 48 + 16 + 32 and len(ds.train_info) == len(ds.train)
    assert ds.num_train_pids == 16 + 16 and sorted({r[1] for r in ds.train}) == list(range(32))
    # valid actions 0..3 become 4..7: a valid identity never shares an "action" with a train one
    assert {r[2] for r in ds.train[48:]} == {4, 5, 6, 7} and ds.num_train_cams == 8
    with pytest.raises(ValueError, match='hides them'):
        _load('soccernetv3_challenge', root, combineall=True)
