"""Engine evaluation: per-target metric, hidden labels, ranking export, re-ranking, visrank, extraction parity."""
import json
import os
import os.path as osp
import types

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import torchreid
from engine_helpers import HEIGHT, WIDTH, tiny_model
from torchreid.engine import EvalOptions, ImageSoftmaxEngine
from torchreid.utils import FeatureExtractor, save_checkpoint

GT_FILES = {
    'soccernetv3': 'valid/bbox_info.json',
    'soccernetv3_test': 'test/test_bbox_info.json',  # the name of the release's file
    'soccernetv3_challenge': 'challenge_labels/bbox_info.json',
}


def _engine(dm, model=None, **kwargs):
    model = model if model is not None else tiny_model(dm.num_train_pids)
    return ImageSoftmaxEngine(dm, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                              progress=False, tensorboard=False, **kwargs)


def test_test_only_evaluates_same_action_and_exports_every_target(datamanager, tiny_root, tmp_path):
    engine = _engine(datamanager)
    results = engine.run(save_dir=str(tmp_path), test_only=True, export_ranking_results=True, ranks=[1, 5],
                         visrank=True, visrank_topk=3, visrank_max_queries=2)
    assert list(results) == ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge']
    reid_root = osp.join(tiny_root, 'soccernetv3', 'reid')
    for name, res in results.items():
        qset = datamanager.test_loader[name]['query'].dataset
        gset = datamanager.test_loader[name]['gallery'].dataset
        assert res['eval_metric'] == 'soccernetv3'
        path = res['ranking_path']
        assert path and osp.isfile(path) and osp.dirname(path) == str(tmp_path)
        assert osp.basename(path).startswith(f'ranking_results_{name}_')
        with open(path) as f:
            ranking = json.load(f)
        # Challenge format: every query, and exactly the gallery items of its own action.
        assert set(ranking) == {str(s.bbox_idx) for s in qset.data_info}
        by_action = {}
        for s in gset.data_info:
            by_action.setdefault(s.action_idx, set()).add(s.bbox_idx)
        for s in qset.data_info:
            items = ranking[str(s.bbox_idx)]
            assert len(items) == len(set(items)) and set(items) == by_action[s.action_idx]
        # The engine's numbers are those of the evaluator run on the exported file.
        gt = qset.ground_truth_path or osp.join(reid_root, GT_FILES[name])   # where the dataset found its labels
        scored = torchreid.metrics.evaluate_ranking_file(path, gt)
        if name == 'soccernetv3_challenge':
            assert res['hidden_labels'] and res['mAP'] is None and res['rank1'] is None
            assert 0.0 <= scored['mAP'] <= 1.0  # the hidden labels do exist for the synthetic set
        else:
            assert not res['hidden_labels']
            assert res['mAP'] == pytest.approx(scored['mAP'], abs=1e-9)
            assert res['mINP'] == pytest.approx(scored['mINP'], abs=1e-9)
            assert res['rank1'] == pytest.approx(scored['rank-1'], abs=1e-6)
            assert set(res['ranks']) == {1, 5}
    # rank-1 of the last target with labels, as Torchreid's test() returned
    assert engine.rank1 == results['soccernetv3_test']['rank1']
    for name in results:
        pictures = [n for n in os.listdir(tmp_path / f'visrank_{name}') if n.endswith(('.jpg', '.png'))]
        assert len(pictures) == 2
        assert (tmp_path / f'visrank_{name}' / 'index.html').is_file()
    assert (tmp_path / 'test.log').exists()


def test_intermediate_tests_do_not_export(dm_valid, tmp_path, monkeypatch):
    exported = []
    real_export = torchreid.metrics.submission.export_ranking_results

    def spy(*args, **kwargs):
        exported.append(args[-1])
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torchreid.metrics.submission, 'export_ranking_results', spy)
    engine = _engine(dm_valid)
    engine.run(save_dir=str(tmp_path), max_epoch=2, eval_freq=1, export_ranking_results=True, print_freq=100)
    assert exported == ['soccernetv3']  # the final test only
    assert len([n for n in os.listdir(tmp_path) if n.startswith('ranking_results_')]) == 1


def test_rerank_and_inverted_softmax_reach_the_metric(dm_valid, tmp_path, monkeypatch):
    calls = []
    evaluator_cls = torchreid.metrics.SoccerNetEvaluator
    real = evaluator_cls.evaluate

    def spy(self, *args, **kwargs):
        calls.append(self.options.to_flat())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(evaluator_cls, 'evaluate', spy)
    engine = _engine(dm_valid)
    engine.run(save_dir=str(tmp_path), max_epoch=1, rerank=True, dist_metric='cosine', normalize_feature=True,
               print_freq=100)
    engine.run(save_dir=str(tmp_path), test_only=True, rerank=True, rerank_k1=7, rerank_k2=3, rerank_lambda=0.5)
    results = engine.run(save_dir=str(tmp_path), test_only=True, inverted_softmax=True,
                         inverted_softmax_temperature=0.2)
    assert len(calls) == 3
    assert all(c['rerank'] is True for c in calls[:2])
    assert (calls[1]['rerank_k1'], calls[1]['rerank_k2'], calls[1]['rerank_lambda']) == (7, 3, 0.5)
    assert calls[0]['dist_metric'] == 'cosine' and calls[0]['normalize_feature'] is True
    assert [c['inverted_softmax'] for c in calls] == [False, False, True]
    assert calls[2]['inverted_softmax_temperature'] == 0.2 and calls[2]['rerank'] is False
    assert 0.0 <= results['soccernetv3']['mAP'] <= 1.0


