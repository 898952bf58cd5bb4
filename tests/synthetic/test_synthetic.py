"""The synthetic SoccerNet-v3 ReID generator (torchreid/data/synthetic)."""
import glob
import hashlib
import json
import os
import os.path as osp
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from torchreid.soccernet_format import CLASSES, parse_filename, read_ground_truth
from torchreid.synthetic import (IDENTITIES_NAME, META_NAME, PRESETS, Preset, SplitSize, generate_dataset,
                                      plan_dataset, plan_statistics)
from torchreid.synthetic.cli import main as cli_main

# Smaller than 'tiny': for the tests that generate several times.
MINI = Preset(name='mini', train=SplitSize(1, 2), valid=SplitSize(1, 2), test=SplitSize(1, 1),
              challenge=SplitSize(1, 1), height_range=(16, 32), crowd=0.4, render_height=(32, 32))


@pytest.fixture(scope='module')
def tiny(tiny_root):
    """The session's tiny set (tests/conftest.py); generating again returns at once."""
    return generate_dataset(tiny_root, preset='tiny', seed=0)


def _labelled(reid, split, subset=None):
    """Parsed samples of a labelled split folder (relative_path from the folder layout)."""
    base = osp.join(reid, split, subset) if subset else osp.join(reid, split)
    samples = []
    for path in sorted(glob.glob(osp.join(base, '*', '*', '*', '*', '*.png'))):
        rel = osp.relpath(osp.dirname(path), base).replace(os.sep, '/')
        samples.append(parse_filename(path, relative_path=rel))
    return samples


def _all_pngs(reid):
    return sorted(osp.relpath(p, reid) for p in glob.glob(osp.join(reid, '**', '*.png'), recursive=True))


def test_layout_matches_the_real_release(tiny):
    assert tiny.endswith(osp.join('soccernetv3', 'reid'))
    # the release's ground-truth names (test/test_bbox_info.json as in sn-reid's README and test.zip)
    for path in ('train/train_bbox_info.json', 'valid/bbox_info.json', 'test/test_bbox_info.json',
                 'challenge_labels/bbox_info.json', META_NAME, IDENTITIES_NAME):
        assert osp.isfile(osp.join(tiny, path)), path
    assert not osp.exists(osp.join(tiny, 'test', 'bbox_info.json'))
    pngs = _all_pngs(tiny)
    assert pngs
    for rel in pngs:
        parts = rel.split(os.sep)
        if parts[0] == 'train':
            assert len(parts) == 6, rel                     # train/champ/season/game/action/x.png
        elif parts[0] in ('valid', 'test'):
            assert len(parts) == 7 and parts[1] in ('query', 'gallery'), rel
        else:
            assert parts[0] == 'challenge' and len(parts) == 3 and parts[1] in ('query', 'gallery'), rel
    # the game folder looks like the real one: '<date> - <time> <home> <n> - <m> <away>'
    game = next(p for p in pngs if p.startswith('train')).split(os.sep)[3]
    assert ' - ' in game and game[:4].isdigit()
    # no labels beside the challenge images
    assert not glob.glob(osp.join(tiny, 'challenge', '*.json'))


@pytest.mark.parametrize('split', ['train', 'valid', 'test'])
def test_names_parse_and_sizes_are_real(tiny, split):
    subsets = [None] if split == 'train' else ['query', 'gallery']
    for subset in subsets:
        samples = _labelled(tiny, split, subset)
        assert samples
        for s in samples:
            assert s.clazz in CLASSES and '-' not in s.UAI
            with Image.open(s.img_path) as im:
                assert im.size == (s.width, s.height), s.img_path
                assert im.mode == 'RGB'


def test_bbox_idx_contiguous_and_action_order(tiny):
    for split, subset in [('train', None), ('valid', 'query'), ('valid', 'gallery'), ('test', 'query'),
                          ('test', 'gallery')]:
        samples = sorted(_labelled(tiny, split, subset), key=lambda s: s.bbox_idx)
        assert [s.bbox_idx for s in samples] == list(range(len(samples))), (split, subset)
        actions = [s.action_idx for s in samples]
        assert actions == sorted(actions), 'bbox_idx must follow action order (gallery of an action contiguous)'
    for subset in ('query', 'gallery'):
        samples = sorted((parse_filename(p) for p in glob.glob(osp.join(tiny, 'challenge', subset, '*.png'))),
                         key=lambda s: s.bbox_idx)
        assert [s.bbox_idx for s in samples] == list(range(len(samples)))
        assert all(not s.labelled for s in samples)   # 3-field names


