"""ImageDataManager: loaders, batches, multi-source, target-only datasets, transforms."""
import logging

import pytest
import torch

from torchreid.data import ImageDataManager, build_transforms
from torchreid.data.samplers import RandomActionSampler, RandomIdentitySampler
from torchreid.data.transforms import AVAILABLE_TRANSFORMS, RandomPatch, RandomTranslateCrop


def _dm(root, **kw):
    args = dict(root=root, sources='soccernetv3', height=32, width=16, batch_size_train=8, batch_size_test=5,
                workers=0, download=False, device='cpu')
    args.update(kw)
    return ImageDataManager(**args)


def test_train_and_test_loaders(shared_tree, caplog):
    root, _ = shared_tree
    with caplog.at_level(logging.INFO, logger='torchreid.data'):
        dm = _dm(root, targets=['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'],
                 train_sampler='RandomIdentitySampler', num_instances=2,
                 transforms=['random_flip', 'random_crop', 'color_jitter', 'random_erase'])
    assert 'Loaded data' in caplog.text and 'soccernetv3_test gallery: 16 ids, 32 images' in caplog.text
    assert dm.num_train_pids == 16 and dm.num_train_cams == 4 and dm.data_type == 'image'
    assert dm.train_loader.drop_last and not dm.train_loader.pin_memory
    assert isinstance(dm.train_loader.sampler, RandomIdentitySampler)
    batches = list(dm.train_loader)
    # Torchreid's epoch: every identity once, K=2 images each (16 ids x 2 = 32 images), in batches of 8.
    assert len(batches) == len(dm.train_loader) == 32 // 8
    batch = batches[0]
    assert set(batch) == {'img', 'pid', 'camid', 'impath', 'dsetid'}
    assert batch['img'].shape == (8, 3, 32, 16) and batch['img'].dtype == torch.float32
    assert batch['pid'].dtype == torch.int64 and batch['camid'].dtype == torch.int64
    assert len(batch['impath']) == 8
    assert batch['img'].mean().abs() < 3  # normalised
    for name, n_query, n_gallery in (('soccernetv3', 16, 32), ('soccernetv3_test', 16, 32),
                                     ('soccernetv3_challenge', 8, 16)):
        qloader, gloader = dm.fetch_test_loaders(name)
        assert qloader.dataset.mode == 'query' and gloader.dataset.mode == 'gallery'
        assert len(qloader.dataset) == n_query and len(gloader.dataset) == n_gallery
        assert qloader.dataset.eval_metric == 'soccernetv3'
        assert qloader.dataset.data_info is qloader.dataset.query_info
        assert dm.test_dataset[name]['gallery'] == gloader.dataset.data
        seen = [b['impath'] for b in qloader]
        assert [p for chunk in seen for p in chunk] == [r[0] for r in qloader.dataset.query]  # order kept
    assert dm.test_loader['soccernetv3_challenge']['query'].dataset.hidden_labels is True
    # the train view and the test views share one dataset read
    assert dm.test_loader['soccernetv3']['query'].dataset.query is dm.train_loader.dataset.query
    with pytest.raises(KeyError, match='not a target'):
        dm.fetch_test_loaders('market1501')


def test_preprocess_and_test_transform(shared_tree):
    root, _ = shared_tree
    dm = _dm(root)
    img = dm.train_loader.dataset.with_mode('query')[0]['img']
    x = dm.preprocess_pil_img(img)
    assert x.shape == (3, 32, 16)
    assert torch.equal(x, dm.preprocess_pil_img(img))  # test transform is deterministic


def test_action_sampler_batches_in_loader(shared_tree):
    root, _ = shared_tree
    dm = _dm(root, train_sampler='RandomActionSampler', num_instances=2)
    assert isinstance(dm.train_loader.sampler, RandomActionSampler)
    for batch in dm.train_loader:
        # 4 ids per action in the tree, P=4: each batch is one action
        assert batch['camid'].unique().numel() == 1
        assert batch['pid'].unique().numel() == 4
    # num_pids_per_action=2: two identities from each of two actions
    dm = _dm(root, train_sampler='RandomActionSampler', num_instances=2, num_pids_per_action=2)
    assert dm.train_loader.sampler.num_pids_per_action == 2
    for batch in dm.train_loader:
        actions, counts = batch['camid'].unique(return_counts=True)
        assert actions.numel() == 2 and counts.tolist() == [4, 4]
        assert batch['pid'].unique().numel() == 4


def test_random_sampler_drop_last_rules(shared_tree):
    root, _ = shared_tree
    dm = _dm(root, batch_size_train=5)  # 48 % 5 = 3: keep the tail
    assert not dm.train_loader.drop_last and len(dm.train_loader) == 10
    dm = _dm(root, batch_size_train=47)  # a tail of one image would break BatchNorm
    assert dm.train_loader.drop_last and len(dm.train_loader) == 1


def test_workers_and_combined_sources(shared_tree):
    root, _ = shared_tree
    dm = _dm(root, sources=['soccernetv3', 'soccernetv3'], targets='soccernetv3_test', workers=2,
             batch_size_train=16, soccernetv3_training_subset=0.5)
    # the second copy's pids, actions and dsetid are offset
    train = dm.train_loader.dataset.train
    assert dm.num_train_pids == 16 and len(train) == 48
    assert sorted({r[1] for r in train}) == list(range(16))
    assert {r[3] for r in train} == {0, 1} and dm.num_train_cams == 4
    assert len(dm.train_loader.dataset.train_info) == 48
    assert dm.train_loader.num_workers == 2
    n = sum(b['img'].shape[0] for b in dm.train_loader)
    assert n == 48
    assert list(dm.test_loader) == ['soccernetv3_test']


