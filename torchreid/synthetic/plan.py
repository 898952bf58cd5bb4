"""Plan a synthetic SoccerNet-v3 ReID set: games, rosters, actions, frames and boxes, without drawing.

Planning is cheap (no pixels), deterministic given (preset, seed), and fixes everything that appears in
file names and ground truth: indices, classes, jersey ids, thumbnail sizes, views. Rendering
(:mod:`.render`) then only turns a planned box into pixels, with its own per-box random generator, so
images can be drawn in any order or in parallel and stay byte-identical.

How an action is built, following the real data:

* each game has a fixed roster (2 teams of 18 outfield players and 2 goalkeepers, 3 referees, staff);
  the same roster person turns up in many actions of the game, each time under a new ``person_uid``;
* an action has one action frame (the broadcast wide view: small boxes) and 1-4 replay frames
  (close-ups: larger boxes, other light, other viewpoints);
* queries are action-frame boxes of persons seen again in a replay; the gallery holds every replay box and
  the action-frame boxes without a match;
* ``id`` is the jersey number when it is legible in some frame of the action (a back view, or a large
  front view), else ``'None'`` for a person seen in a single frame, else a letter ``a, b, ...``;
* "left"/"right" teams swap at half time, as the sides of the pitch do.
"""
import dataclasses
import logging
import string
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from .presets import SPLITS, Preset

logger = logging.getLogger(__name__)

__all__ = ['Member', 'BoxPlan', 'FramePlan', 'ActionPlan', 'GamePlan', 'SplitPlan', 'DatasetPlan',
           'plan_dataset', 'plan_statistics']

# --- per-action statistics, tuned so that crowd=1.0 matches the real valid split (see plan_statistics) ---
ACTION_FRAME_PERSONS = 11.6     # mean persons in the action frame (wide view)
OFF_FRAME_PERSONS = 4.6         # mean persons seen only in replays
TRAIN_CROWD = 1.035             # real train actions hold slightly more boxes (27.0) than valid (26.3)
CROWD_SIGMA = 0.3               # log-normal spread of crowdedness between actions (heavy tail, as real)
REPLAY_COUNTS = (1, 2, 3, 4)
REPLAY_PROBS = (0.42, 0.36, 0.15, 0.07)
REPLAY_INCLUSION = (2.2, 3.0)   # Beta(a, b): chance that an action-frame person is in a given replay
EXTRA_REPLAY_P = 0.2            # chance that a replay-only person is in a further replay
# class shares of the boxes (players ~88%, goalkeepers ~4.5%, referees ~5%, staff ~2%)
ROLE_PROBS = {'player': 0.882, 'goalkeeper': 0.047, 'main_referee': 0.03, 'side_referee': 0.022,
              'staff': 0.019}
VIEWS = ('front', 'back', 'left', 'right')
VIEW_PROBS = (0.3, 0.32, 0.19, 0.19)
_VIEW_CUM = np.cumsum(VIEW_PROBS)
# smallest thumbnail height at which a number is legible (back numbers are large, front ones small)
BACK_NUMBER_MIN_H = 28
FRONT_NUMBER_MIN_H = 60

