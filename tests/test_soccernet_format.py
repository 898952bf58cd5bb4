"""The SoccerNet-v3 name and ground-truth format (torchreid/soccernet_format.py)."""
import json

import pytest

from torchreid.soccernet_format import (
    CLASSES, FilenameError, GroundTruthError, SoccerNetSample, format_filename, gt_split_to_samples, parse_filename,
    read_ground_truth, write_ground_truth)

README_EXAMPLE = '54404-1940-33397-5089-Player_team_right-9-014r002_00858c3b0003-775x449.png'


def test_parse_readme_example_every_field():
    s = parse_filename('/data/train/a/b/c/1/' + README_EXAMPLE, relative_path='a/b/c/1')
    assert (s.bbox_idx, s.action_idx, s.person_uid, s.frame_idx) == (54404, 1940, 33397, 5089)
    assert (s.clazz, s.id, s.UAI) == ('Player_team_right', '9', '014r002_00858c3b0003')
    assert (s.height, s.width) == (775, 449)  # height first
    assert s.relative_path == 'a/b/c/1'
    assert s.img_path.endswith(README_EXAMPLE)
    assert s.labelled


@pytest.mark.parametrize('jersey', ['None', 'a', 'B', '10'])
def test_id_may_be_number_letter_or_none(jersey):
    s = parse_filename(f'0-0-1-2-Main_referee-{jersey}-x_y_z-50x20.png')
    assert s.id == jersey and s.clazz == 'Main_referee'


def test_challenge_name_has_hidden_labels():
    s = parse_filename('12-3-130x63.png')
    assert (s.bbox_idx, s.action_idx, s.height, s.width) == (12, 3, 130, 63)
    assert not s.labelled and s.person_uid is None and s.clazz is None
    with pytest.raises(GroundTruthError, match='hidden labels'):
        s.to_gt_record()


@pytest.mark.parametrize('name, rule', [
    ('1-2-3-4-Player_team_left-9-uai-50x20.jpg', '.png'),
    ('1-2-3-4-Player_team_left-9-50x20.png', "expected 8 '-'-separated fields"),
    ('1-2-3-4-Player-team-left-9-uai-50x20.png', "expected 8 '-'-separated fields"),
    ('x-2-3-4-Player_team_left-9-uai-50x20.png', 'bbox_idx must be a non-negative integer'),
    ('1-2-u7-4-Player_team_left-9-uai-50x20.png', 'person_uid must be a non-negative integer'),
    ('1-2-3-4-Ball-9-uai-50x20.png', "unknown class 'Ball'"),
    ('1-2-3-4-Player_team_left--uai-50x20.png', 'id field is empty'),
    ('1-2-3-4-Player_team_left-9--50x20.png', 'UAI field is empty'),
    ('1-2-3-4-Player_team_left-9-uai-50by20.png', '<H>x<W>'),
    ('1-2-3-4-Player_team_left-9-uai-0x20.png', 'must be positive'),
    ('1-2-50x20x3.png', '<H>x<W>'),
])
def test_malformed_names_are_refused_with_the_rule(name, rule):
    with pytest.raises(FilenameError) as err:
        parse_filename(name)
    assert name in str(err.value) and rule in str(err.value)


def test_format_is_inverse_of_parse():
    for clazz in CLASSES:
        name = f'7-1-99-5-{clazz}-b-uai_1_2-64x30.png'
        assert format_filename(parse_filename(name)) == name
    s = parse_filename(README_EXAMPLE)
    assert format_filename(s, hide_labels=True) == '54404-1940-775x449.png'


def test_format_refuses_dash_in_text_fields():
    s = SoccerNetSample(bbox_idx=0, action_idx=0, height=10, width=5, person_uid=1, frame_idx=0,
                        clazz='Main_referee', id='9', UAI='bad-uai')
    with pytest.raises(FilenameError, match='UAI'):
        format_filename(s)


def _samples():
    return [parse_filename(f'{i}-{i // 2}-{100 + i}-{i}-Player_team_left-{i}-u_{i}-{40 + i}x{20 + i}.png',
                           relative_path=f'league/2015-2016/game/{i // 2}') for i in range(4)]


