"""Torchreid's image datasets on small generated copies of their real layouts: the counts worked out by hand.

Every fixture writes a handful of tiny images with the dataset's real folder and file names (and its .mat /
list files); the expected numbers follow the dataset's split rules, computed here by hand.
"""
import io
import json
import os
import os.path as osp
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from torchreid.data import ImageDataManager
from torchreid.data.datasets import (DatasetLayoutError, SplitFileError, init_image_dataset, list_image_datasets,
                                     register_image_dataset)

_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP'}
_BYTES = {}


def write_image(path, colour=(90, 30, 30)):
    """A tiny 16x8 picture in the format the extension names."""
    ext = osp.splitext(path)[1].lower()
    key = (ext, colour)
    if key not in _BYTES:
        buf = io.BytesIO()
        Image.new('RGB', (8, 16), colour).save(buf, format=_FORMATS[ext])
        _BYTES[key] = buf.getvalue()
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(_BYTES[key])


def load(name, root, **kwargs):
    return init_image_dataset(name, root=str(root), verbose=False, **kwargs)


def counts(ds):
    """(train ids, train images, train cams, query images, gallery images)."""
    return (ds.num_train_pids, len(ds.train), ds.num_train_cams, len(ds.query), len(ds.gallery))


# ---------------------------------------------------------------- registry
def test_registry_has_torchreids_names():
    torchreid_names = {'market1501', 'cuhk03', 'dukemtmcreid', 'msmt17', 'viper', 'grid', 'cuhk01', 'ilids',
                       'sensereid', 'prid', 'cuhk02', 'university1652', 'cuhksysu'}
    assert torchreid_names | {'soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'} == set(list_image_datasets())
    with pytest.raises(ValueError, match="'mars' is a video dataset"):
        init_image_dataset('mars', root='x')
    with pytest.raises(ValueError, match='already registered'):
        register_image_dataset('viper', object)


@pytest.mark.parametrize('name', ['viper', 'cuhk03', 'msmt17', 'university1652', 'cuhksysu'])
def test_unknown_keyword_is_a_type_error_before_reading(tmp_path, name):
    # Nothing exists under tmp_path: the keyword check must come first.
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) 'split_idx'.*did you mean 'split_id'"):
        load(name, tmp_path, split_idx=1)


# ---------------------------------------------------------------- Market-style
def test_dukemtmcreid(tmp_path):
    base = tmp_path / 'dukemtmc-reid' / 'DukeMTMC-reID'
    for folder, names in {'bounding_box_train': ['0005_c1_f0000001.jpg', '0005_c2_f0000002.jpg',
                                                 '0009_c3_f0000003.jpg'],
                          'query': ['0007_c1_f0000004.jpg'],
                          'bounding_box_test': ['0007_c2_f0000005.jpg', '0011_c8_f0000006.jpg']}.items():
        for n in names:
            write_image(str(base / folder / n))
    ds = load('dukemtmcreid', tmp_path, download=False)
    assert counts(ds) == (2, 3, 3, 1, 2)
    assert [r[1:3] for r in ds.train] == [(0, 0), (0, 1), (1, 2)]
    assert [r[1:3] for r in ds.gallery] == [(7, 1), (11, 7)]
    write_image(str(base / 'query' / '0007_c9_f0000007.jpg'))
    with pytest.raises(DatasetLayoutError, match='0007_c9_f0000007.jpg'):
        load('dukemtmcreid', tmp_path, download=False)


def test_msmt17_lists_and_val(tmp_path):
    main = tmp_path / 'msmt17' / 'MSMT17_V1'
    lists = {'train': [('0000/0000_000_01_0303morning_0015_0.jpg', 0), ('0000/0000_001_02_0303morning_0016_0.jpg', 0),
                       ('0001/0001_000_15_0303noon_0020_1.jpg', 1)],
             'val': [('0001/0001_001_03_0303noon_0021_0.jpg', 1)],
             'query': [('0100/0100_000_04_0303afternoon_0100_0.jpg', 100)],
             'gallery': [('0100/0100_001_05_0303afternoon_0101_0.jpg', 100),
                         ('0101/0101_000_04_0303afternoon_0102_0.jpg', 101)]}
    for name, items in lists.items():
        folder = 'train' if name in ('train', 'val') else 'test'
        for rel, _ in items:
            write_image(str(main / folder / rel))
        (main / f'list_{name}.txt').write_text(''.join(f'{rel} {pid}\n' for rel, pid in items))
    ds = load('msmt17', tmp_path)
    assert counts(ds) == (2, 3, 3, 1, 2)
    assert [r[2] for r in ds.train] == [0, 1, 14]  # cameras 01, 02, 15 stored 0-based
    assert ds.gallery[1][1:3] == (101, 3)
    both = load('msmt17', tmp_path, combineall=True)
    # val joins train (4 images, still 2 ids); then query/gallery ids 100, 101 join as new classes
    assert both.num_train_pids == 4 and len(both.train) == 4 + 1 + 2
    (main / 'list_query.txt').write_text('0100/0100_000_04_x.jpg\n')
    with pytest.raises(DatasetLayoutError, match='list_query.txt'):
        load('msmt17', tmp_path)


