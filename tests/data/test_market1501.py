"""Market-1501 keeps the framework general: layout, junk ids, relabelling, name errors, __add__."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from torchreid.data import ImageDataManager
from torchreid.data.datasets import init_image_dataset
from torchreid.data.datasets.image.market1501 import MarketNameError


def _market(root, nested=True):
    base = osp.join(root, 'market1501', 'Market-1501-v15.09.15') if nested else osp.join(root, 'market1501')
    layout = {
        'bounding_box_train': [(2, 1), (2, 2), (7, 3), (7, 1), (-1, 4), (9, 6), (9, 5)],
        'bounding_box_test': [(0, 1), (-1, 2), (2, 3), (7, 2), (9, 1)],
        'query': [(2, 1), (7, 6), (-1, 3)],
    }
    for folder, items in layout.items():
        os.makedirs(osp.join(base, folder), exist_ok=True)
        for k, (pid, cam) in enumerate(items):
            Image.new('RGB', (8, 16), (k * 30, 0, 0)).save(
                osp.join(base, folder, f'{pid:04d}_c{cam}s1_{k:06d}_01.jpg' if pid >= 0 else
                         f'-1_c{cam}s1_{k:06d}_01.jpg'))
    return base


@pytest.mark.parametrize('nested', [True, False])
def test_market_layout(tmp_path, nested):
    _market(str(tmp_path), nested)
    ds = init_image_dataset('market1501', root=str(tmp_path), verbose=False)
    assert ds.eval_metric == 'default' and ds.hidden_labels is False and ds.train_info is None
    assert len(ds.train) == 6  # the junk (-1) box is dropped from train
    assert sorted({r[1] for r in ds.train}) == [0, 1, 2] and ds.num_train_pids == 3
    assert {r[2] for r in ds.train} == {0, 1, 2, 4, 5}  # cameras count from 0
    # Standard protocol: junk boxes (-1) are dropped at parse time everywhere; distractors (0) stay in the gallery
    assert [r[1] for r in ds.gallery] == [0, 2, 7, 9] and [r[2] for r in ds.gallery] == [0, 2, 1, 0]
    assert [r[1] for r in ds.query] == [2, 7] and ds[0]['img'].size == (8, 16)


def test_market_junk_is_not_ranked_and_distractors_are_negatives(tmp_path):
    from torchreid.metrics import evaluate_rank

    _market(str(tmp_path))
    ds = init_image_dataset('market1501', root=str(tmp_path), verbose=False)
    q_pids = [r[1] for r in ds.query]
    g_pids = [r[1] for r in ds.gallery]
    assert -1 not in g_pids and 0 in g_pids
    # Query pid 2 (cam 0) ranks the distractor first, then its match (cam 2): rank-1 misses, rank-2 hits.
    # Query pid 7 (cam 5) ranks its match (cam 1) first.
    distmat = np.array([[0.1, 0.5, 0.9, 0.8],
                        [0.9, 0.8, 0.1, 0.7]], dtype=np.float32)
    cmc, mAP = evaluate_rank(distmat, np.array(q_pids), np.array(g_pids), np.array([r[2] for r in ds.query]),
                             np.array([r[2] for r in ds.gallery]), max_rank=2)[:2]
    assert cmc[0] == pytest.approx(0.5) and cmc[1] == pytest.approx(1.0)
    assert mAP == pytest.approx((0.5 + 1.0) / 2)


def test_market_missing_without_download_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        init_image_dataset('market1501', root=str(tmp_path), download=False, verbose=False)
    message = str(err.value)
    assert 'download=False' in message and 'Market-1501-v15.09.15.zip' in message
    assert osp.join(str(tmp_path), 'market1501', 'Market-1501-v15.09.15', 'bounding_box_train') in message


def test_market_bad_name_and_missing(tmp_path):
    base = _market(str(tmp_path))
    bad = osp.join(base, 'query', '0002_cam1_000001.jpg')
    open(bad, 'wb').close()
    with pytest.raises(MarketNameError) as err:
        init_image_dataset('market1501', root=str(tmp_path), verbose=False)
    assert bad in str(err.value) and '<pid>_c<cam>' in str(err.value)
    os.remove(bad)
    os.rename(osp.join(base, 'query'), osp.join(base, 'queries'))
    with pytest.raises(FileNotFoundError, match='query'):
        init_image_dataset('market1501', root=str(tmp_path), verbose=False)


def test_market_plus_soccernet(tmp_path, shared_tree):
    _market(str(tmp_path))
    market = init_image_dataset('market1501', root=str(tmp_path), verbose=False)
    sn = init_image_dataset('soccernetv3', root=shared_tree[0], download=False, verbose=False)
    both = market + sn
    assert both.num_train_pids == 3 + 16 and len(both.train) == 6 + 48
    assert {r[3] for r in both.train} == {0, 1}
    # SoccerNet actions start past Market's largest camera id (5), not its camera count (5)
    assert {r[2] for r in both.train[6:]} == {6, 7, 8, 9} and both.num_train_cams == 5 + 4
    assert sorted({r[1] for r in both.train}) == list(range(19))
    assert both.eval_metric == 'default' and both.query == market.query
    assert both.train_info[:6] == [None] * 6 and both.train_info[6:] == sn.train_info
    assert sum([market, sn]).num_train_pids == 19


def test_market_datamanager(tmp_path):
    _market(str(tmp_path))
    dm = ImageDataManager(root=str(tmp_path), sources='market1501', height=16, width=8, batch_size_train=2,
                          workers=0, device='cpu', train_sampler='RandomIdentitySampler', num_instances=2)
    assert dm.num_train_pids == 3
    batch = next(iter(dm.train_loader))
    assert batch['img'].shape == (2, 3, 16, 8) and batch['pid'][0] == batch['pid'][1]
    assert dm.test_loader['market1501']['gallery'].dataset.eval_metric == 'default'


def test_market_misspelt_option_is_a_type_error(tmp_path):
    _market(str(tmp_path))
    with pytest.raises(TypeError) as err:
        init_image_dataset('market1501', root=str(tmp_path), market1501_50k=True, verbose=False)
    message = str(err.value)
    assert message.startswith('Market1501:') and "'market1501_50k'" in message
    assert "did you mean 'market1501_500k'" in message and 'Accepted:' in message and 'root' in message


def test_market_accepts_and_ignores_the_other_shared_options(tmp_path):
    _market(str(tmp_path))
    ds = init_image_dataset('market1501', root=str(tmp_path), verbose=False, split_id=1, cuhk03_labeled=True,
                            cuhk03_classic_split=True, soccernetv3_training_subset=0.5, download=False)
    assert len(ds.train) == 6 and len(ds.query) == 2


def test_data_manager_forwards_exactly_the_shared_options(tmp_path, monkeypatch):
    import inspect

    from torchreid.data import datamanager
    from torchreid.data.datasets.dataset import SHARED_DATASET_OPTIONS

    assert set(SHARED_DATASET_OPTIONS) <= set(inspect.signature(ImageDataManager).parameters)
    seen = {}
    real = datamanager.init_image_dataset

    def spy(name, **kwargs):
        seen[name] = kwargs
        return real(name, **kwargs)

    monkeypatch.setattr(datamanager, 'init_image_dataset', spy)
    _market(str(tmp_path))
    ImageDataManager(root=str(tmp_path), sources='market1501', height=32, width=16, batch_size_train=2,
                     batch_size_test=2, workers=0, device='cpu', split_id=2, market1501_500k=False)
    forwarded = seen['market1501']
    assert set(SHARED_DATASET_OPTIONS) <= set(forwarded)
    assert forwarded['split_id'] == 2 and forwarded['soccernetv3_training_subset'] == 1.0