CHAMPIONSHIPS = {
    'england_epl': ('Chelsea', 'Burnley', 'Arsenal', 'Liverpool', 'Everton', 'Swansea', 'Stoke City',
                    'Southampton', 'Tottenham', 'Manchester City', 'Manchester United', 'Leicester',
                    'Crystal Palace', 'West Ham', 'Watford', 'Sunderland'),
    'spain_laliga': ('Barcelona', 'Real Madrid', 'Sevilla', 'Valencia', 'Atl. Madrid', 'Villarreal',
                     'Celta Vigo', 'Malaga', 'Getafe', 'Espanyol', 'Real Sociedad', 'Eibar'),
    'italy_serie-a': ('AC Milan', 'Juventus', 'Napoli', 'AS Roma', 'Inter', 'Lazio', 'Fiorentina',
                      'Udinese', 'Torino', 'Genoa', 'Sampdoria', 'Sassuolo'),
    'germany_bundesliga': ('Bayern Munich', 'Dortmund', 'Schalke', 'Wolfsburg', 'Mainz', 'Hamburger SV',
                           'Hertha Berlin', 'Augsburg', 'FC Koln', 'Hoffenheim', 'Leverkusen', 'Werder Bremen'),
    'france_ligue-1': ('Paris SG', 'Lyon', 'Marseille', 'Monaco', 'Nice', 'Lille', 'Bordeaux', 'Nantes',
                       'Rennes', 'St Etienne', 'Montpellier', 'Guingamp'),
    'europe_uefa-champions-league': ('Real Madrid', 'Barcelona', 'Bayern Munich', 'Juventus', 'Paris SG',
                                     'Chelsea', 'Arsenal', 'Dortmund', 'Benfica', 'Porto', 'Ajax',
                                     'Manchester City', 'Atl. Madrid', 'Monaco', 'Napoli', 'Basel'),
}
SEASONS = ('2014-2015', '2015-2016', '2016-2017')
KICKOFFS = ('13-30', '14-00', '15-00', '16-00', '17-00', '17-30', '18-00', '19-45', '20-00', '20-45', '21-45')

# --- colours (RGB) ---
KIT_COLOURS = (
    (200, 30, 40), (130, 20, 35), (30, 60, 170), (110, 170, 225), (25, 30, 80), (235, 235, 235),
    (28, 28, 30), (240, 210, 40), (240, 120, 30), (30, 130, 60), (100, 40, 130), (120, 30, 60),
    (130, 130, 135), (235, 120, 170), (200, 160, 60), (0, 130, 130), (160, 200, 60), (90, 30, 30),
)
REFEREE_COLOURS = ((28, 28, 30), (240, 215, 40), (235, 110, 165), (100, 170, 230), (210, 40, 40),  # no green: grass
                   (80, 95, 120), (245, 140, 40), (150, 60, 180))
STAFF_COLOURS = ((28, 28, 30), (40, 45, 70), (70, 70, 75), (110, 110, 115), (20, 40, 90), (180, 180, 185),
                 (90, 20, 30), (30, 70, 40))
SKIN_TONES = ((250, 214, 184), (236, 192, 160), (224, 172, 135), (198, 145, 105), (165, 112, 75),
              (130, 85, 55), (98, 62, 40), (72, 46, 32))
HAIR_COLOURS = ((20, 17, 15), (45, 30, 20), (80, 55, 35), (120, 85, 50), (190, 150, 90), (225, 195, 120),
                (150, 70, 35), (150, 150, 150))
HAIR_STYLES = ('short', 'buzz', 'long', 'afro', 'bald', 'bun', 'curly', 'mohawk')
HAIR_STYLE_PROBS = (0.4, 0.16, 0.09, 0.07, 0.07, 0.07, 0.1, 0.04)
BOOT_COLOURS = ((20, 20, 20), (240, 240, 240), (220, 40, 40), (250, 130, 20), (240, 220, 30), (40, 200, 220),
                (240, 100, 180), (150, 230, 40), (40, 70, 200), (210, 170, 60))