def test_target_only_datasets_cannot_be_sources(shared_tree):
    root, _ = shared_tree
    for name in ('soccernetv3_test', 'soccernetv3_challenge'):
        with pytest.raises(ValueError, match='no training data'):
            _dm(root, sources=name)


def test_device_and_deprecated_use_gpu(shared_tree):
    root, _ = shared_tree
    with pytest.warns(DeprecationWarning, match='use_gpu'):
        dm = _dm(root, device=None, use_gpu=False)
    assert dm.device.type == 'cpu' and not dm.train_loader.pin_memory


def test_deprecated_use_gpu_true_goes_through_the_one_resolver(shared_tree, monkeypatch):
    from torchreid.data import datamanager

    requests = []
    real = datamanager.resolve_device

    def spy(device=None):
        requests.append(device)
        return real(device)

    monkeypatch.setattr(datamanager, 'resolve_device', spy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(DeprecationWarning, match='use_gpu'):
        dm = _dm(shared_tree[0], device=None, use_gpu=True)
    assert requests == ['auto'] and dm.device.type == 'cpu' and dm.use_gpu is False
    with pytest.warns(DeprecationWarning):
        assert _dm(shared_tree[0], device=None, use_gpu=False).device.type == 'cpu'
    assert requests[-1] == 'cpu'
    assert _dm(shared_tree[0], device='auto').device.type == 'cpu'


def test_unknown_transform_and_sampler(shared_tree):
    with pytest.raises(ValueError) as err:
        build_transforms(32, 16, ['random_flip', 'random_rotate'])
    assert 'random_rotate' in str(err.value) and all(t in str(err.value) for t in AVAILABLE_TRANSFORMS)
    with pytest.raises(ValueError, match='RandomActionSampler'):
        _dm(shared_tree[0], train_sampler='NoSuchSampler')


def test_transforms_shapes_and_randomness():
    from PIL import Image
    img = Image.new('RGB', (20, 50), (120, 30, 200))
    tr, te = build_transforms(32, 16, 'random_flip random_crop random_patch color_jitter random_erase'.split())
    for _ in range(5):
        out = tr(img)
        assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    out = te(img)
    assert out.shape == (3, 32, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    expected = (torch.tensor([120, 30, 200]).view(3, 1, 1) / 255 - mean) / std
    assert torch.allclose(out, expected.expand(3, 32, 16), atol=1e-5)


def test_random_translate_crop_and_patch():
    torch.manual_seed(0)
    crop = RandomTranslateCrop(8, 4, p=1.0)
    x = torch.arange(2 * 8 * 4, dtype=torch.float32).view(2, 8, 4)
    assert crop(x).shape == (2, 8, 4)
    with pytest.raises(ValueError):
        RandomTranslateCrop(8, 4, p=2)
    patch = RandomPatch(prob_happen=1.0, min_sample_size=1, prob_flip_leftright=0.0)
    white = torch.full((3, 20, 10), 255, dtype=torch.uint8)
    black = torch.zeros((3, 20, 10), dtype=torch.uint8)
    assert torch.equal(patch(white), white)  # empty pool: nothing pasted, a white patch pooled
    assert len(patch.patchpool) == 1
    out = patch(black)
    assert out.shape == black.shape and (out == 255).any()  # the white patch was pasted
    assert (black == 0).all()  # the input is not modified in place
    with pytest.raises(TypeError, match='ToImage'):
        patch('not a tensor')


def test_k_tfm(shared_tree):
    root, _ = shared_tree
    dm = _dm(root, k_tfm=2)
    item = dm.train_loader.dataset[0]
    assert isinstance(item['img'], list) and len(item['img']) == 2


def test_tiny_set_end_to_end(request):
    from torchreid.data import synthetic
    if not hasattr(synthetic, 'generate_dataset'):
        pytest.skip('synthetic generator not available yet')
    root = request.getfixturevalue('tiny_root')
    dm = _dm(root, targets=['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge'],
             train_sampler='RandomActionSampler', num_instances=2, seed=3)
    assert dm.num_train_pids == len({r[1] for r in dm.train_loader.dataset.train})
    n = 0
    for batch in dm.train_loader:
        n += 1
        assert batch['img'].shape == (8, 3, 32, 16)
        pids, actions = batch['pid'].tolist(), batch['camid'].tolist()
        assert all(pids.count(p) == 2 for p in pids)
        per_action = {}
        for p, a in zip(pids, actions):
            per_action.setdefault(a, set()).add(p)
        assert max(len(v) for v in per_action.values()) >= 2
    assert n == len(dm.train_loader) > 0
    # seeded: set_epoch replays an epoch exactly
    dm.set_epoch(4)
    first = list(dm.train_loader.sampler)
    dm.set_epoch(4)
    assert list(dm.train_loader.sampler) == first
    gallery = dm.test_loader['soccernetv3_test']['gallery']
    batch = next(iter(gallery))
    assert batch['pid'].dtype == torch.int64 and (batch['pid'] >= 0).all()