# ---------------------------------------------------------------- CUHK03
def _write_cuhk03(base):
    """cuhk-03.mat (v7.3 layout: object references, MATLAB column-major) with 2 camera pairs of 3 + 2 persons,
    and the two new-protocol config files."""
    release = base / 'cuhk03_release'
    release.mkdir(parents=True)
    ref_dtype = h5py.special_dtype(ref=h5py.Reference)
    # persons per camera pair: the number of images in each of the 10 cells (0 = empty cell)
    images = {'labeled': [[2, 2, 2], [1, 1]], 'detected': [[2, 2, 2], [2, 1]]}
    with h5py.File(release / 'cuhk-03.mat', 'w') as mat:
        refs = mat.create_group('#refs#')
        counter = [0]

        def store(array):
            counter[0] += 1
            return refs.create_dataset(str(counter[0]), data=array).ref

        for kind, pairs in images.items():
            pair_refs = []
            for pair in pairs:
                grid = np.empty((10, len(pair)), dtype=object)  # stored transposed: 10 x pids
                for pid, per_view in enumerate(pair):
                    for img in range(10):
                        filled = img < per_view or 5 <= img < 5 + per_view
                        # an image is stored as (3, W, H); an empty cell as MATLAB's [0 0] uint64
                        data = (np.full((3, 4, 6), 40 * pid, dtype=np.uint8) if filled
                                else np.zeros(2, dtype=np.uint64))
                        grid[img, pid] = store(data)
                pair_refs.append(store(grid.astype(ref_dtype)))
            mat.create_dataset(kind, data=np.array([pair_refs], dtype=ref_dtype))
        # two classic test sets, rows (pair, pid) 1-based, stored transposed (2 x n)
        tests = [np.array([[1, 2], [2, 1]]).T, np.array([[1, 1]]).T]
        mat.create_dataset('testsets', data=np.array([[store(t.astype(np.float64)) for t in tests]], dtype=ref_dtype))
    # new protocol: filelist rows over the labeled images; 1-based indices
    for kind in ('labeled', 'detected'):
        names = ['1_001_1_01.png', '1_001_2_06.png', '1_002_1_01.png', '1_002_2_06.png', '2_001_1_01.png',
                 '2_001_2_06.png', '1_003_1_01.png', '1_003_2_06.png']
        labels = [1, 1, 2, 2, 4, 4, 3, 3]
        filelist = np.empty((len(names), 1), dtype=object)
        for i, n in enumerate(names):
            filelist[i, 0] = n
        savemat(str(base / f'cuhk03_new_protocol_config_{kind}.mat'),
                {'filelist': filelist, 'labels': np.array(labels, dtype=np.float64).reshape(-1, 1),
                 'train_idx': np.array([[1], [2], [3], [4]]), 'query_idx': np.array([[5], [7]]),
                 'gallery_idx': np.array([[6], [8]])})