def test_action_idx_runs_per_split_and_frame_idx_per_frame(tiny):
    for split in ('train', 'valid', 'test'):
        samples = _labelled(tiny, split) if split == 'train' else (
            _labelled(tiny, split, 'query') + _labelled(tiny, split, 'gallery'))
        actions = sorted({s.action_idx for s in samples})
        assert actions == list(range(len(actions)))
        # one action folder per action_idx and vice versa
        assert len({s.relative_path for s in samples}) == len(actions)
        # a frame belongs to one action
        frame_action = {}
        for s in samples:
            assert frame_action.setdefault(s.frame_idx, s.action_idx) == s.action_idx


def test_every_query_has_a_match_in_its_action(tiny):
    for split in ('valid', 'test'):
        queries, gallery = _labelled(tiny, split, 'query'), _labelled(tiny, split, 'gallery')
        assert queries and gallery
        g_keys = {(g.action_idx, g.person_uid) for g in gallery}
        for q in queries:
            assert (q.action_idx, q.person_uid) in g_keys, q.img_path
        # queries come from the action frame: one frame per action, and none of their frames is a replay
        q_frames = defaultdict(set)
        for q in queries:
            q_frames[q.action_idx].add(q.frame_idx)
        assert all(len(f) == 1 for f in q_frames.values())
        assert len({q.person_uid for q in queries}) == len(queries)   # one query per identity
        for g in gallery:   # a gallery box from the action frame has no replay match (else it would be a query)
            if g.frame_idx in q_frames[g.action_idx]:
                assert g.id == 'None' or not any(
                    x.person_uid == g.person_uid and x.frame_idx != g.frame_idx for x in gallery)


def test_uids_unique_across_splits_and_in_one_action(tiny):
    owner = {}
    for split in ('train', 'valid', 'test'):
        samples = _labelled(tiny, split) if split == 'train' else (
            _labelled(tiny, split, 'query') + _labelled(tiny, split, 'gallery'))
        for s in samples:
            key = owner.setdefault(s.person_uid, (split, s.action_idx))
            assert key == (split, s.action_idx), f'uid {s.person_uid} in {key} and {(split, s.action_idx)}'
    challenge = read_ground_truth(osp.join(tiny, 'challenge_labels', 'bbox_info.json'))
    for subset in ('query', 'gallery'):
        for r in challenge[subset].values():
            key = owner.setdefault(r['person_uid'], ('challenge', r['action_idx']))
            assert key == ('challenge', r['action_idx'])


def test_jersey_ids_follow_the_rule(tiny):
    samples = _labelled(tiny, 'train')
    by_uid = defaultdict(list)
    for s in samples:
        by_uid[s.person_uid].append(s)
    kinds = set()
    for uid, own in by_uid.items():
        ids = {s.id for s in own}
        assert len(ids) == 1, f'uid {uid} has several ids {ids}'
        jersey = ids.pop()
        if jersey == 'None':
            assert len({s.frame_idx for s in own}) == 1
            kinds.add('None')
        elif jersey.isdigit():
            assert own[0].clazz.startswith(('Player', 'Goalkeeper'))
            kinds.add('number')
        else:
            assert jersey.isalpha() and len({s.frame_idx for s in own}) > 1
            kinds.add('letter')
    assert kinds == {'None', 'number', 'letter'}


def test_ground_truth_equals_the_files(tiny):
    for split, gt_name in (('valid', 'bbox_info.json'), ('test', 'test_bbox_info.json')):
        gt = read_ground_truth(osp.join(tiny, split, gt_name))
        for subset in ('query', 'gallery'):
            files = {str(s.bbox_idx): s.to_gt_record() for s in _labelled(tiny, split, subset)}
            assert files == gt[subset], (split, subset)
    with open(osp.join(tiny, 'train', 'train_bbox_info.json')) as f:
        train_gt = json.load(f)
    files = {str(s.bbox_idx): s.to_gt_record() for s in _labelled(tiny, 'train')}
    assert files == train_gt
    # challenge: files carry bbox_idx, action_idx and size only; the labels file says the rest
    labels = read_ground_truth(osp.join(tiny, 'challenge_labels', 'bbox_info.json'))
    for subset in ('query', 'gallery'):
        files = {s.bbox_idx: s for s in (parse_filename(p) for p in
                                         glob.glob(osp.join(tiny, 'challenge', subset, '*.png')))}
        assert set(map(int, labels[subset])) == set(files)
        for key, rec in labels[subset].items():
            s = files[int(key)]
            assert (rec['action_idx'], rec['height'], rec['width']) == (s.action_idx, s.height, s.width)
        queries = labels['query'].values()
        g_keys = {(r['action_idx'], r['person_uid']) for r in labels['gallery'].values()}
        assert all((q['action_idx'], q['person_uid']) in g_keys for q in queries)


