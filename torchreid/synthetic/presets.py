"""Sizes of the synthetic SoccerNet-v3 ReID sets.

A :class:`Preset` says how many games and actions each split holds, how large the thumbnails are and how
crowded the frames are. ``crowd=1.0`` reproduces the per-action statistics of the real valid split (about
6.6 queries and 19.6 gallery boxes per action, 27 boxes per train action); smaller values make smaller sets.
"""
import dataclasses
from typing import Dict, Optional, Tuple, Union

__all__ = ['SplitSize', 'Preset', 'PRESETS', 'SPLITS', 'get_preset']

# Split order fixes the person_uid numbering (uids run on across splits in this order).
SPLITS = ('train', 'valid', 'test', 'challenge')


@dataclasses.dataclass(frozen=True)
class SplitSize:
    """``actions`` actions spread as evenly as possible over ``games`` games."""
    games: int
    actions: int

    def __post_init__(self):
        if self.games < 1 or self.actions < self.games:
            raise ValueError(f'SplitSize: need games >= 1 and actions >= games, got games={self.games}, '
                             f'actions={self.actions}')

    def actions_per_game(self) -> Tuple[int, ...]:
        base, extra = divmod(self.actions, self.games)
        return tuple(base + (1 if g < extra else 0) for g in range(self.games))


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything that decides the size and look of a synthetic set (the seed decides the rest).

    Attributes:
        name: label stored in the completion marker.
        train, valid, test, challenge: games and actions of each split.
        height_range: (min, max) thumbnail height in pixels. Action-frame (wide view) boxes sit in the
            lower part of the range, replay (close-up) boxes spread over all of it.
        crowd: multiplies the number of persons per action (1.0 = the real per-action means).
        render_height: (min, max) height of the canvas the figures are drawn on before resizing.
    """
    name: str
    train: SplitSize
    valid: SplitSize
    test: SplitSize
    challenge: SplitSize
    height_range: Tuple[int, int] = (40, 200)
    crowd: float = 1.0
    render_height: Tuple[int, int] = (64, 160)

    def __post_init__(self):
        lo, hi = self.height_range
        if not (8 <= lo < hi):
            raise ValueError(f'Preset {self.name!r}: height_range must be (min, max) with 8 <= min < max, '
                             f'got {self.height_range}')
        if self.crowd <= 0:
            raise ValueError(f'Preset {self.name!r}: crowd must be > 0, got {self.crowd}')
        rlo, rhi = self.render_height
        if not (16 <= rlo <= rhi):
            raise ValueError(f'Preset {self.name!r}: render_height must be (min, max) with 16 <= min <= max, '
                             f'got {self.render_height}')

    def split(self, name: str) -> SplitSize:
        if name not in SPLITS:
            raise ValueError(f'unknown split {name!r}; expected one of {SPLITS}')
        return getattr(self, name)

    def scaled(self, factor: float, name: Optional[str] = None) -> 'Preset':
        """The same preset with ``factor`` times the games and actions (at least 1 game, 1 action/game)."""
        if factor <= 0:
            raise ValueError(f'scale factor must be > 0, got {factor}')

        def scale(size: SplitSize) -> SplitSize:
            games = max(1, round(size.games * factor))
            return SplitSize(games, max(games, round(size.actions * factor)))

        return dataclasses.replace(
            self, name=name or f'{self.name}x{factor:g}', train=scale(self.train), valid=scale(self.valid),
            test=scale(self.test), challenge=scale(self.challenge))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: Dict[str, Preset] = {
    # For the test suite: a few hundred small thumbnails, generated in about a second.
    'tiny': Preset(
        name='tiny', train=SplitSize(2, 12), valid=SplitSize(1, 5), test=SplitSize(1, 4),
        challenge=SplitSize(1, 4), height_range=(24, 64), crowd=0.5, render_height=(48, 64)),
    # Enough to train a small model on CPU in minutes; the per-action statistics of the real data.
    'demo': Preset(
        name='demo', train=SplitSize(10, 150), valid=SplitSize(4, 70), test=SplitSize(4, 70),
        challenge=SplitSize(4, 70), height_range=(40, 200), crowd=1.0, render_height=(64, 128)),
    # The real split sizes (train about 248k images / 9.2k actions; valid 1,751, test 1,715 and
    # challenge 1,310 actions); the game counts are guesses (about 30 actions per game).
    'full': Preset(
        name='full', train=SplitSize(306, 9181), valid=SplitSize(58, 1751), test=SplitSize(57, 1715),
        challenge=SplitSize(44, 1310), height_range=(32, 320), crowd=1.0, render_height=(64, 192)),
}


def get_preset(preset: Union[str, Preset]) -> Preset:
    """A :class:`Preset` from itself or from its name in :data:`PRESETS`."""
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise ValueError(f'unknown synthetic preset {preset!r}; expected a Preset or one of {", ".join(PRESETS)}')