def test_cuhk03_protocols(tmp_path):
    base = tmp_path / 'cuhk03'
    _write_cuhk03(base)
    new_det = load('cuhk03', tmp_path)
    # train: images 1-4 of the filelist (pids 1, 2 -> 0, 1); query: pid 4 cam 0, pid 3 cam 0; gallery cam 1
    assert counts(new_det) == (2, 4, 2, 2, 2) and new_det.eval_metric == 'default'
    assert [r[1:3] for r in new_det.query] == [(4, 0), (3, 0)] and [r[1:3] for r in new_det.gallery] == [(4, 1), (3, 1)]
    assert new_det.query[0][0] == str(base / 'images_detected' / '2_001_1_01.png')
    assert Image.open(new_det.query[0][0]).size == (4, 6)  # stored (3, W=4, H=6): a 6-high, 4-wide image

    classic_lab = load('cuhk03', tmp_path, cuhk03_labeled=True, cuhk03_classic_split=True)
    # labeled images per person: pair 1: 4, 4, 4; pair 2: 2, 2. Test set 0 = {(1, 2), (2, 1)}
    assert classic_lab.eval_metric == 'cuhk03'
    assert counts(classic_lab) == (3, 4 + 4 + 2, 2, 4 + 2, 4 + 2)
    assert classic_lab.query == classic_lab.gallery and {r[1] for r in classic_lab.query} == {0, 1}
    classic_det_1 = load('cuhk03', tmp_path, cuhk03_classic_split=True, split_id=1)
    # detected: pair 2 person 1 has 2 images per view; test set 1 = {(1, 1)}
    assert counts(classic_det_1) == (4, 4 + 4 + 4 + 2, 2, 4, 4)
    with pytest.raises(SplitFileError, match='split_id must be an int in 0..1'):
        load('cuhk03', tmp_path, cuhk03_classic_split=True, split_id=2)
    with pytest.raises(SplitFileError, match='0..0'):
        load('cuhk03', tmp_path, split_id=1)  # the new protocol has one split

    splits = json.loads((base / 'splits_new_labeled.json').read_text())
    assert splits[0]['num_train_pids'] == 2
    assert splits[0]['train'][0][0] == osp.join('images_labeled', '1_001_1_01.png')
    # The release is read once: with the images and split files written, the .mat files are not needed.
    os.remove(base / 'cuhk03_release' / 'cuhk-03.mat')
    assert counts(load('cuhk03', tmp_path, cuhk03_labeled=True)) == counts(new_det)


def test_cuhk03_missing_release_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load('cuhk03', tmp_path)
    message = str(err.value)
    assert 'cuhk-03.mat' in message and 'cannot be downloaded automatically' in message
    assert 'cuhk03_new_protocol_config_labeled.mat' in message and 'person-re-ranking' in message


# ---------------------------------------------------------------- random-split datasets
def _write_viper(root, num_pids=4):
    for pid in range(num_pids):
        write_image(str(root / 'viper' / 'VIPeR' / 'cam_a' / f'{pid:03d}_45.bmp'))
        write_image(str(root / 'viper' / 'VIPeR' / 'cam_b' / f'{pid:03d}_90.bmp'))


def test_viper_splits(tmp_path):
    _write_viper(tmp_path)
    ds = load('viper', tmp_path, download=False)
    assert counts(ds) == (2, 4, 2, 2, 2)
    assert {r[2] for r in ds.query} == {0} and {r[2] for r in ds.gallery} == {1}
    splits = json.loads((tmp_path / 'viper' / 'splits.json').read_text())
    assert len(splits) == 20
    # odd splits swap the views of the even ones, on the same identities
    assert splits[1]['query'] == splits[0]['gallery'] and splits[1]['train'] == splits[0]['train']
    swapped = load('viper', tmp_path, split_id=1, download=False)
    assert {r[2] for r in swapped.query} == {1}
    # the train/test identities of a split are disjoint (same person = same file number)
    train_people = {osp.basename(r[0])[:3] for r in ds.train}
    assert train_people.isdisjoint({osp.basename(r[0])[:3] for r in ds.query})
    assert load('viper', tmp_path, download=False).train == ds.train  # read back from splits.json
    shared = load('viper', tmp_path, cuhk03_labeled=True, cuhk03_classic_split=True, market1501_500k=True,
                  soccernetv3_training_subset=0.5, download=False, combineall=True)
    assert shared.num_train_pids == 2 + 2 and len(shared.train) == 4 + 2 + 2  # test ids joined train
    with pytest.raises(SplitFileError, match='0..19'):
        load('viper', tmp_path, split_id=20, download=False)


def test_grid_partitions(tmp_path):
    data = tmp_path / 'grid' / 'underground_reid'
    for pid, cam in [(1, 1), (2, 2), (3, 3), (4, 5)]:
        write_image(str(data / 'probe' / f'{pid:04d}_{cam}_25004_107_32_130.jpeg'))
    for pid, cam in [(1, 6), (2, 7), (3, 8), (4, 4), (0, 2), (0, 3)]:
        write_image(str(data / 'gallery' / f'{pid:04d}_{cam}_25004_{pid}{cam}_32_130.jpeg'))
    partitions = np.empty((1, 2), dtype=object)
    for k, train in enumerate(([1, 3], [2, 4])):
        partitions[0, k] = {'a': np.zeros(1), 'b': np.zeros(1), 'idx': np.array([train])}
    savemat(str(data / 'features_and_partitions.mat'), {'trainIdxAll': partitions})
    ds = load('grid', tmp_path, download=False)
    # partition 0 trains on people 1 and 3 (probe + gallery image each); queries 2, 4; gallery 2, 4 + 2 distractors
    assert counts(ds) == (2, 4, 4, 2, 4)
    assert [r[1:3] for r in ds.train] == [(0, 0), (1, 2), (0, 5), (1, 7)]
    assert sorted(r[1] for r in ds.gallery) == [0, 0, 2, 4]
    assert [r[1] for r in load('grid', tmp_path, split_id=1, download=False).query] == [1, 3]