def test_roster_person_recurs_under_new_uids(tiny):
    with open(osp.join(tiny, IDENTITIES_NAME)) as f:
        identities = json.load(f)
    train = _labelled(tiny, 'train')
    action_of = {s.person_uid: s.action_idx for s in train}
    actions_per_person = defaultdict(set)
    for uid, person in identities['train'].items():
        actions_per_person[person].add(action_of[int(uid)])
    recurring = [p for p, a in actions_per_person.items() if len(a) >= 3]
    assert recurring, 'some roster person must appear in several actions (each time a new uid)'
    # teams swap left/right at half time: one roster player is labelled with both sides somewhere
    clazz_of = {s.person_uid: s.clazz for s in train}
    sides = defaultdict(set)
    for uid, person in identities['train'].items():
        if clazz_of[int(uid)].startswith('Player'):
            sides[person].add(clazz_of[int(uid)])
    assert any(len(s) == 2 for s in sides.values())


def test_classes_and_statistics_of_demo_plan():
    stats = plan_statistics(plan_dataset(PRESETS['demo'], 0))
    for split in ('valid', 'test', 'challenge'):
        s = stats[split]
        assert 60 <= s['actions'] <= 80
        assert 5.5 <= s['queries_per_action'] <= 7.8, s['queries_per_action']
        assert 16.5 <= s['gallery_per_action'] <= 23.0, s['gallery_per_action']
    assert 3000 <= stats['train']['images'] <= 5000
    shares = defaultdict(float)
    n = 0
    for split in stats.values():
        for clazz, share in split['class_share'].items():
            shares[clazz] += share * split['images']
        n += split['images']
    players = (shares['Player_team_left'] + shares['Player_team_right']) / n
    gks = (shares['Goalkeeper_team_left'] + shares['Goalkeeper_team_right']) / n
    refs = (shares['Main_referee'] + shares['Side_referee']) / n
    assert 0.84 <= players <= 0.91 and 0.025 <= gks <= 0.07 and 0.03 <= refs <= 0.07
    assert 0.005 <= shares['Staff_members'] / n <= 0.035
    # thumbnails vary several-fold in size
    lo, hi = stats['valid']['height_range']
    assert hi >= 3 * lo


def test_images_look_like_players_on_grass(tiny):
    """Green dominates the border (grass), the centre is not grass (a person in a kit)."""
    paths = sorted(glob.glob(osp.join(tiny, 'valid', 'gallery', '*', '*', '*', '*', '*.png')))[:40]
    border_green, centre_diff = 0, 0
    for p in paths:
        a = np.asarray(Image.open(p), dtype=np.float32)
        border = np.concatenate([a[:, :2].reshape(-1, 3), a[:, -2:].reshape(-1, 3)])
        if np.median(border[:, 1]) > np.median(border[:, 0]) and np.median(border[:, 1]) > np.median(border[:, 2]):
            border_green += 1
        h, w = a.shape[:2]
        centre = a[h // 4: 3 * h // 4, w // 3: 2 * w // 3].reshape(-1, 3)
        if np.abs(centre.mean(0) - border.mean(0)).sum() > 25:
            centre_diff += 1
    assert border_green >= 0.8 * len(paths)
    assert centre_diff >= 0.8 * len(paths)


def test_teammates_share_the_kit_and_teams_differ():
    """Shirt colours: a team shares one; the two teams, goalkeepers and referees are far apart."""
    plan = plan_dataset(PRESETS['tiny'], 3)
    for game in plan.splits['train'].games:
        shirts = {k: np.array(v['shirt'], float) for k, v in game.kits.items()}
        assert np.linalg.norm(shirts['team0'] - shirts['team1']) > 100
        for gk in ('gk0', 'gk1'):
            assert min(np.linalg.norm(shirts[gk] - shirts[t]) for t in ('team0', 'team1')) > 60
        numbers = [m.number for m in game.members if m.team == 0 and m.number >= 0]
        assert len(numbers) == len(set(numbers))   # jersey numbers unique within a team


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_dataset(str(tmp_path / 'a'), preset=MINI, seed=5)
    b = generate_dataset(str(tmp_path / 'b'), preset=MINI, seed=5)
    c = generate_dataset(str(tmp_path / 'c'), preset=MINI, seed=6)
    files_a, files_b = _all_pngs(a), _all_pngs(b)
    assert files_a == files_b
    for rel in files_a[::7]:
        with open(osp.join(a, rel), 'rb') as fa, open(osp.join(b, rel), 'rb') as fb:
            assert hashlib.sha1(fa.read()).digest() == hashlib.sha1(fb.read()).digest(), rel
    for name in ('valid/bbox_info.json', 'test/test_bbox_info.json', 'challenge_labels/bbox_info.json',
                 'train/train_bbox_info.json', META_NAME, IDENTITIES_NAME):
        with open(osp.join(a, name), 'rb') as fa, open(osp.join(b, name), 'rb') as fb:
            assert fa.read() == fb.read()
    assert _all_pngs(c) != files_a


def test_parallel_rendering_gives_the_same_bytes(tmp_path):
    a = generate_dataset(str(tmp_path / 'a'), preset=MINI, seed=1, workers=1)
    b = generate_dataset(str(tmp_path / 'b'), preset=MINI, seed=1, workers=2)
    files = _all_pngs(a)
    assert files == _all_pngs(b)
    for rel in files[::5]:
        with open(osp.join(a, rel), 'rb') as fa, open(osp.join(b, rel), 'rb') as fb:
            assert fa.read() == fb.read(), rel


def test_rerun_is_a_noop_and_mismatch_needs_overwrite(tmp_path):
    root = str(tmp_path)
    path = generate_dataset(root, preset=MINI, seed=0)
    meta_path = osp.join(path, META_NAME)
    mtime = os.stat(meta_path).st_mtime_ns
    before = _all_pngs(path)
    assert generate_dataset(root, preset=MINI, seed=0) == path
    assert os.stat(meta_path).st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match='seed'):
        generate_dataset(root, preset=MINI, seed=1)
    generate_dataset(root, preset=MINI, seed=1, overwrite=True)
    with open(meta_path) as f:
        assert json.load(f)['seed'] == 1
    assert not [d for d in os.listdir(osp.dirname(path)) if d.startswith('.reid')], 'temporary folders left'
    assert _all_pngs(path) != before   # the seed-1 set replaced the seed-0 one


