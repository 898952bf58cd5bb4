import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from SoccerNet.Evaluation.ReIdentification import evaluate as official_evaluate

from torchreid.metrics import (evaluate_ranking_dicts, evaluate_ranking_file, evaluate_soccernetv3,
                               export_ranking_results, ranking_results_to_dict)
from torchreid.metrics import submission as RE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = ['Player_team_left', 'Player_team_right', 'Goalkeeper_team_left', 'Main_referee', 'Staff_members']


def _gt(seed=0, n_actions=6):
    """A random ground truth where every query has a match in its action's gallery."""
    rng = np.random.default_rng(seed)
    query, gallery = {}, {}
    qi = gi = 0
    for a in range(n_actions):
        pids = np.arange(5) + 100 * a
        for _ in range(rng.integers(1, 5)):
            pid = int(rng.choice(pids[:3]))
            query[str(qi)] = {'bbox_idx': qi, 'action_idx': a, 'person_uid': pid, 'clazz': str(rng.choice(CLASSES)),
                              'height': int(rng.integers(20, 300)), 'width': 30}
            qi += 1
        g_pids = np.concatenate([pids[:3], rng.choice(pids, rng.integers(0, 8))])
        for pid in g_pids:
            gallery[str(gi)] = {'bbox_idx': gi, 'action_idx': a, 'person_uid': int(pid), 'clazz': 'Player_team_left',
                                'height': 50, 'width': 20}
            gi += 1
    return {'query': query, 'gallery': gallery}


def _random_rankings(gt, seed=0):
    rng = np.random.default_rng(seed)
    by_action = {}
    for k, r in gt['gallery'].items():
        by_action.setdefault(r['action_idx'], []).append(r['bbox_idx'])
    return {k: [int(x) for x in rng.permutation(by_action[r['action_idx']])] for k, r in gt['query'].items()}


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def _official(gt_path, rs_path):
    with contextlib.redirect_stdout(io.StringIO()):
        return official_evaluate(gt_path, rs_path)


@pytest.mark.parametrize('seed', range(6))
def test_agrees_with_official_on_random_rankings(tmp_path, seed):
    gt = _gt(seed)
    rk = _random_rankings(gt, seed)
    gt_path, rs_path = _write(tmp_path, 'gt.json', gt), _write(tmp_path, 'rs.json', rk)
    off = _official(gt_path, rs_path)
    ours = evaluate_ranking_file(rs_path, gt_path)
    assert abs(ours['mAP'] - off['mAP']) <= 1e-9
    assert abs(ours['rank-1'] - float(off['rank-1'])) <= 1e-9
    assert ours['num_queries'] == len(gt['query'])
    assert 0 <= ours['mINP'] <= 1
    groups = ours['by_class_group']
    assert sum(g['num_queries'] for g in groups.values()) == len(gt['query'])
    assert set(groups) >= {'players', 'goalkeepers', 'referees', 'staff'}
    assert sum(h['num_queries'] for h in ours['by_height'].values()) == len(gt['query'])
    # in-memory variant, int keys read as their JSON strings
    mem = evaluate_ranking_dicts({int(k): v for k, v in rk.items()}, gt)
    assert mem['mAP'] == ours['mAP'] and mem['rank-1'] == ours['rank-1']


def _mutations(gt, rk):
    """(name, broken rankings, broken gt) for every refusal of the official evaluator."""
    q0 = next(iter(gt['query']))
    a0 = gt['query'][q0]['action_idx']
    foreign = next(int(k) for k, r in gt['gallery'].items() if r['action_idx'] != a0)
    out = []
    r = dict(rk); del r[q0]; out.append(('missing query', r, gt))
    r = dict(rk); r[q0] = rk[q0][:-1] + [foreign]; out.append(('foreign action', r, gt))
    r = dict(rk); r[q0] = rk[q0] + [rk[q0][0]]; out.append(('duplicate', r, gt))
    r = dict(rk); r[q0] = rk[q0][:-1]; out.append(('missing gallery item', r, gt))
    r = dict(rk); r[q0] = [float(rk[q0][0])] + rk[q0][1:]; out.append(('float id', r, gt))
    r = dict(rk); r[q0] = [str(rk[q0][0])] + rk[q0][1:]; out.append(('string id', r, gt))
    r = dict(rk); r[q0] = rk[q0] + [999999]; out.append(('unknown gallery id', r, gt))
    r = dict(rk); r[q0] = rk[q0] + [True]; out.append(('bool id', r, gt))
    r = dict(rk); r[q0] = [False] + rk[q0]; out.append(('bool first', r, gt))
    assert 0 in rk[q0]
    r = dict(rk); r[q0] = rk[q0] + [False]; out.append(('bool equal to an id listed earlier', r, gt))
    r = dict(rk); r[q0] = 0; out.append(('int instead of a list', r, gt))
    r = dict(rk); r[q0] = None; out.append(('null instead of a list', r, gt))
    bad_gt = json.loads(json.dumps(gt)); bad_gt['query'][q0]['person_uid'] = -5
    out.append(('query without match', rk, bad_gt))
    return out