PATTERNS = ('plain', 'stripes', 'hoops', 'sleeves', 'halves', 'sash')
PATTERN_PROBS = (0.44, 0.16, 0.1, 0.16, 0.06, 0.08)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one purpose, independent of the order in which others are used."""
    return np.random.default_rng([seed, *keys])


def _pick(rng: np.random.Generator, options, probs=None):
    """One of ``options`` (uniform, or with the probabilities ``probs``); cheaper than ``rng.choice``."""
    if probs is None:
        return options[int(rng.integers(0, len(options)))]
    i = int(np.searchsorted(np.cumsum(probs), rng.random() * float(np.sum(probs)), side='right'))
    return options[min(i, len(options) - 1)]


def _clip(x, lo, hi):
    return lo if x < lo else hi if x > hi else x


def _distance(a, b) -> float:
    return float(np.sqrt(sum((int(x) - int(y)) ** 2 for x, y in zip(a, b))))


def _distinct_colour(rng, palette, avoid, min_distance=110.0):
    """A palette colour far from every colour in ``avoid`` (the farthest one when none is far enough)."""
    order = rng.permutation(len(palette))
    best, best_d = None, -1.0
    for i in order:
        c = palette[int(i)]
        d = min((_distance(c, a) for a in avoid), default=1e9)
        if d >= min_distance:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _jitter(rng, colour, amount=10):
    offsets = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(_clip(int(c) + int(o), 0, 255)) for c, o in zip(colour, offsets))


def _contrast_colour(colour):
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (25, 25, 28) if luma > 150 else (240, 240, 240)


@dataclasses.dataclass
class Member:
    """One person of a game's roster."""
    key: str                 # unique within the game, e.g. 'A7', 'AGK1', 'REF', 'AR2', 'ST3'
    role: str                # player | goalkeeper | main_referee | side_referee | staff
    team: int                # 0/1 (players, goalkeepers, staff) or -1 (referees)
    number: int              # jersey number, -1 when none
    starter: bool
    look: dict               # appearance: skin, hair, build, boots, sleeves, ...


@dataclasses.dataclass
class BoxPlan:
    """One thumbnail: who, where, how it is seen, and every label of its file name."""
    member: int              # index into GamePlan.members
    frame_no: int            # 0 = action frame, 1.. = replays
    box_no: int              # position within the frame
    view: str                # front | back | left | right
    stride: float            # 0 (standing) .. 1 (full stride)
    arm: float               # -1 .. 1 arm swing
    height: int
    width: int
    number_visible: bool
    subset: str = ''         # train | query | gallery
    clazz: str = ''
    id: str = ''
    person_uid: int = -1
    frame_idx: int = -1
    bbox_idx: int = -1
    UAI: str = ''


@dataclasses.dataclass
class FramePlan:
    frame_no: int
    is_action: bool
    style: dict              # grass, light, blur of this frame
    uai_stem: str
    frame_idx: int = -1


@dataclasses.dataclass
class ActionPlan:
    action_no: int           # within the game
    folder: str
    left_team: int
    frames: List[FramePlan]
    boxes: List[BoxPlan]
    action_idx: int = -1
    relative_path: str = ''


@dataclasses.dataclass
class GamePlan:
    split: str
    game_no: int             # within the split
    uai_game: int            # running game number over all splits (the first UAI field)
    championship: str
    season: str
    folder: str
    kits: Dict[str, dict]    # 'team0', 'team1', 'gk0', 'gk1', 'ref'
    members: List[Member]
    grass: Tuple[int, int, int]
    actions: List[ActionPlan] = dataclasses.field(default_factory=list)

    @property
    def relative_root(self) -> str:
        return f'{self.championship}/{self.season}/{self.folder}'


@dataclasses.dataclass
class SplitPlan:
    name: str
    games: List[GamePlan]

    def actions(self) -> Iterator[Tuple[GamePlan, ActionPlan]]:
        for game in self.games:
            for action in game.actions:
                yield game, action

    def boxes(self, subset: Optional[str] = None) -> Iterator[Tuple[GamePlan, ActionPlan, BoxPlan]]:
        for game, action in self.actions():
            for box in action.boxes:
                if subset is None or box.subset == subset:
                    yield game, action, box


@dataclasses.dataclass
class DatasetPlan:
    preset: Preset
    seed: int
    splits: Dict[str, SplitPlan]

    def identities(self) -> Dict[str, Dict[str, str]]:
        """``{split: {person_uid: roster key}}``: who each uid really is (the real data has no such label)."""
        out = {}
        for name, split in self.splits.items():
            out[name] = {str(box.person_uid): f'{game.uai_game:03d}:{game.members[box.member].key}'
                         for game, _, box in split.boxes()}
        return out