def test_cuhk01_zip_and_splits(tmp_path):
    folder = tmp_path / 'cuhk01'
    folder.mkdir()
    with zipfile.ZipFile(folder / 'CUHK01.zip', 'w') as archive:
        for pid in range(1, 5):
            for image in range(1, 5):
                buf = io.BytesIO()
                Image.new('RGB', (8, 16)).save(buf, format='PNG')
                archive.writestr(f'campus/{pid:04d}{image:03d}.png', buf.getvalue())
    ds = load('cuhk01', tmp_path)
    # 4 people x 4 images: 2 train people (8 images, 2 views); 2 test people: 2 images per view each
    assert counts(ds) == (2, 8, 2, 4, 4)
    assert {r[2] for r in ds.query} == {0} and {r[2] for r in ds.gallery} == {1}
    assert {r[1] for r in ds.query} <= {0, 1, 2, 3}  # test pids keep the file's 0-based number
    assert len(json.loads((folder / 'splits.json').read_text())) == 20


def test_ilids_splits(tmp_path):
    for pid in range(1, 5):
        for image in range(1, 4):
            write_image(str(tmp_path / 'ilids' / 'i-LIDS_Pedestrian' / 'Persons' / f'{pid:04d}{image:03d}.jpg'))
    ds = load('ilids', tmp_path, download=False)
    # int(4 * 0.5) = 2 train people with their 3 images; one query and one gallery image per test person
    assert counts(ds)[:2] == (2, 6) and len(ds.query) == 2 and len(ds.gallery) == 2
    assert {r[1] for r in ds.query} == {r[1] for r in ds.gallery}
    assert all(q[0] != g[0] for q, g in zip(ds.query, ds.gallery))
    assert len(json.loads((tmp_path / 'ilids' / 'splits.json').read_text())) == 10


def test_prid_single_shot(tmp_path):
    cams = tmp_path / 'prid2011' / 'prid_2011' / 'single_shot'
    for pid in range(1, 203):
        write_image(str(cams / 'cam_a' / f'person_{pid:04d}.png'))
    for pid in range(1, 206):
        write_image(str(cams / 'cam_b' / f'person_{pid:04d}.png'))
    ds = load('prid', tmp_path)
    # 100 of the 200 shared people train (2 images each); 100 queries; gallery 100 + cam_b people 201-205
    assert counts(ds) == (100, 200, 2, 100, 105)
    assert {r[1] for r in ds.query} < set(range(1, 201)) and {201, 205} <= {r[1] for r in ds.gallery}
    os.remove(cams / 'cam_b' / 'person_0007.png')
    with pytest.raises(DatasetLayoutError, match='person_0007.png'):
        load('prid', tmp_path)


# ---------------------------------------------------------------- fixed-protocol datasets
def test_sensereid_is_test_only(tmp_path):
    base = tmp_path / 'sensereid' / 'SenseReID'
    for name in ('0003_00.jpg', '0010_01.jpg'):
        write_image(str(base / 'test_probe' / name))
    for name in ('0003_02.jpg', '0010_03.jpg', '0042_00.jpg'):
        write_image(str(base / 'test_gallery' / name))
    ds = load('sensereid', tmp_path)
    assert counts(ds) == (0, 0, 0, 2, 3)
    assert [r[1] for r in ds.query] == [0, 1] and [r[1] for r in ds.gallery] == [0, 1, 2]
    with pytest.raises(ValueError, match='no training data'):
        ImageDataManager(root=str(tmp_path), sources='sensereid', workers=0, device='cpu')


