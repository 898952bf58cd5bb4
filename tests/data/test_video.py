"""Video data: frame sampling, the four video datasets on generated copies of their layouts, the video data
manager and the video engines (one epoch on a tiny MARS-layout copy, then evaluation)."""
import io
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from scipy.io import savemat

from torchreid.data import VideoDataManager, VideoDataset, init_video_dataset, list_video_datasets
from torchreid.data.datasets import DatasetLayoutError, register_video_dataset
from torchreid.data.datasets.video import sample_frame_indices
from torchreid.engine import VideoSoftmaxEngine, VideoTripletEngine
from torchreid.engine.video import flatten_clips, pool_frames

_JPEG = {}


def write_frame(path, colour=(120, 40, 40)):
    fmt = 'PNG' if path.endswith('.png') else 'JPEG'
    if (fmt, colour) not in _JPEG:
        buf = io.BytesIO()
        Image.new('RGB', (8, 16), colour).save(buf, format=fmt)
        _JPEG[(fmt, colour)] = buf.getvalue()
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(_JPEG[(fmt, colour)])


def load(name, root, **kwargs):
    return init_video_dataset(name, root=str(root), verbose=False, **kwargs)


def counts(ds):
    """(train ids, train tracklets, train cams, query tracklets, gallery tracklets)."""
    return ds.num_train_pids, len(ds.train), ds.num_train_cams, len(ds.query), len(ds.gallery)


# ---------------------------------------------------------------- sampling
def test_sample_frame_indices():
    # evenly: 10 frames cut to 8, every 2nd; a short tracklet repeats its last frame
    assert sample_frame_indices(10, 4, 'evenly').tolist() == [0, 2, 4, 6]
    assert sample_frame_indices(4, 4, 'evenly').tolist() == [0, 1, 2, 3]
    assert sample_frame_indices(3, 5, 'evenly').tolist() == [0, 1, 2, 2, 2]
    assert sample_frame_indices(7, 3, 'all').tolist() == list(range(7))
    rng = np.random.default_rng(0)
    drawn = sample_frame_indices(20, 6, 'random', rng)
    assert len(drawn) == 6 and len(set(drawn.tolist())) == 6 and drawn.tolist() == sorted(drawn.tolist())
    short = sample_frame_indices(2, 5, 'random', rng)  # with replacement
    assert len(short) == 5 and set(short.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match='sample_method'):
        sample_frame_indices(5, 2, 'uniform')


def test_video_dataset_items_and_sum(tmp_path):
    paths = []
    for k in range(3):
        paths.append(str(tmp_path / f'f{k}.jpg'))
        write_frame(paths[-1])
    import torchvision.transforms as T

    ds = VideoDataset([(paths, 0, 0), (paths[:1], 1, 1)], [(paths, 0, 1)], [(paths[:2], 0, 0)], seq_len=4,
                      transform=T.ToTensor(), verbose=False)
    item = ds[1]
    assert item['img'].shape == (4, 3, 16, 8) and item['pid'] == 1 and item['camid'] == 1
    assert ds.verify_images() == 3 + 1 + 3 + 2 and ds.verify_images(['query'], mode='header') == 3
    with open(paths[2], 'wb') as f:
        f.write(b'not a picture')
    with pytest.raises(OSError, match='f2.jpg'):
        VideoDataset([(paths, 0, 0)], [], [], verbose=False, verify_images=True)
    both = ds + VideoDataset([(paths, 0, 0)], [], [], seq_len=4, verbose=False)
    assert isinstance(both, VideoDataset) and both.num_train_pids == 3 and both.seq_len == 4
    with pytest.raises(ValueError, match='sequence of frame paths'):
        VideoDataset([(paths[0], 0, 0)], [], [], verbose=False)
    with pytest.raises(ValueError, match='sample_method'):
        VideoDataset([], [], [], sample_method='middle', verbose=False)