# ----------------------------------------------------------------------------------------------------------
# games and rosters

def _game_identity(rng, used_folders):
    championship = _pick(rng, tuple(CHAMPIONSHIPS))
    season = _pick(rng, SEASONS)
    clubs = CHAMPIONSHIPS[championship]
    home, away = (clubs[int(i)] for i in rng.choice(len(clubs), size=2, replace=False))
    year = int(season[:4])
    day = int(rng.integers(0, 280))
    kickoff = _pick(rng, KICKOFFS)
    score = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    while True:
        date = np.datetime64(f'{year}-08-15') + np.timedelta64(day, 'D')
        folder = f'{date} - {kickoff} {home} {score[0]} - {score[1]} {away}'
        if (championship, season, folder) not in used_folders:
            used_folders.add((championship, season, folder))
            return championship, season, folder
        day += 1


def _team_kits(rng):
    kits = {}
    shirts = []
    for team in (0, 1):
        shirt = _distinct_colour(rng, KIT_COLOURS, shirts, 150.0)
        shirts.append(shirt)
        second = _distinct_colour(rng, KIT_COLOURS, [shirt], 120.0)
        shorts = _pick(rng, (shirt, second, (235, 235, 235), (28, 28, 30)), (0.35, 0.25, 0.2, 0.2))
        socks = _pick(rng, (shirt, second, shorts, (235, 235, 235)), (0.4, 0.2, 0.25, 0.15))
        kits[f'team{team}'] = {
            'shirt': shirt, 'second': second, 'pattern': _pick(rng, PATTERNS, PATTERN_PROBS),
            'shorts': shorts, 'socks': socks,
            'number': _pick(rng, (_contrast_colour(shirt), second), (0.7, 0.3)),
        }
    taken = list(shirts)
    for team in (0, 1):
        shirt = _distinct_colour(rng, KIT_COLOURS, taken, 120.0)
        taken.append(shirt)
        shorts = _pick(rng, (shirt, (28, 28, 30), (235, 235, 235)), (0.5, 0.3, 0.2))
        kits[f'gk{team}'] = {'shirt': shirt, 'second': _contrast_colour(shirt), 'pattern': 'plain',
                             'shorts': shorts, 'socks': _pick(rng, (shirt, shorts)),
                             'number': _contrast_colour(shirt)}
    ref = _distinct_colour(rng, REFEREE_COLOURS, shirts, 130.0)
    kits['ref'] = {'shirt': ref, 'second': (28, 28, 30), 'pattern': _pick(rng, ('plain', 'sleeves'), (0.7, 0.3)),
                   'shorts': (28, 28, 30), 'socks': _pick(rng, ((28, 28, 30), ref), (0.7, 0.3)),
                   'number': (28, 28, 30)}
    return kits