def test_cuhk02_pairs(tmp_path):
    data = tmp_path / 'cuhk02' / 'Dataset'
    layout = {'P1': (['001_010.png', '002_010.png'], ['001_020.png', '002_020.png']),
              'P2': (['001_010.png'], ['001_020.png', '003_020.png']), 'P3': (['005_010.png'], ['005_020.png']),
              'P4': (['001_010.png'], ['001_020.png']), 'P5': (['008_010.png', '009_010.png'], ['008_020.png'])}
    for pair, (cam1, cam2) in layout.items():
        for cam, names in (('cam1', cam1), ('cam2', cam2)):
            for n in names:
                write_image(str(data / pair / cam / n))
    ds = load('cuhk02', tmp_path)
    # train ids: P1 {001, 002} + P2 {001, 003} + P3 {005} + P4 {001} = 6 (numbered on per pair)
    assert counts(ds) == (6, 4 + 3 + 2 + 2, 8, 2, 1)
    assert [r[1:3] for r in ds.train if '/P2/' in r[0]] == [(2, 2), (2, 3), (3, 3)]
    assert [r[1:3] for r in ds.query] == [(8, 8), (9, 8)] and ds.gallery[0][1:3] == (8, 9)


def test_university1652(tmp_path):
    release = tmp_path / 'university1652' / 'University-Release'
    for view, building, n in [('drone', '0001', 2), ('satellite', '0001', 1), ('street', '0002', 1)]:
        for k in range(n):
            write_image(str(release / 'train' / view / building / f'image-{k:02d}.jpeg'))
    for folder, building, n in [('query_drone', '0005', 2), ('gallery_satellite', '0005', 1),
                                ('gallery_satellite', '0006', 1)]:
        for k in range(n):
            write_image(str(release / 'test' / folder / building / f'{building}.jpg' if n == 1 else
                            release / 'test' / folder / building / f'image-{k:02d}.jpeg'))
    ds = load('university1652', tmp_path, download=False)
    assert (ds.num_train_pids, len(ds.train), len(ds.query), len(ds.gallery)) == (2, 4, 2, 2)
    camids = [r[2] for r in ds.train + ds.query + ds.gallery]
    assert camids == list(range(8))  # no cameras: one camid per image, never "same camera"
    assert [r[1] for r in ds.gallery] == [5, 6]


def test_cuhksysu(tmp_path):
    for name in ('p11422_s16929_1.jpg', 'p11422_s16930_2.jpg', 'p20_s5.jpg'):
        write_image(str(tmp_path / 'cuhksysu' / 'cropped_images' / name))
    ds = load('cuhksysu', tmp_path)
    assert counts(ds) == (2, 3, 1, 1, 1) and ds.train_only
    assert sorted(r[1] for r in ds.train) == [0, 1, 1]  # p20 -> 0, p11422 -> 1 (numeric order)


# ---------------------------------------------------------------- fetching
def test_download_from_the_source_url(tmp_path, monkeypatch):
    staging = tmp_path / 'staging'
    _write_viper(staging, num_pids=6)
    archive = tmp_path / 'VIPeR.v1.0.zip'
    with zipfile.ZipFile(archive, 'w') as out:
        for dirpath, _, files in os.walk(staging / 'viper'):
            for f in files:
                full = osp.join(dirpath, f)
                out.write(full, osp.relpath(full, staging / 'viper'))
    from torchreid.data.datasets.image.viper import VIPeR

    monkeypatch.setattr(VIPeR, 'dataset_url', archive.as_uri())
    ds = load('viper', tmp_path / 'data')
    assert counts(ds) == (3, 6, 2, 3, 3)
    assert osp.isfile(tmp_path / 'data' / 'viper' / 'VIPeR.v1.0.zip')


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    from torchreid.data.datasets.image.viper import VIPeR

    monkeypatch.setattr(VIPeR, 'dataset_url', 'http://127.0.0.1:9/VIPeR.v1.0.zip')  # nothing listens there
    with pytest.raises(FileNotFoundError) as err:
        load('viper', tmp_path)
    message = str(err.value)
    assert 'download from http://127.0.0.1:9/VIPeR.v1.0.zip failed' in message
    assert osp.join(str(tmp_path), 'viper', 'VIPeR', 'cam_a') in message and 'vision.soe.ucsc.edu' in message
    with pytest.raises(FileNotFoundError, match=r'download=False; pass download=True'):
        load('viper', tmp_path, download=False)


def test_a_zoo_dataset_through_the_data_manager(tmp_path):
    _write_viper(tmp_path, num_pids=8)
    dm = ImageDataManager(root=str(tmp_path), sources='viper', height=16, width=8, batch_size_train=4,
                          batch_size_test=4, workers=0, device='cpu', split_id=3, download=False)
    assert dm.num_train_pids == 4 and dm.num_train_cams == 2
    batch = next(iter(dm.train_loader))
    assert batch['img'].shape == (4, 3, 16, 8)
    query = dm.test_loader['viper']['query'].dataset
    assert len(query) == 4 and {r[2] for r in query.data} == {1}  # odd split: cam_b queries