def test_refusals_match_official(tmp_path):
    gt = _gt(3)
    rk = _random_rankings(gt, 3)
    for name, r, g in _mutations(gt, rk):
        gt_path, rs_path = _write(tmp_path, 'gt.json', g), _write(tmp_path, 'rs.json', r)
        with pytest.raises(Exception) as off:
            _official(gt_path, rs_path)
        with pytest.raises(Exception) as ours:
            evaluate_ranking_file(rs_path, gt_path)
        # the official type, or a subclass of it (an unknown gallery id is a KeyError that is also a ValueError)
        assert isinstance(ours.value, type(off.value)), (name, off.value, ours.value)
        assert isinstance(ours.value, KeyError) == isinstance(off.value, KeyError), (name, off.value, ours.value)
        assert type(off.value) in (ValueError, TypeError, KeyError), name


def test_sparse_and_negative_gallery_ids_and_tuple_rankings(tmp_path):
    # Gallery ids far apart or negative are valid for the official evaluator: scored, not refused.
    gt = _gt(4)
    remap = {k: (-7 if i == 0 else 10 ** 9 + 3 * i) for i, k in enumerate(gt['gallery'])}
    gallery = {}
    for k, rec in gt['gallery'].items():
        gallery[str(remap[k])] = dict(rec, bbox_idx=remap[k])
    gt = {'query': gt['query'], 'gallery': gallery}
    rk = _random_rankings(gt, 4)
    gt_path, rs_path = _write(tmp_path, 'gt.json', gt), _write(tmp_path, 'rs.json', rk)
    off = _official(gt_path, rs_path)
    ours = evaluate_ranking_file(rs_path, gt_path)
    assert abs(ours['mAP'] - off['mAP']) <= 1e-9 and abs(ours['rank-1'] - float(off['rank-1'])) <= 1e-9
    assert evaluate_ranking_dicts({k: tuple(v) for k, v in rk.items()}, gt)['mAP'] == ours['mAP']


def test_export_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    nq, ng, dim = 30, 90, 8
    qa, ga = rng.integers(0, 5, nq), rng.integers(0, 5, ng)
    qp, gp = rng.integers(0, 4, nq) + 10 * qa, rng.integers(0, 4, ng) + 10 * ga
    gp[:20] = np.arange(20) % 4 + 10 * ga[:20]
    qf, gf = rng.standard_normal((nq, dim)).astype(np.float32), rng.standard_normal((ng, dim)).astype(np.float32)
    # every query needs a match for the official evaluator
    keep = np.array([np.any((ga == qa[i]) & (gp == qp[i])) for i in range(nq)])
    qf, qa, qp = qf[keep], qa[keep], qp[keep]
    q_bbox = rng.permutation(len(qa)) + 1000      # arbitrary ids: keys need not be list positions
    g_bbox = rng.permutation(ng)
    res, rankings = evaluate_soccernetv3(qf, gf, qp, gp, qa, ga)
    path = export_ranking_results(rankings, q_bbox, g_bbox, qa, ga, str(tmp_path), 'soccernetv3')
    assert re.fullmatch(r'ranking_results_soccernetv3_\d{4}-\d{2}-\d{2}_\d{2}_\d{2}_\d{2}_\d{3}\.json',
                        os.path.basename(path))
    with open(path) as f:
        obj = json.load(f)
    assert list(obj) == [str(k) for k in sorted(q_bbox.tolist())]      # numeric key order
    gt = {'query': {str(b): {'bbox_idx': int(b), 'action_idx': int(a), 'person_uid': int(p)}
                    for b, a, p in zip(q_bbox, qa, qp)},
          'gallery': {str(b): {'bbox_idx': int(b), 'action_idx': int(a), 'person_uid': int(p)}
                      for b, a, p in zip(g_bbox, ga, gp)}}
    gt_path = _write(tmp_path, 'gt.json', gt)
    ours = evaluate_ranking_file(path, gt_path)
    off = _official(gt_path, path)
    assert abs(ours['mAP'] - res.mAP) <= 1e-12
    assert ours['rank-1'] == float(np.float32(res.cmc[0]))
    assert abs(ours['mINP'] - res.mINP) <= 1e-12
    assert abs(off['mAP'] - res.mAP) <= 1e-9 and float(off['rank-1']) == ours['rank-1']
    # a second export in the same millisecond does not overwrite the first
    path2 = export_ranking_results(rankings, q_bbox, g_bbox, qa, ga, str(tmp_path), 'soccernetv3')
    assert path2 != path and os.path.exists(path)