def _look(rng, role, kits, team):
    skin_i = _pick(rng, range(len(SKIN_TONES)), (0.16, 0.17, 0.15, 0.13, 0.12, 0.1, 0.09, 0.08))
    hair_p = np.array((0.25, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03, 0.04))
    if skin_i >= 4:            # darker skin: mostly black hair
        hair_p = np.array((0.8, 0.14, 0.04, 0.0, 0.0, 0.0, 0.0, 0.02))
    hair_p = hair_p / hair_p.sum()
    look = {
        'skin': _jitter(rng, SKIN_TONES[skin_i], 8),
        'hair': _jitter(rng, _pick(rng, HAIR_COLOURS, hair_p), 8),
        'hair_style': _pick(rng, HAIR_STYLES, HAIR_STYLE_PROBS),
        'beard': bool(rng.random() < 0.25),
        'height': float(_clip(rng.normal(1.0, 0.045), 0.88, 1.12)),
        'build': float(_clip(rng.normal(1.0, 0.08), 0.82, 1.22)),
        'boots': _jitter(rng, _pick(rng, BOOT_COLOURS), 6),
        'long_sleeves': bool(rng.random() < {'player': 0.14, 'goalkeeper': 0.8, 'main_referee': 0.2,
                                             'side_referee': 0.2, 'staff': 1.0}[role]),
        'socks_low': bool(rng.random() < (0.15 if role == 'player' else 0.03)),
        'tape': _pick(rng, (None, (235, 235, 235), (30, 30, 30)), (0.75, 0.17, 0.08)),
        'armband': False,
        'gloves': None,
    }
    if role == 'goalkeeper':
        look['gloves'] = _pick(rng, ((235, 235, 235), (240, 200, 40), (40, 40, 40), (240, 120, 30), (60, 180, 60)))
    if role == 'staff':
        # coaches, physios, ball kids: own clothes, long trousers, sometimes the club colour
        team_kit = kits[f'team{team}']
        jacket = _pick(rng, (_pick(rng, STAFF_COLOURS), team_kit['shirt'], team_kit['second']), (0.6, 0.25, 0.15))
        look.update({'jacket': _jitter(rng, jacket, 6), 'trousers': _jitter(rng, _pick(rng, STAFF_COLOURS[:5]), 6),
                     'bib': _pick(rng, (None, (240, 120, 30), (160, 230, 40), (235, 235, 235)), (0.7, 0.1, 0.1, 0.1))})
    return look


def _roster(rng, kits) -> List[Member]:
    members = []
    for team, side in ((0, 'A'), (1, 'B')):
        numbers = [int(n) for n in rng.choice(np.arange(2, 41), size=18, replace=False)]
        numbers = [n if n not in (1, 12) else n + 40 for n in numbers]   # 1 and 12 kept for goalkeepers
        captain = int(rng.integers(0, 10))
        for i, number in enumerate(numbers):
            look = _look(rng, 'player', kits, team)
            look['armband'] = i == captain
            members.append(Member(f'{side}{number}', 'player', team, number, i < 10, look))
        spare = [n for n in (12, 13, 16, 23, 25, 30, 31, 33, 99) if n not in numbers]
        for i, number in enumerate((1, int(_pick(rng, spare)))):
            members.append(Member(f'{side}GK{number}', 'goalkeeper', team, number, i == 0,
                                  _look(rng, 'goalkeeper', kits, team)))
        for i in range(3):
            members.append(Member(f'{side}ST{i}', 'staff', team, -1, True, _look(rng, 'staff', kits, team)))
    members.append(Member('REF', 'main_referee', -1, -1, True, _look(rng, 'main_referee', kits, -1)))
    for i in (1, 2):
        look = _look(rng, 'side_referee', kits, -1)
        look['flag'] = _pick(rng, ((240, 220, 30), (230, 60, 40), (240, 120, 30)))
        members.append(Member(f'AR{i}', 'side_referee', -1, -1, True, look))
    return members


def _plan_game(preset: Preset, seed: int, split_no: int, game_no: int, uai_game: int, used_folders) -> GamePlan:
    rng = _rng(seed, split_no, game_no, 0)
    championship, season, folder = _game_identity(rng, used_folders)
    kits = _team_kits(rng)
    members = _roster(rng, kits)
    grass = (int(rng.integers(50, 90)), int(rng.integers(108, 150)), int(rng.integers(38, 72)))
    return GamePlan(SPLITS[split_no], game_no, uai_game, championship, season, folder, kits, members, grass)


# ----------------------------------------------------------------------------------------------------------
# actions