def test_ground_truth_round_trip(tmp_path):
    query, gallery = _samples()[:2], _samples()
    path = write_ground_truth(str(tmp_path / 'valid' / 'bbox_info.json'), query, gallery)
    data = read_ground_truth(path)
    assert list(data['query']) == ['0', '1'] and list(data['gallery']) == ['0', '1', '2', '3']
    assert data['gallery']['3'] == {'bbox_idx': 3, 'action_idx': 1, 'person_uid': 103, 'frame_idx': 3,
                                    'clazz': 'Player_team_left', 'id': '3', 'UAI': 'u_3',
                                    'relative_path': 'league/2015-2016/game/1', 'height': 43, 'width': 23}
    back = gt_split_to_samples(data['gallery'], root='/r')
    assert [format_filename(s) for s in back] == [format_filename(s) for s in gallery]
    assert back[1].img_path == '/r/league/2015-2016/game/0/' + format_filename(gallery[1])


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.pop('gallery'), '"query" and "gallery"'),
    (lambda d: d['query']['0'].pop('person_uid'), 'lacks field(s) person_uid'),
    (lambda d: d['query']['0'].update(action_idx='3'), 'action_idx must be an integer'),
    (lambda d: d['query'].update({'5': d['query']['0']}), "key '5' differs from its record bbox_idx 0"),
])
def test_bad_ground_truth_is_refused(tmp_path, mutate, message):
    path = tmp_path / 'gt.json'
    write_ground_truth(str(path), _samples()[:1], _samples())
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(GroundTruthError) as err:
        read_ground_truth(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_or_broken_ground_truth_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='ground-truth file not found'):
        read_ground_truth(str(tmp_path / 'nope.json'))
    (tmp_path / 'broken.json').write_text('{"query": ')
    with pytest.raises(GroundTruthError, match='not valid JSON'):
        read_ground_truth(str(tmp_path / 'broken.json'))


def test_ranking_rule_reports_the_first_violation_in_the_official_order():
    import numpy as np

    from torchreid.soccernet_format import GroundTruthKeyError, find_ranking_violation

    # action 7: gallery positions 0, 1, 2; action 9: 3, 4; action 5 has no gallery
    g_actions = np.array([7, 7, 7, 9, 9])
    q_actions = np.array([7, 9, 7])
    q_pids, g_pids = np.array([1, 2, 3]), np.array([1, 0, 3, 2, 5])

    def check(lists, **kw):
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])])
        flat = np.array([x for r in lists for x in r], dtype=np.int64)
        kw.setdefault('q_pids', q_pids)
        return find_ranking_violation(offsets, flat, kw.pop('qa', q_actions), g_actions, g_pids=g_pids, **kw)

    good = [[2, 0, 1], [4, 3], [0, 1, 2]]
    assert check(good) is None
    # per entry, in list order: a repeat before a foreign item is reported as the repeat
    v = check([[0, 0, 3], [4, 3], [0, 1, 2]])
    assert (v.query, v.kind, v.entry) == (0, 'duplicate', 1)
    v = check([[0, 3, 0], [4, 3], [0, 1, 2]])
    assert (v.query, v.kind, v.entry) == (0, 'other_action', 1)
    v = check([[0, -1, 1], [4, 3], [0, 1, 2]])                 # -1: no gallery item
    assert (v.kind, v.entry) == ('unknown', 1)
    v = check(good, not_integer=np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool))
    assert (v.query, v.kind, v.entry) == (1, 'not_integer', 4)
    # queries in order: the first failing one wins, whatever comes later
    v = check([[2, 0, 1], [4], [0, 0, 2]])
    assert (v.query, v.kind, v.item) == (1, 'incomplete', 3)
    v = check(good, present=np.array([True, True, False]))
    assert (v.query, v.kind) == (2, 'missing')
    v = check([[2, 0, 1], [], [0, 1, 2]], qa=np.array([7, 5, 7]))
    assert (v.query, v.kind) == (1, 'no_gallery')
    # the official KeyError, blamed on the ground truth (no ranking of that query could be accepted)
    assert isinstance(v.error('x', str), GroundTruthKeyError) and isinstance(v.error('x', str), KeyError)
    assert isinstance(v.error('x', str), GroundTruthError) and v.ground_truth_fault
    # complete and in order, but query 1's identity (2) ranked nowhere in its list: no match
    v = check(good, q_pids=np.array([1, 9, 3]))
    assert (v.query, v.kind) == (1, 'no_match')
    assert type(v.error('x', str)) is GroundTruthError and v.ground_truth_fault
    assert 'gallery item 3' in str(check([[2, 0, 1], [4], [0, 1, 2]]).error('q1', lambda p: f'gallery item {p}'))