# ---------------------------------------------------------------- MARS
def _write_mars(root):
    base = root / 'mars'
    # (pid, camera, frames): train tracklets, then test tracklets (rows of tracks_test_info)
    train = [(1, 1, 3), (1, 2, 2), (3, 1, 4)]
    test = [(5, 1, 2), (5, 2, 3), (6, 3, 2), (6, 4, 2), (0, 2, 2), (-1, 1, 2)]

    def write(tracklets, home, colours):
        names, rows = [], []
        for t, (pid, cam, n) in enumerate(tracklets):
            start = len(names) + 1
            folder = '00-1' if pid == -1 else f'{pid:04d}'
            for f in range(n):
                name = f'{folder}C{cam}T{t + 1:04d}F{f + 1:03d}.jpg'
                names.append(name)
                write_frame(str(base / home / folder / name), colours.get(pid, (0, 0, 0)))
            rows.append([start, len(names), pid, cam])
        return names, np.array(rows, dtype=np.float64)

    colours = {1: (250, 10, 10), 3: (10, 250, 10), 5: (10, 10, 250), 6: (250, 250, 10), 0: (128, 128, 128)}
    train_names, train_rows = write(train, 'bbox_train', colours)
    test_names, test_rows = write(test, 'bbox_test', colours)
    info = base / 'info'
    info.mkdir()
    (info / 'train_name.txt').write_text('\n'.join(train_names) + '\n')
    (info / 'test_name.txt').write_text('\n'.join(test_names) + '\n')
    savemat(str(info / 'tracks_train_info.mat'), {'track_train_info': train_rows})
    savemat(str(info / 'tracks_test_info.mat'), {'track_test_info': test_rows})
    savemat(str(info / 'query_IDX.mat'), {'query_IDX': np.array([[1, 3]])})
    return base


def test_mars_layout(tmp_path):
    _write_mars(tmp_path)
    ds = load('mars', tmp_path)
    # train: pids 1, 3 -> 0, 1; query rows 1 and 3; gallery: the other rows but the junk one (pid -1)
    assert counts(ds) == (2, 3, 2, 2, 3)
    assert [(len(r[0]), r[1], r[2]) for r in ds.train] == [(3, 0, 0), (2, 0, 1), (4, 1, 0)]
    assert [r[1:3] for r in ds.query] == [(5, 0), (6, 2)]
    assert [r[1:3] for r in ds.gallery] == [(5, 1), (6, 3), (0, 1)]  # the distractor (pid 0) stays
    assert ds.train[0][0][0] == str(tmp_path / 'mars' / 'bbox_train' / '0001' / '0001C1T0001F001.jpg')
    assert counts(load('mars', tmp_path, combineall=True)) == counts(ds)  # ignored, as in Torchreid
    # Torchreid's shared options are accepted (and ignored) by a dataset that does not use them
    shared = load('mars', tmp_path, split_id=1, cuhk03_labeled=True, cuhk03_classic_split=True,
                  market1501_500k=True, soccernetv3_training_subset=0.5, download=False, seq_len=3,
                  sample_method='random', mode='query')
    assert counts(shared) == counts(ds) and shared.seq_len == 3 and len(shared) == 2


def test_mars_tracklet_disagreeing_with_names(tmp_path):
    base = _write_mars(tmp_path)
    savemat(str(base / 'info' / 'tracks_train_info.mat'),
            {'track_train_info': np.array([[1, 4, 1, 1]], dtype=np.float64)})  # row 4 belongs to camera 2
    with pytest.raises(DatasetLayoutError, match='another person or camera'):
        load('mars', tmp_path)