def _pick_persons(rng, members: List[Member], count: int) -> List[int]:
    """``count`` distinct roster members, classes drawn with the real shares (players mostly starters)."""
    roles = tuple(ROLE_PROBS)
    cum = np.cumsum([ROLE_PROBS[r] for r in roles])
    wanted_roles = np.minimum(np.searchsorted(cum, rng.random(count) * cum[-1], side='right'), len(roles) - 1)
    draws = rng.random(count)
    free = {r: [i for i, m in enumerate(members) if m.role == r] for r in roles}
    chosen = []
    for k in range(count):
        for role in (roles[int(wanted_roles[k])], 'player', 'goalkeeper', 'staff'):
            if free[role]:
                break
        else:
            break   # the whole roster is already in this action
        options = free[role]
        weights = np.cumsum([1.0 if members[i].starter else 0.05 for i in options])
        j = min(int(np.searchsorted(weights, draws[k] * weights[-1], side='right')), len(options) - 1)
        chosen.append(options.pop(j))
    return chosen


def _frame_style(rng, grass, is_action: bool) -> dict:
    return {
        'grass': _jitter(rng, grass, 6),
        'stripe_angle': float(rng.uniform(0, np.pi)),
        'stripe_period': float(rng.uniform(0.7, 3.0)),      # in box heights
        'stripe_amp': float(rng.uniform(0.03, 0.11)),
        'gain': float(np.exp(rng.normal(0.0, 0.16))),
        'cast': tuple(float(x) for x in 1.0 + rng.normal(0.0, 0.045, size=3)),
        'contrast': float(rng.uniform(0.78, 1.15)),
        'saturation': float(rng.uniform(0.7, 1.12)),
        'noise': float(rng.uniform(0.0, 5.0)),
        'blur': float(rng.uniform(0.3, 0.9) if rng.random() < (0.35 if is_action else 0.3) else 0.0),
        # stadium shadow across part of the pitch: direction, softness, darkening
        'shadow': ((float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(4.0, 12.0)), float(rng.uniform(0.25, 0.5)))
                   if rng.random() < 0.2 else None),
        # broadcast video compression (JPEG quality), or none
        'jpeg': int(rng.integers(45, 92)) if rng.random() < 0.55 else 0,
    }