class _DefaultMetricView(Dataset):
    """A Market-style target built from the synthetic valid split: same images, 'default' metric, and one
    camera for all queries and another for the gallery (so Market's same-camera junk rule removes nothing)."""
    eval_metric = 'default'
    hidden_labels = False

    def __init__(self, base, camid):
        self.base = base
        self.camid = camid
        self.data = [(path, pid, camid, dsetid) for path, pid, _, dsetid in base.data]
        self.data_info = None

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return dict(self.base[i], camid=self.camid)


def test_default_metric_target_uses_the_full_distance_matrix(dm_valid, tmp_path):
    loaders = dm_valid.test_loader['soccernetv3']
    q = DataLoader(_DefaultMetricView(loaders['query'].dataset, 0), batch_size=32)
    g = DataLoader(_DefaultMetricView(loaders['gallery'].dataset, 1), batch_size=32)
    dm = types.SimpleNamespace(num_train_pids=dm_valid.num_train_pids, train_loader=None, targets=['market'],
                               test_loader={'market': {'query': q, 'gallery': g}}, width=WIDTH, height=HEIGHT)
    engine = _engine(dm)
    rank1 = engine.test(dist_metric='cosine', save_dir=str(tmp_path), export_ranking_results=True,
                        visrank=True, visrank_max_queries=1)
    results = engine.last_test_results
    assert rank1 == results['market']['rank1']
    qf, q_pids, q_camids = engine.extract_features_from_loader(q)
    gf, g_pids, g_camids = engine.extract_features_from_loader(g)
    distmat = torchreid.metrics.compute_distance_matrix(qf, gf, 'cosine')
    expected = torchreid.metrics.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, eval_metric='default',
                                               return_result=True)
    res = results['market']
    assert res['eval_metric'] == 'default'
    assert res['mAP'] == pytest.approx(expected.mAP, abs=1e-12)
    assert res['rank1'] == pytest.approx(float(expected.cmc[0]), abs=1e-12)
    assert res['ranking_path'] is None  # the challenge JSON format is SoccerNet-only
    assert len([n for n in os.listdir(tmp_path / 'visrank_market') if n.endswith(('.jpg', '.png'))]) == 1
    with pytest.raises(ValueError, match='query_expansion'):
        engine.test(query_expansion=True)
    with pytest.raises(ValueError, match='query_expansion'):   # refused before any epoch is trained
        engine.run(save_dir=str(tmp_path / 'refused'), max_epoch=1, query_expansion=True)
    assert engine.history == []
    with pytest.raises(ValueError, match='inverted_softmax is implemented for soccernetv3 .per-action. targets only'):
        engine.test(inverted_softmax=True)
    # re-ranking on the full matrix runs and gives a valid metric
    engine.test(EvalOptions(rerank=True))
    reranked = engine.last_test_results['market']
    assert 0.0 <= reranked['mAP'] <= 1.0
    # normalize_feature on a Market-style target: the squared euclidean distance of L2-normalised features
    engine.test(normalize_feature=True)
    normalised = engine.last_test_results['market']
    qn, gn = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
    expected = torchreid.metrics.evaluate_rank(torchreid.metrics.compute_distance_matrix(qn, gn), q_pids, g_pids,
                                               q_camids, g_camids, eval_metric='default', return_result=True)
    assert normalised['mAP'] == pytest.approx(expected.mAP, abs=1e-12)
    engine.test()
    plain = engine.last_test_results['market']['mAP']
    assert normalised['mAP'] != pytest.approx(plain, abs=1e-9)  # it changes the ranking


def test_feature_extractor_matches_engine_extraction(dm_valid, tmp_path):
    torch.manual_seed(0)
    model = torchreid.models.build_model('osnet_x0_25', num_classes=dm_valid.num_train_pids, pretrained=False)
    engine = _engine(dm_valid, model=model)
    # BatchNorm statistics different from the initial ones, so the loaded weights matter.
    engine.set_model_mode('train')
    with torch.no_grad():
        model(torch.randn(8, 3, HEIGHT, WIDTH) * 2 + 0.5)
    path = save_checkpoint({'state_dict': model.state_dict(), 'epoch': 1}, str(tmp_path))
    loader = dm_valid.test_loader['soccernetv3']['query']
    feats, pids, camids = engine.extract_features_from_loader(loader)
    assert feats.shape == (len(loader.dataset), model.feature_dim)
    np.testing.assert_array_equal(pids, [r[1] for r in loader.dataset.data])
    np.testing.assert_array_equal(camids, [r[2] for r in loader.dataset.data])

    extractor = FeatureExtractor(model_name='osnet_x0_25', model_path=path, image_size=(HEIGHT, WIDTH),
                                 device='cpu', verbose=False)
    expected = extractor([r[0] for r in loader.dataset.data])
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-5)