# ---------------------------------------------------------------- iLIDS-VID, PRID2011, DukeMTMC-VideoReID
def test_ilidsvid_official_splits(tmp_path):
    base = tmp_path / 'ilids-vid'
    for cam in ('cam1', 'cam2'):
        for person in range(1, 5):
            for f in (317, 12):
                write_frame(str(base / 'i-LIDS-VID' / 'sequences' / cam / f'person{person:03d}' /
                                f'{cam}_person{person:03d}_{f:05d}.png'))
    (base / 'train-test people splits').mkdir()
    savemat(str(base / 'train-test people splits' / 'train_test_splits_ilidsvid.mat'),
            {'ls_set': np.array([[2, 1, 4, 3], [4, 3, 1, 2]], dtype=np.float64)})
    ds = load('ilidsvid', tmp_path, download=False)
    # split 0: test persons 1, 2 (first half), train persons 3, 4 with both cameras
    assert counts(ds) == (2, 4, 2, 2, 2)
    assert [osp.basename(osp.dirname(r[0][0])) for r in ds.query] == ['person001', 'person002']
    assert {r[2] for r in ds.query} == {0} and {r[2] for r in ds.gallery} == {1}
    assert [osp.basename(p) for p in ds.train[0][0]] == ['cam1_person003_00012.png', 'cam1_person003_00317.png']
    assert json.loads((base / 'splits.json').read_text())[1]['test'] == ['person003', 'person004']


def test_prid2011_video(tmp_path):
    base = tmp_path / 'prid2011'
    for cam in ('cam_a', 'cam_b'):
        for person in range(1, 5):
            for f in range(1, 4):
                write_frame(str(base / 'prid_2011' / 'multi_shot' / cam / f'person_{person:04d}' / f'{f:04d}.png'))
    (base / 'splits_prid2011.json').write_text(json.dumps(
        [{'train': ['person_0001', 'person_0003'], 'test': ['person_0002', 'person_0004']}]))
    ds = load('prid2011', tmp_path)
    assert counts(ds) == (2, 4, 2, 2, 2)
    assert [r[1:3] for r in ds.gallery] == [(0, 1), (1, 1)] and len(ds.query[0][0]) == 3
    os.remove(base / 'splits_prid2011.json')
    with pytest.raises(FileNotFoundError, match='splits_prid2011.json'):
        load('prid2011', tmp_path)


def test_dukemtmcvidreid_names_and_cache(tmp_path):
    base = tmp_path / 'dukemtmc-vidreid' / 'DukeMTMC-VideoReID'
    frames = {('train', '0001', '0001'): ['0001_C1_F0010_X00001.jpg', '0001_C1_F0002_X00001.jpg'],
              ('train', '0001', '0002'): ['0001C2F0001X00002.jpg'],
              ('train', '0004', '0001'): ['0004_C5_F0001_X00003.jpg'],
              ('query', '0005', '0001'): ['0005_C3_F0001_X00004.jpg'],
              ('gallery', '0005', '0002'): ['0005_C4_F0001_X00005.jpg', '0005_C4_F0002_X00005.jpg'],
              ('gallery', '0006', '0001'): ['0006_C8_F0001_X00006.jpg']}
    for (split, pid, tracklet), names in frames.items():
        for n in names:
            write_frame(str(base / split / pid / tracklet / n))
    ds = load('dukemtmcvidreid', tmp_path, download=False)
    assert counts(ds) == (2, 3, 3, 1, 2)
    # frames in F order, not name order; camera from either naming style, 0-based
    assert [osp.basename(p) for p in ds.train[0][0]] == ['0001_C1_F0002_X00001.jpg', '0001_C1_F0010_X00001.jpg']
    assert [r[1:3] for r in ds.train] == [(0, 0), (0, 1), (1, 4)] and [r[1:3] for r in ds.gallery] == [(5, 3), (6, 7)]
    cache = json.loads((tmp_path / 'dukemtmc-vidreid' / 'split_gallery.json').read_text())
    assert cache['tracklets'][1] == [[osp.join('DukeMTMC-VideoReID', 'gallery', '0006', '0001',
                                               '0006_C8_F0001_X00006.jpg')], 6, 7]
    again = load('dukemtmcvidreid', tmp_path, download=False)
    assert again.train == ds.train and again.gallery == ds.gallery