def _plan_action(preset: Preset, seed: int, split_no: int, game: GamePlan, action_no: int,
                 n_actions: int) -> ActionPlan:
    rng = _rng(seed, split_no, game.game_no, 1, action_no)
    evaluation = SPLITS[split_no] != 'train'
    crowd = preset.crowd * (1.0 if evaluation else TRAIN_CROWD) * float(np.exp(rng.normal(0.0, CROWD_SIGMA) - CROWD_SIGMA ** 2 / 2))
    n_action = max(1, int(rng.poisson(ACTION_FRAME_PERSONS * crowd)))
    n_off = int(rng.poisson(OFF_FRAME_PERSONS * crowd))
    n_replays = int(rng.choice(REPLAY_COUNTS, p=REPLAY_PROBS))
    persons = _pick_persons(rng, game.members, n_action + n_off)
    n_action = min(n_action, len(persons))
    n_frames = 1 + n_replays

    # presence[i, f]: person i is in frame f (frame 0 = the action frame)
    presence = np.zeros((len(persons), n_frames), dtype=bool)
    presence[:n_action, 0] = True
    p_in = rng.beta(*REPLAY_INCLUSION, size=n_action)
    presence[:n_action, 1:] = rng.random((n_action, n_replays)) < p_in[:, None]
    for i in range(n_action, len(persons)):
        presence[i, 1 + int(rng.integers(0, n_replays))] = True
        presence[i, 1:] |= rng.random(n_replays) < EXTRA_REPLAY_P
    if evaluation and not presence[:n_action, 1:].any():
        # the real eval actions all have at least one query
        presence[int(np.argmax(p_in)), 1] = True

    lo, hi = preset.height_range
    frames, boxes = [], []
    for f in range(n_frames):
        is_action = f == 0
        if is_action:   # wide broadcast view: small boxes
            frame_h = float(np.exp(rng.uniform(np.log(lo), np.log(min(hi, lo * 2.1)))))
        else:           # close-up replay: zoomed in by a varying amount
            frame_h = float(np.exp(rng.uniform(np.log(lo * 1.2), np.log(hi * 0.8))))
        hexcode = ''.join(f'{int(x):02x}' for x in rng.integers(0, 256, size=4))
        uai_stem = f'{game.uai_game:03d}{"a" if is_action else "r"}{f:03d}_{hexcode}'
        frames.append(FramePlan(f, is_action, _frame_style(rng, game.grass, is_action), uai_stem))
        in_frame = rng.permutation(np.flatnonzero(presence[:, f]))
        n = len(in_frame)
        # one draw per quantity for the whole frame (much cheaper than per-box calls)
        views = np.minimum(np.searchsorted(_VIEW_CUM, rng.random(n) * _VIEW_CUM[-1], side='right'), len(VIEWS) - 1)
        strides = rng.random(n)
        arms = rng.uniform(-1.0, 1.0, size=n)
        depth = np.exp(rng.normal(0.0, 0.14, size=n))
        slack = rng.uniform(0.0, 0.05, size=n)
        for box_no in range(n):
            member_idx = persons[int(in_frame[box_no])]
            member = game.members[member_idx]
            look = member.look
            view = VIEWS[int(views[box_no])]
            running = member.role in ('player', 'goalkeeper', 'main_referee')
            stride = float(strides[box_no]) * (1.0 if running else 0.4)
            h = int(_clip(round(frame_h * float(depth[box_no]) * look['height']), lo, hi))
            side = view in ('left', 'right')
            aspect = 0.34 * look['build'] + (0.24 if side else 0.07) * stride + float(slack[box_no])
            if member.role == 'side_referee':
                aspect += 0.05   # the flag
            w = max(6, int(round(h * aspect)))
            visible = member.number >= 0 and (
                (view == 'back' and h >= BACK_NUMBER_MIN_H) or (view == 'front' and h >= FRONT_NUMBER_MIN_H))
            box = BoxPlan(member_idx, f, box_no, view, stride, float(arms[box_no]), h, w, visible)
            box.UAI = f'{uai_stem}{box_no:04d}'
            boxes.append(box)

    left_team = 0 if action_no < (n_actions + 1) // 2 else 1
    letters = iter(_letters())
    by_person: Dict[int, List[BoxPlan]] = {}
    for box in boxes:
        by_person.setdefault(box.member, []).append(box)
    for member_idx in persons:   # roster order of appearance fixes the letters
        own = by_person.get(member_idx)
        if not own:
            continue
        member = game.members[member_idx]
        if any(b.number_visible for b in own):
            jersey = str(member.number)
        elif len(own) == 1:
            jersey = 'None'
        else:
            jersey = next(letters)
        clazz = _class_name(member, left_team)
        matched = len(own) > 1 and own[0].frame_no == 0 and any(b.frame_no > 0 for b in own)
        for b in own:
            b.id = jersey
            b.clazz = clazz
            if not evaluation:
                b.subset = 'train'
            else:
                b.subset = 'query' if (b.frame_no == 0 and matched) else 'gallery'
    return ActionPlan(action_no, str(action_no), left_team, frames, boxes)


def _letters():
    for n in range(1, 4):
        for combo in np.ndindex(*(26,) * n):
            yield ''.join(string.ascii_lowercase[c] for c in combo)


def _class_name(member: Member, left_team: int) -> str:
    if member.role == 'player':
        return 'Player_team_left' if member.team == left_team else 'Player_team_right'
    if member.role == 'goalkeeper':
        return 'Goalkeeper_team_left' if member.team == left_team else 'Goalkeeper_team_right'
    return {'main_referee': 'Main_referee', 'side_referee': 'Side_referee', 'staff': 'Staff_members'}[member.role]


# ----------------------------------------------------------------------------------------------------------
# the whole set

