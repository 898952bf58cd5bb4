"""Broken ranking files and broken ground truths are refused as the official SoccerNet evaluator refuses them
(same exception types), each message naming the file and the query at fault; a broken ground truth is never
blamed on the submission; ``scripts/evaluate_soccernetv3_reid.py`` prints one line and exits non-zero.
Each test records (fault, outcome, lost files) with ``record_property`` (kept by ``pytest --junitxml``)."""
import contextlib
import importlib.util
import io
import json
import os.path as osp

import pytest

from SoccerNet.Evaluation.ReIdentification import evaluate as official_evaluate

from torchreid.metrics.submission import evaluate_ranking_file
from torchreid.soccernet_format import GroundTruthError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _record(record_property, fault, outcome, lost_files=0):
    record_property('fault', fault)
    record_property('outcome', outcome)
    record_property('lost_files', lost_files)


def _script():
    spec = importlib.util.spec_from_file_location('evaluate_soccernetv3_reid',
                                                  osp.join(ROOT, 'scripts', 'evaluate_soccernetv3_reid.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ground_truth():
    """Two actions; every query has a match in its action's gallery."""
    query = {'0': {'bbox_idx': 0, 'action_idx': 0, 'person_uid': 1},
             '1': {'bbox_idx': 1, 'action_idx': 0, 'person_uid': 2},
             '2': {'bbox_idx': 2, 'action_idx': 1, 'person_uid': 5}}
    gallery = {str(i): {'bbox_idx': i, 'action_idx': a, 'person_uid': p}
               for i, (a, p) in enumerate([(0, 1), (0, 2), (0, 3), (1, 5), (1, 6)])}
    return {'query': query, 'gallery': gallery}


GOOD = {'0': [0, 1, 2], '1': [1, 2, 0], '2': [4, 3]}


def _files(tmp_path, ranking_text, gt):
    rs, gt_path = tmp_path / 'ranking.json', tmp_path / 'bbox_info.json'
    rs.write_text(ranking_text if isinstance(ranking_text, str) else json.dumps(ranking_text))
    gt_path.write_text(gt if isinstance(gt, str) else json.dumps(gt))
    return str(rs), str(gt_path)


def _official_error(rs, gt):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            official_evaluate(gt, rs)
    except BaseException as err:   # RecursionError included
        return err
    return None


def _run_script(rs, gt, capsys):
    status = _script().main(['-rs', rs, '-gt', gt])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 1, err    # one message, no traceback
    return status, err.strip()


def test_good_submission_scores_as_official(tmp_path, capsys, record_property):
    """fault: none (control) -> expected: scored, the official mAP, exit 0."""
    rs, gt = _files(tmp_path, GOOD, _ground_truth())
    with contextlib.redirect_stdout(io.StringIO()):
        official = official_evaluate(gt, rs)
    assert evaluate_ranking_file(rs, gt)['mAP'] == pytest.approx(official['mAP'], abs=1e-12)
    assert _run_script(rs, gt, capsys) == (0, '')
    _record(record_property, 'none', 'scored')


@pytest.mark.parametrize('value', [None, 5, 'abc'])
def test_query_mapped_to_a_non_list(tmp_path, value, capsys, record_property):
    """fault: a query mapped to null / a number / a string -> expected: the official TypeError, naming it."""
    rs, gt = _files(tmp_path, {**GOOD, '1': value}, _ground_truth())
    official = _official_error(rs, gt)
    with pytest.raises(TypeError) as err:
        evaluate_ranking_file(rs, gt)
    assert type(official) is TypeError
    msg = str(err.value)
    assert rs in msg and "query '1'" in msg and ('not a list' in msg or 'not an integer' in msg)
    status, line = _run_script(rs, gt, capsys)
    assert status == 1 and line.startswith('Submission refused (TypeError)') and "query '1'" in line
    _record(record_property, f'query mapped to {value!r}', 'refused: TypeError naming the query')


def test_deeply_nested_ranking_file(tmp_path, capsys, record_property):
    """fault: 200,000-deep nesting in the ranking file -> expected: ValueError naming the file, exit 1."""
    deep = '{"0": ' + '[' * 200_000 + ']' * 200_000 + '}'
    rs, gt = _files(tmp_path, deep, _ground_truth())
    assert isinstance(_official_error(rs, gt), RecursionError)    # the official evaluator refuses it too
    with pytest.raises(ValueError, match='nested too deeply') as err:
        evaluate_ranking_file(rs, gt)
    assert rs in str(err.value) and not isinstance(err.value, GroundTruthError)
    status, line = _run_script(rs, gt, capsys)
    assert status == 1 and 'Submission refused' in line and rs in line
    _record(record_property, '200k-deep nesting', 'refused: ValueError naming the ranking file')


@pytest.mark.parametrize('fault', ['cut_in_half', 'deep', 'not_an_object', 'missing'])
def test_broken_ground_truth_is_not_blamed_on_the_submission(tmp_path, fault, capsys, record_property):
    """fault: ground truth cut / too deep / a list / missing -> expected: 'Ground truth refused' naming it, exit 2."""
    text = json.dumps(_ground_truth())
    gt_text = {'cut_in_half': text[:len(text) // 2], 'deep': '[' * 200_000 + ']' * 200_000,
               'not_an_object': '[1, 2]', 'missing': ''}[fault]
    rs, gt = _files(tmp_path, GOOD, gt_text)
    if fault == 'missing':
        gt = gt + '.gone'
    expected = FileNotFoundError if fault == 'missing' else GroundTruthError
    with pytest.raises(expected) as err:
        evaluate_ranking_file(rs, gt)
    assert gt in str(err.value)
    status, line = _run_script(rs, gt, capsys)
    assert status == 2 and line.startswith('Ground truth refused') and gt in line
    _record(record_property, f'ground truth {fault}', 'refused: blamed on the ground truth, exit 2')


@pytest.mark.parametrize('subset, field, value', [
    ('gallery', 'bbox_idx', '3'), ('query', 'person_uid', '1'), ('gallery', 'person_uid', '2'),
    ('gallery', 'action_idx', '0'), ('query', 'action_idx', 0.0), ('gallery', 'person_uid', True),
    ('query', 'person_uid', 2 ** 70), ('gallery', 'person_uid', [1])])
def test_ground_truth_with_mixed_id_types(tmp_path, subset, field, value, capsys, record_property):
    """fault: a ground truth mixing int and str (or float, bool, list) ids -> expected: GroundTruthError naming it."""
    gt_data = _ground_truth()
    key = '3' if subset == 'gallery' else '0'
    gt_data[subset][key][field] = value
    rs, gt = _files(tmp_path, GOOD, gt_data)
    with pytest.raises(GroundTruthError) as err:     # never a RuntimeError, never a silent score
        evaluate_ranking_file(rs, gt)
    msg = str(err.value)
    assert gt in msg and f"{subset}['{key}'].{field} must be an integer" in msg
    status, line = _run_script(rs, gt, capsys)
    assert status == 2 and 'Ground truth refused' in line
    _record(record_property, f'ground truth {subset}.{field}={value!r}', 'refused: GroundTruthError')


def test_query_without_match_is_the_ground_truth_fault(tmp_path, capsys, record_property):
    """fault: a query whose identity is not in its action's gallery -> expected: the official ValueError, as a
    GroundTruthError naming the ground truth and the query."""
    gt_data = _ground_truth()
    gt_data['query']['2']['person_uid'] = 9
    rs, gt = _files(tmp_path, GOOD, gt_data)
    assert type(_official_error(rs, gt)) is ValueError
    with pytest.raises(GroundTruthError) as err:
        evaluate_ranking_file(rs, gt)
    assert gt in str(err.value) and "query '2'" in str(err.value) and rs not in str(err.value)
    assert _run_script(rs, gt, capsys)[0] == 2
    _record(record_property, 'query without a match in the ground truth', 'refused: blamed on the ground truth')


@pytest.mark.parametrize('name, ranking', [
    ('null file', None),
    ('number file', 3),
    ('list file', [[0, 1, 2]]),
    ('missing query', {'0': [0, 1, 2], '1': [1, 2, 0]}),
    ('float id', {**GOOD, '1': [1.0, 2, 0]}),
    ('string id', {**GOOD, '2': ['4', 3]}),
    ('repeat', {**GOOD, '0': [0, 0, 1, 2]}),
    ('unknown id', {**GOOD, '0': [0, 1, 2, 99]}),
    ('other action', {**GOOD, '2': [4, 3, 0]}),
    ('incomplete', {**GOOD, '1': [1, 2]}),
])
def test_bad_submissions_refused_like_the_official_evaluator(tmp_path, name, ranking, capsys, record_property):
    """fault: a ranking breaking the rule -> expected: the official exception type, naming the query and file."""
    rs, gt = _files(tmp_path, ranking, _ground_truth())
    official = _official_error(rs, gt)
    assert official is not None
    with pytest.raises(Exception) as err:
        evaluate_ranking_file(rs, gt)
    assert isinstance(err.value, type(official)) and not isinstance(err.value, GroundTruthError)
    assert rs in str(err.value) and ('query' in str(err.value) or 'must be a dict' in str(err.value))
    status, line = _run_script(rs, gt, capsys)
    assert status == 1 and line.startswith('Submission refused')
    _record(record_property, f'submission: {name}', f'refused: {type(err.value).__name__}')