def test_video_registry():
    assert set(list_video_datasets()) == {'mars', 'ilidsvid', 'prid2011', 'dukemtmcvidreid'}
    with pytest.raises(ValueError, match="'viper' is an image dataset"):
        init_video_dataset('viper', root='x')
    with pytest.raises(ValueError, match='already registered'):
        register_video_dataset('mars', object)
    with pytest.raises(TypeError, match="did you mean 'seq_len'"):
        init_video_dataset('mars', root='x', seqlen=4)


# ---------------------------------------------------------------- engines
class FrameNet(nn.Module):
    """A tiny image model: logits (softmax) / (logits, features) (triplet) in train mode, features in eval."""

    def __init__(self, num_classes, loss='softmax'):
        super().__init__()
        self.loss = loss
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x):
        f = self.backbone(x)
        if not self.training:
            return f
        logits = self.classifier(f)
        return (logits, f) if self.loss == 'triplet' else logits


def test_flatten_and_pooling():
    clips = torch.arange(2 * 3, dtype=torch.float32).view(2, 3, 1, 1, 1)
    frames, pids = flatten_clips(clips, torch.tensor([7, 9]))
    assert frames.shape == (6, 1, 1, 1) and pids.tolist() == [7, 7, 7, 9, 9, 9]
    features = clips.view(2, 3, 1)
    assert pool_frames(features, 'avg').view(-1).tolist() == [1.0, 4.0]  # mean of 0,1,2 and of 3,4,5
    assert pool_frames(features, 'max').view(-1).tolist() == [2.0, 5.0]
    with pytest.raises(ValueError, match='pooling_method'):
        pool_frames(features, 'median')


@pytest.fixture(scope='module')
def mars_dm(tmp_path_factory):
    root = tmp_path_factory.mktemp('video')
    _write_mars(root)
    return VideoDataManager(root=str(root), sources='mars', height=16, width=8, seq_len=4, batch_size_train=2,
                            batch_size_test=2, workers=0, device='cpu', transforms=None)


def test_video_datamanager(mars_dm):
    assert mars_dm.data_type == 'video' and mars_dm.num_train_pids == 2
    batch = next(iter(mars_dm.train_loader))
    assert batch['img'].shape == (2, 4, 3, 16, 8)
    assert len(mars_dm.train_loader) == 1  # 3 tracklets, batches of 2, the tail dropped (Torchreid)
    query_batch = next(iter(mars_dm.test_loader['mars']['query']))
    assert query_batch['img'].shape == (2, 4, 3, 16, 8)
    with pytest.raises(ValueError, match='batch_size_train must be 1'):
        VideoDataManager(root='unused', sources='mars', sample_method='all', batch_size_train=2)


@pytest.mark.parametrize('engine_cls, pooling', [(VideoSoftmaxEngine, 'avg'), (VideoTripletEngine, 'max')])
def test_video_engine_trains_and_evaluates(mars_dm, engine_cls, pooling, tmp_path):
    torch.manual_seed(0)
    loss = 'triplet' if engine_cls is VideoTripletEngine else 'softmax'
    model = FrameNet(mars_dm.num_train_pids, loss=loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    engine = engine_cls(mars_dm, model, optimizer, device='cpu', progress=False, tensorboard=False,
                        pooling_method=pooling)
    before = [p.detach().clone() for p in model.parameters()]
    results = engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=0, save_freq=None)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it trained
    res = results['mars']
    assert res['num_queries'] == 2 and res['num_gallery'] == 3 and 0.0 <= res['rank1'] <= 1.0
    # one pooled feature per tracklet: the mean / maximum of its frames' features
    clips = next(iter(mars_dm.test_loader['mars']['query']))['img']
    model.eval()
    with torch.no_grad():
        by_frame = model(clips.flatten(0, 1)).view(2, 4, -1)
        pooled = engine.extract_features(clips)
    expected = by_frame.mean(1) if pooling == 'avg' else by_frame.max(1)[0]
    assert pooled.shape == (2, 8) and torch.allclose(pooled, expected, atol=1e-6)
    with pytest.raises(ValueError, match='pooling_method'):
        engine_cls(mars_dm, model, optimizer, device='cpu', pooling_method='median')