def plan_dataset(preset: Preset, seed: int) -> DatasetPlan:
    """Plan every split; numbers every action, frame, person and box the way the real release does."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    seed = int(seed)
    used_folders = set()
    uid = 0
    uai_game = 0
    splits = {}
    for split_no, name in enumerate(SPLITS):
        size = preset.split(name)
        games = []
        for game_no, n_actions in enumerate(size.actions_per_game()):
            game = _plan_game(preset, seed, split_no, game_no, uai_game, used_folders)
            uai_game += 1
            game.actions = [_plan_action(preset, seed, split_no, game, a, n_actions) for a in range(n_actions)]
            games.append(game)
        split = SplitPlan(name, games)
        uid = _number_split(split, seed, split_no, uid)
        splits[name] = split
        logger.debug('planned %s: %d games, %d actions', name, len(games), size.actions)
    return DatasetPlan(preset, seed, splits)


def _number_split(split: SplitPlan, seed: int, split_no: int, first_uid: int) -> int:
    """Give action_idx, frame_idx, person_uid and bbox_idx (separate spaces for train/query/gallery)."""
    uid = first_uid
    frame_idx = 0
    next_bbox = {'train': 0, 'query': 0, 'gallery': 0}
    for action_idx, (game, action) in enumerate(split.actions()):
        action.action_idx = action_idx
        action.relative_path = f'{game.relative_root}/{action.folder}'
        for frame in action.frames:
            frame.frame_idx = frame_idx
            frame_idx += 1
        uids = {}
        for box in action.boxes:
            if box.member not in uids:
                uids[box.member] = uid
                uid += 1
            box.person_uid = uids[box.member]
            box.frame_idx = action.frames[box.frame_no].frame_idx
        # Query and gallery lists are shuffled within the action, so that list order says nothing about
        # identity; train keeps frame order.
        rng = _rng(seed, split_no, game.game_no, 2, action.action_no)
        for subset in ('train', 'query', 'gallery'):
            members = [b for b in action.boxes if b.subset == subset]
            if subset != 'train':
                members = [members[int(i)] for i in rng.permutation(len(members))]
            for box in members:
                box.bbox_idx = next_bbox[subset]
                next_bbox[subset] += 1
    return uid


def plan_statistics(plan: DatasetPlan) -> Dict[str, dict]:
    """Counts per split: images, queries, gallery, actions, per-action means and class shares."""
    stats = {}
    for name, split in plan.splits.items():
        actions = list(split.actions())
        n_actions = len(actions)
        per_q = [sum(b.subset == 'query' for b in a.boxes) for _, a in actions]
        per_g = [sum(b.subset == 'gallery' for b in a.boxes) for _, a in actions]
        per_all = [len(a.boxes) for _, a in actions]
        classes: Dict[str, int] = {}
        heights = []
        ids = {'number': 0, 'letter': 0, 'None': 0}
        uids = set()
        for _, action, box in split.boxes():
            classes[box.clazz] = classes.get(box.clazz, 0) + 1
            heights.append(box.height)
            ids['None' if box.id == 'None' else 'number' if box.id.isdigit() else 'letter'] += 1
            uids.add(box.person_uid)
        total = sum(per_all)
        cand = [g for q, g in zip(per_q, per_g) for _ in range(q)]
        stats[name] = {
            'images': total, 'actions': n_actions, 'games': len(split.games), 'identities': len(uids),
            'queries': sum(per_q), 'gallery': sum(per_g),
            'queries_per_action': float(np.mean(per_q)) if n_actions else 0.0,
            'gallery_per_action': float(np.mean(per_g)) if n_actions else 0.0,
            'boxes_per_action': float(np.mean(per_all)) if n_actions else 0.0,
            'max_queries_per_action': int(max(per_q, default=0)),
            'max_gallery_per_action': int(max(per_g, default=0)),
            'candidates_per_query': float(np.mean(cand)) if cand else 0.0,
            'class_share': {c: n / max(total, 1) for c, n in sorted(classes.items())},
            'id_share': {k: v / max(total, 1) for k, v in ids.items()},
            'height_mean': float(np.mean(heights)) if heights else 0.0,
            'height_range': (int(min(heights, default=0)), int(max(heights, default=0))),
        }
    return stats