def test_export_validation_errors(tmp_path):
    qa, ga = np.array([0, 1]), np.array([0, 0, 1])
    ok = [np.array([1, 0]), np.array([2])]
    assert ranking_results_to_dict(ok, [5, 3], [10, 11, 12], qa, ga) == {'3': [12], '5': [11, 10]}
    assert all(type(x) is int for x in ranking_results_to_dict(ok, [5, 3], [10, 11, 12], qa, ga)['5'])
    cases = [([np.array([1]), np.array([2])], 'wrong length'), ([np.array([1, 2]), np.array([2])], 'another action'),
             ([np.array([1, 1]), np.array([2])], 'twice'), ([np.array([1, 0])], 'every query'),
             ([np.array([1, 7]), np.array([2])], 'outside')]
    for rankings, msg in cases:
        with pytest.raises(ValueError, match=msg):
            export_ranking_results(rankings, [5, 3], [10, 11, 12], qa, ga, str(tmp_path), 'x')
    with pytest.raises(ValueError, match='duplicate'):
        ranking_results_to_dict(ok, [5, 5], [10, 11, 12], qa, ga)
    with pytest.raises(ValueError, match='no gallery item'):
        ranking_results_to_dict([np.array([0, 1]), np.array([], dtype=np.int64)], [0, 1], [0, 1], [0, 2], [0, 0])
    assert os.listdir(tmp_path) == []


def test_export_never_overwrites(tmp_path, monkeypatch):
    (tmp_path / 'taken.json').write_text('old')
    names = iter(['taken.json', 'taken.json', 'free.json'])
    monkeypatch.setattr(RE, 'ranking_filename', lambda dataset_name: next(names))
    path = export_ranking_results([np.array([0])], [0], [0], [0], [0], str(tmp_path), 'x')
    assert os.path.basename(path) == 'free.json'
    assert (tmp_path / 'taken.json').read_text() == 'old'


def test_export_atomic_on_failure(tmp_path, monkeypatch):
    first = export_ranking_results([np.array([0])], [0], [0], [0], [0], str(tmp_path), 'x')
    before = open(first).read()

    def boom(*a, **k):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        export_ranking_results([np.array([0])], [0], [0], [0], [0], str(tmp_path), 'x')
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [os.path.basename(first)]           # no temp file, no partial file
    assert open(first).read() == before


def _load_cli():
    import importlib.util
    spec = importlib.util.spec_from_file_location('evaluate_soccernetv3_reid',
                                                  os.path.join(ROOT, 'scripts', 'evaluate_soccernetv3_reid.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli(tmp_path, capsys):
    cli = _load_cli()
    gt = _gt(1)
    rk = _random_rankings(gt, 1)
    gt_path, rs_path = _write(tmp_path, 'gt.json', gt), _write(tmp_path, 'rs.json', rk)
    assert cli.main(['-rs', rs_path, '-gt', gt_path]) == 0
    out = capsys.readouterr().out
    assert 'mAP' in out and 'players' in out and '<50' in out
    del rk['0']
    bad_path = _write(tmp_path, 'bad.json', rk)
    assert cli.main(['-rs', bad_path, '-gt', gt_path]) == 1
    err = capsys.readouterr().err
    assert 'refused (ValueError)' in err and "'0'" in err


@pytest.mark.benchmark
def test_cli_subprocess(tmp_path):
    gt = _gt(2)
    gt_path, rs_path = _write(tmp_path, 'gt.json', gt), _write(tmp_path, 'rs.json', _random_rankings(gt, 2))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    ok = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'evaluate_soccernetv3_reid.py'), '-rs',
                         rs_path, '-gt', gt_path], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and 'mAP' in ok.stdout, ok.stderr


def test_synthetic_split_round_trip_with_official(request, tmp_path):
    """Real file layout: the tiny synthetic valid split's bbox_info.json, random features per sample."""
    root = request.getfixturevalue('tiny_root')
    gt_path = os.path.join(root, 'soccernetv3', 'reid', 'valid', 'bbox_info.json')
    with open(gt_path) as f:
        gt = json.load(f)
    q = sorted(gt['query'].values(), key=lambda r: r['bbox_idx'])
    g = sorted(gt['gallery'].values(), key=lambda r: r['bbox_idx'])
    rng = np.random.default_rng(0)
    centres = {}
    feats = [np.stack([centres.setdefault(r['person_uid'], rng.standard_normal(16)) + rng.standard_normal(16)
                       for r in recs]).astype(np.float32) for recs in (q, g)]
    col = {k: [np.array([r[k] for r in recs]) for recs in (q, g)] for k in ('bbox_idx', 'action_idx', 'person_uid')}
    res, rankings = evaluate_soccernetv3(feats[0], feats[1], *col['person_uid'], *col['action_idx'])
    path = export_ranking_results(rankings, *col['bbox_idx'], *col['action_idx'], str(tmp_path), 'soccernetv3')
    ours = evaluate_ranking_file(path, gt_path)
    off = _official(gt_path, path)
    assert res.num_valid_queries == len(q)
    assert abs(ours['mAP'] - off['mAP']) <= 1e-9 and abs(ours['mAP'] - res.mAP) <= 1e-12
    assert ours['rank-1'] == float(off['rank-1'])