def test_folder_without_marker_is_never_deleted(tmp_path):
    root = str(tmp_path)
    reid = osp.join(root, 'soccernetv3', 'reid')
    os.makedirs(osp.join(reid, 'train'))
    with open(osp.join(reid, 'train', 'half.png'), 'wb') as f:
        f.write(b'not a png')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match='never deleted'):
            generate_dataset(root, preset=MINI, seed=0, overwrite=overwrite)
    with open(osp.join(reid, 'train', 'half.png'), 'rb') as f:
        assert f.read() == b'not a png'
    assert os.listdir(osp.dirname(reid)) == ['reid']   # no temporary folder either


def test_interrupted_generation_leaves_nothing_complete(tmp_path, monkeypatch):
    from torchreid.synthetic import generator

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generator, '_write_labels', boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(str(tmp_path), preset=MINI, seed=0)
    parent = osp.join(str(tmp_path), 'soccernetv3')
    assert not osp.exists(osp.join(parent, 'reid'))
    assert os.listdir(parent) == []   # the temporary folder is gone too


def test_bad_arguments_are_explained(tmp_path):
    with pytest.raises(ValueError, match='unknown synthetic preset'):
        generate_dataset(str(tmp_path), preset='huge')
    with pytest.raises(ValueError, match='seed'):
        generate_dataset(str(tmp_path), preset=MINI, seed=-1)
    with pytest.raises(ValueError, match='height_range'):
        Preset(name='bad', train=SplitSize(1, 1), valid=SplitSize(1, 1), test=SplitSize(1, 1),
               challenge=SplitSize(1, 1), height_range=(50, 40))
    with pytest.raises(ValueError, match='actions >= games'):
        SplitSize(3, 2)


def test_preset_scaling_and_full_statistics():
    full = PRESETS['full']
    assert (full.valid.actions, full.test.actions, full.challenge.actions) == (1751, 1715, 1310)
    small = full.scaled(0.01)
    assert small.valid.actions == 18 and small.valid.games == 1
    stats = plan_statistics(plan_dataset(small, 0))
    assert stats['train']['actions'] == small.train.actions
    assert 18 <= stats['train']['boxes_per_action'] <= 36


def test_cli_dry_run_and_generate(tmp_path, capsys):
    assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--dry-run']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['valid']['actions'] == PRESETS['tiny'].valid.actions
    assert cli_main(['--root', str(tmp_path), '--preset', 'tiny', '--scale', '0.5', '--seed', '2']) == 0
    with open(osp.join(str(tmp_path), 'soccernetv3', 'reid', META_NAME)) as f:
        meta = json.load(f)
    assert meta['seed'] == 2 and meta['preset']['name'] == 'tinyx0.5'
