"""Draw planned boxes: a person in a kit on striped grass, seen from a planned view under frame light.

Figures are drawn with PIL primitives on a canvas of moderate height (``Preset.render_height``) in a
figure-height coordinate system (head top y=0, soles y=1, x across), then the canvas is resized to the
planned thumbnail size; grass, light, noise and blur are NumPy/PIL operations on whole images.

What tells persons apart, on purpose subtle (teammates share the kit): jersey number (back: large;
front: small; side views: none), skin tone, hair colour and style, beard, build (height and width),
boots colour, long sleeves, low socks, sock tape, captain armband; goalkeepers have gloves, side referees
a flag, staff their own clothes.
"""
import functools
import io
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .plan import ActionPlan, BoxPlan, GamePlan, Member

__all__ = ['render_action', 'render_box']

Colour = Tuple[int, int, int]


@functools.lru_cache(maxsize=64)
def _font(size: int):
    return ImageFont.load_default(size=max(4, int(size)))


def _shade(colour: Sequence[int], factor: float) -> Colour:
    return tuple(int(max(0, min(255, c * factor))) for c in colour)


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> Colour:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


class _Pen:
    """Maps figure coordinates (x across, y down, both in figure heights) to canvas pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, top: float, h: float, facing: int):
        self.draw, self.cx, self.top, self.h, self.facing = draw, cx, top, h, facing

    def p(self, x: float, y: float) -> Tuple[float, float]:
        return (self.cx + x * self.h * self.facing, self.top + y * self.h)

    def line(self, pts, colour, width: float):
        px = [self.p(x, y) for x, y in pts]
        w = max(1, int(round(width * self.h)))
        self.draw.line(px, fill=colour, width=w, joint='curve')
        r = w / 2.0
        for x, y in (px[0], px[-1]):   # round ends
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)

    def poly(self, pts, colour):
        self.draw.polygon([self.p(x, y) for x, y in pts], fill=colour)

    def ellipse(self, x: float, y: float, rx: float, ry: float, colour):
        cx, cy = self.p(x, y)
        rx, ry = max(0.5, rx * self.h), max(0.5, ry * self.h)
        self.draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)

    def text(self, x: float, y: float, size: float, text: str, colour):
        px = max(4, int(round(size * self.h)))
        self.draw.text(self.p(x, y), text, fill=colour, font=_font(px), anchor='mm')


def _lerp(a, b, t):
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _draw_leg(pen: _Pen, hip, knee, ankle, look, kit, staff, toe_dir: float, lw: float, shade: float):
    skin = _shade(look['skin'], shade)
    if staff:
        trousers = _shade(look['trousers'], shade)
        pen.line([hip, knee, ankle], trousers, lw * 1.15)
    else:
        pen.line([hip, knee], skin, lw)
        socks = _shade(kit['socks'], shade)
        sock_top = _lerp(ankle, knee, 0.35 if look['socks_low'] else 0.85)
        pen.line([knee, sock_top] if look['socks_low'] else [_lerp(knee, hip, 0.05), knee], skin, lw * 0.95)
        pen.line([sock_top, ankle], socks, lw * 0.95)
        if look['tape'] is not None and not look['socks_low']:
            pen.line([_lerp(ankle, knee, 0.55), _lerp(ankle, knee, 0.62)], _shade(look['tape'], shade), lw * 1.0)
        pen.line([hip, _lerp(hip, knee, 0.42)], _shade(kit['shorts'], shade), lw * 1.45)
    boots = _shade(look['boots'] if not staff else (30, 30, 30), shade)
    fx, fy = ankle
    if abs(toe_dir) > 0:   # side view: the foot points forward
        pen.line([(fx - 0.012 * toe_dir, fy + 0.025), (fx + 0.05 * toe_dir, fy + 0.03)], boots, 0.032)
    else:
        pen.ellipse(fx, fy + 0.027, 0.024, 0.02, boots)


def _draw_arm(pen: _Pen, shoulder, elbow, hand, look, kit, role, shade: float, flag: bool):
    staff = role == 'staff'
    sleeve = _shade(look['jacket'] if staff else (kit['second'] if kit['pattern'] == 'sleeves' else kit['shirt']),
                    shade)
    skin = _shade(look['skin'], shade)
    aw = 0.036 * look['build']
    if look['long_sleeves']:
        pen.line([shoulder, elbow, hand], sleeve, aw)
    else:
        pen.line([elbow, hand], skin, aw * 0.85)
        pen.line([shoulder, _lerp(shoulder, elbow, 0.55)], sleeve, aw * 1.1)
        pen.line([_lerp(shoulder, elbow, 0.5), elbow], skin, aw * 0.9)
    if look['armband']:
        pen.line([_lerp(shoulder, elbow, 0.3), _lerp(shoulder, elbow, 0.42)], _shade((250, 220, 40), shade), aw * 1.2)
    hand_colour = look['gloves'] if look.get('gloves') else look['skin']
    pen.ellipse(hand[0], hand[1] + 0.01, 0.03 if look.get('gloves') else 0.02, 0.026, _shade(hand_colour, shade))
    if flag:
        stick_end = (hand[0] + 0.02, hand[1] - 0.2)
        pen.line([hand, stick_end], (60, 60, 60), 0.008)
        pen.poly([stick_end, (stick_end[0] + 0.11, stick_end[1] + 0.005), (stick_end[0] + 0.11, stick_end[1] + 0.075),
                  (stick_end[0], stick_end[1] + 0.07)], _shade(look['flag'], shade))


def _torso(pen: _Pen, member: Member, kit, half_sh: float, half_w: float, view: str, number: int):
    look = member.look
    staff = member.role == 'staff'
    shirt = look['jacket'] if staff else kit['shirt']
    y0, y1 = 0.155, 0.48
    outline = [(-half_sh, y0), (half_sh, y0), (half_w, y1), (-half_w, y1)]
    pen.poly(outline, shirt)
    side = view in ('left', 'right')
    if staff:
        if look['bib'] is not None:
            pen.poly([(-half_sh * 0.8, y0 + 0.02), (half_sh * 0.8, y0 + 0.02), (half_w * 0.85, y1 - 0.08),
                      (-half_w * 0.85, y1 - 0.08)], look['bib'])
        elif view == 'front':   # an open jacket shows a shirt
            pen.poly([(-0.025, y0), (0.025, y0), (0.02, y1 - 0.02), (-0.02, y1 - 0.02)], (225, 225, 225))
        return

    def x_at(y, s):   # torso edge at height y on side s
        t = (y - y0) / (y1 - y0)
        return s * (half_sh + (half_w - half_sh) * t)

    pattern, second = kit['pattern'], kit['second']
    if pattern == 'stripes':
        n = 5 if not side else 3
        for k in range(n):
            if k % 2 == 1:
                xa = -half_w + 2 * half_w * k / n
                xb = -half_w + 2 * half_w * (k + 1) / n
                pen.poly([(xa, y0), (xb, y0), (xb, y1), (xa, y1)], second)
    elif pattern == 'hoops':
        bands = 5
        for k in range(1, bands, 2):
            ya, yb = y0 + (y1 - y0) * k / bands, y0 + (y1 - y0) * (k + 1) / bands
            pen.poly([(x_at(ya, -1), ya), (x_at(ya, 1), ya), (x_at(yb, 1), yb), (x_at(yb, -1), yb)], second)
    elif pattern == 'halves' and not side:
        pen.poly([(0, y0), (half_sh, y0), (half_w, y1), (0, y1)], second)
    elif pattern == 'sash' and not side:
        s = 1 if view == 'front' else -1   # seen from behind, the sash runs the other way
        pen.poly([(x_at(y0, -s), y0), (x_at(y0, -s) + 0.07 * s, y0), (x_at(y1, s), y1 - 0.08), (x_at(y1, s), y1)],
                 second)
    # collar
    pen.line([(-0.035, y0 + 0.003), (0.035, y0 + 0.003)], second if pattern != 'plain' else _shade(shirt, 0.8), 0.018)
    if number >= 0:
        if view == 'back':
            pen.text(0.0, 0.29, 0.13, str(number), kit['number'])
        elif view == 'front':
            pen.text(-0.045, 0.22, 0.055, str(number), kit['number'])
            pen.ellipse(0.05, 0.215, 0.014, 0.016, second)   # the badge


def _head(pen: _Pen, look, view: str, hy: float):
    skin, hair = look['skin'], look['hair']
    style = look['hair_style']
    rx, ry = 0.05, 0.062
    side = view in ('left', 'right')
    if style == 'long':
        pen.poly([(-0.055, hy - 0.02), (0.055, hy - 0.02), (0.06, hy + 0.1), (-0.06, hy + 0.1)], hair)
    if style == 'afro':
        pen.ellipse(0.0, hy - 0.012, rx * 1.45, ry * 1.3, hair)
    if style == 'curly':
        pen.ellipse(0.0, hy - 0.01, rx * 1.15, ry * 1.1, hair)
    if style == 'bun':
        pen.ellipse(-0.02 if side else 0.0, hy - ry * 1.05, 0.024, 0.022, hair)
    buzz = _mix(skin, hair, 0.55)
    if view == 'back':
        pen.ellipse(0.0, hy, rx, ry, skin)
        if style not in ('bald',):
            cover = buzz if style == 'buzz' else hair
            pen.ellipse(0.0, hy - 0.006, rx * 1.02, ry * 0.95, cover)
        pen.ellipse(-rx * 0.95, hy + 0.005, 0.012, 0.018, skin)   # ears
        pen.ellipse(rx * 0.95, hy + 0.005, 0.012, 0.018, skin)
        return
    if side:
        pen.ellipse(0.012, hy + 0.01, 0.014, 0.012, skin)   # nose side
    pen.ellipse(0.0, hy, rx, ry, skin)
    cover = {'bald': None, 'buzz': buzz}.get(style, hair)
    if cover is not None:
        if side:   # hair over the back half and the top
            pen.poly([(-rx * 1.02, hy - ry * 0.2), (-rx * 0.6, hy - ry * 0.95), (rx * 0.5, hy - ry * 1.02),
                      (rx * 0.9, hy - ry * 0.45), (-rx * 0.1, hy - ry * 0.35), (-rx * 0.2, hy + ry * 0.5),
                      (-rx * 0.95, hy + ry * 0.55)], cover)
        else:
            pen.poly([(-rx * 1.02, hy - ry * 0.05), (-rx * 0.75, hy - ry * 0.9), (0, hy - ry * 1.05),
                      (rx * 0.75, hy - ry * 0.9), (rx * 1.02, hy - ry * 0.05), (rx * 0.6, hy - ry * 0.45),
                      (-rx * 0.6, hy - ry * 0.45)], cover)
        if style == 'mohawk':
            pen.line([(0, hy - ry * 1.25), (0, hy - ry * 0.4)], hair, 0.025)
    if look['beard']:
        beard = _mix(skin, look['hair'], 0.6)
        if side:
            pen.poly([(-rx * 0.3, hy + ry * 0.3), (rx * 0.9, hy + ry * 0.35), (rx * 0.5, hy + ry), (-rx * 0.2, hy + ry * 0.8)],
                     beard)
        else:
            pen.poly([(-rx * 0.85, hy + ry * 0.2), (rx * 0.85, hy + ry * 0.2), (rx * 0.4, hy + ry), (-rx * 0.4, hy + ry)],
                     beard)
    if view == 'front' and pen.h >= 60:   # eyes only when there are pixels for them
        pen.ellipse(-rx * 0.38, hy - ry * 0.05, 0.007, 0.006, (40, 30, 25))
        pen.ellipse(rx * 0.38, hy - ry * 0.05, 0.007, 0.006, (40, 30, 25))


def _draw_person(draw, member: Member, kit: dict, cx: float, top: float, h: float, view: str,
                 stride: float, arm: float):
    """One full figure, head top at ``top``, ``h`` pixels from head to soles."""
    look = member.look
    side = view in ('left', 'right')
    facing = -1 if view == 'left' else 1
    pen = _Pen(draw, cx, top, h, facing)
    build = look['build']
    staff = member.role == 'staff'
    flag = member.role == 'side_referee'
    lw = 0.05 * build
    hip_y, knee_y, ankle_y = 0.5, 0.72, 0.955
    number = member.number if member.role in ('player', 'goalkeeper') else -1
    if side:
        sw = 0.21 * stride + 0.02
        legs = [((0.0, hip_y), (sw * 0.7, knee_y), (sw, ankle_y)),                       # front leg
                ((0.0, hip_y), (-sw * 0.3, knee_y + 0.01), (-sw * 1.1, ankle_y - 0.04 * stride))]
        a = 0.14 * arm
        arms = [((0.0, 0.18), (a * 0.6, 0.31), (a, 0.42)), ((0.0, 0.18), (-a * 0.6, 0.31), (-a, 0.42))]
        # the far limbs first, darker
        _draw_leg(pen, *legs[1], look, kit, staff, 1.0, lw, 0.72)
        _draw_arm(pen, *arms[1], look, kit, member.role, 0.72, False)
        _torso(pen, member, kit, 0.085 * build, 0.075 * build, view, -1)
        _draw_leg(pen, *legs[0], look, kit, staff, 1.0, lw, 1.0)
        if not staff:
            pen.line([(0.0, 0.46), (0.02, 0.5)], kit['shorts'], 0.09 * build)
        _head(pen, look, view, 0.065)
        _draw_arm(pen, *arms[0], look, kit, member.role, 1.0, flag)
        return
    spread = 0.02 + 0.05 * stride
    hx = 0.055 * build
    legs = [((-hx, hip_y), (-hx - spread * 0.4, knee_y), (-hx - spread, ankle_y)),
            ((hx, hip_y), (hx + spread * 0.4, knee_y), (hx + spread, ankle_y))]
    for leg in legs:
        _draw_leg(pen, *leg, look, kit, staff, 0.0, lw, 1.0)
    if not staff:
        pen.poly([(-0.105 * build, 0.46), (0.105 * build, 0.46), (0.11 * build, 0.56), (-0.11 * build, 0.56)],
                 kit['shorts'])
    sh = 0.125 * build
    out = 0.02 + 0.05 * abs(arm)
    arms = [((-sh, 0.18), (-sh - out * 0.6, 0.32), (-sh - out, 0.45)),
            ((sh, 0.18), (sh + out * 0.6, 0.32), (sh + out, 0.45))]
    _torso(pen, member, kit, sh, 0.1 * build, view, number)
    for k, a in enumerate(arms):
        _draw_arm(pen, *a, look, kit, member.role, 1.0, flag and k == 1)
    _head(pen, look, view, 0.065)


def _kit_of(game: GamePlan, member: Member) -> dict:
    if member.role == 'player':
        return game.kits[f'team{member.team}']
    if member.role == 'goalkeeper':
        return game.kits[f'gk{member.team}']
    if member.role in ('main_referee', 'side_referee'):
        return game.kits['ref']
    return game.kits[f'team{member.team}']   # staff: only used for shoes/socks fallbacks


def _grass(style: dict, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Mowed grass: two-tone stripes at the frame's angle, fine noise, sometimes a white line."""
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    angle = style['stripe_angle']
    period = max(4.0, style['stripe_period'] * h)
    phase = rng.uniform(0, period)
    band = np.floor((xs * np.float32(math.cos(angle)) + ys * np.float32(math.sin(angle)) + np.float32(phase))
                    / np.float32(period / 2)) % 2
    base = np.asarray(style['grass'], np.float32)
    shade = (1.0 + style['stripe_amp'] * (band - 0.5)).astype(np.float32)
    shade += rng.standard_normal((h, w), dtype=np.float32) * np.float32(4.0 / max(1.0, float(base[1])))
    img = shade[..., None] * base[None, None, :]
    if rng.random() < 0.14:   # a pitch line
        la = rng.uniform(0, math.pi)
        dist = xs * np.float32(math.cos(la)) + ys * np.float32(math.sin(la)) - np.float32(rng.uniform(0, h * 0.7 + w * 0.7))
        width = max(1.0, h * rng.uniform(0.012, 0.03))
        line = np.clip(1.0 - np.abs(dist) / width, 0.0, 1.0)[..., None]
        img = img * (1 - 0.85 * line) + 0.85 * line * np.float32(225.0)
    return img


_BOARD_COLOURS = ((230, 40, 40), (30, 60, 170), (240, 240, 240), (20, 20, 20), (250, 200, 30), (40, 160, 80),
                  (120, 40, 160), (250, 120, 20))


def _ad_board(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    """A band of advertising board with blocky 'lettering' across the upper part of the box."""
    top = h * rng.uniform(0.0, 0.3)
    bottom = top + h * rng.uniform(0.12, 0.3)
    colours = [_BOARD_COLOURS[int(i)] for i in rng.choice(len(_BOARD_COLOURS), size=2, replace=False)]
    draw.rectangle((0, top, w, bottom), fill=colours[0])
    x = rng.uniform(-0.2, 0.1) * w
    letter_h = (bottom - top) * 0.5
    y0 = top + (bottom - top) * 0.25
    while x < w:
        lw = letter_h * rng.uniform(0.35, 0.8)
        draw.rectangle((x, y0, x + lw, y0 + letter_h), fill=colours[1])
        x += lw * rng.uniform(1.3, 1.8)


def _finish(img: Image.Image, style: dict, rng: np.random.Generator) -> Image.Image:
    """Frame light (gain, colour cast, contrast, saturation), sensor noise, blur."""
    a = np.asarray(img, dtype=np.float32)
    a *= np.float32(style['gain']) * np.asarray(style['cast'], np.float32)
    mean = a.mean()
    a = (a - mean) * style['contrast'] + mean
    grey = a.mean(axis=2, keepdims=True)
    a = grey + (a - grey) * style['saturation']
    if style['noise'] > 0:
        a += rng.standard_normal(a.shape[:2] + (1,), dtype=np.float32) * np.float32(style['noise'])
    if style['shadow'] is not None:
        angle, sharpness, strength = style['shadow']
        h, w = a.shape[:2]
        ys = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / h
        xs = (np.arange(w, dtype=np.float32)[None, :] - w / 2) / h
        # where the shadow edge crosses this box depends on the box's place in the frame
        proj = xs * np.float32(math.cos(angle)) + ys * np.float32(math.sin(angle)) - np.float32(rng.uniform(-0.9, 0.9))
        dark = 1.0 - strength / (1.0 + np.exp(-sharpness * proj))
        a *= dark[..., None].astype(np.float32)
    out = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), 'RGB')
    if style['blur'] > 0:
        out = out.filter(ImageFilter.GaussianBlur(style['blur']))
    if style['jpeg']:
        buf = io.BytesIO()
        out.save(buf, format='JPEG', quality=style['jpeg'])
        buf.seek(0)
        with Image.open(buf) as decoded:
            out = decoded.convert('RGB')
    return out


def render_box(game: GamePlan, action: ActionPlan, box: BoxPlan, render_height: Tuple[int, int],
               rng: np.random.Generator, frame_mates: Optional[List[BoxPlan]] = None) -> Image.Image:
    """The thumbnail of ``box`` (an RGB image of exactly ``box.width`` x ``box.height``)."""
    frame = action.frames[box.frame_no]
    style = frame.style
    ch = int(min(max(box.height, render_height[0]), render_height[1]))
    cw = max(4, int(round(box.width * ch / box.height)))
    canvas = Image.fromarray(np.clip(_grass(style, ch, cw, rng), 0, 255).astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(canvas)
    member = game.members[box.member]
    # side referees and staff stand by the touchline: advertising boards behind them
    if rng.random() < (0.6 if member.role in ('side_referee', 'staff') else 0.03):
        _ad_board(draw, cw, ch, rng)

    # figure placement: a small margin, sometimes cut by the box edge (crowded or imprecise boxes)
    fig_h = ch * rng.uniform(0.86, 0.95)
    top = ch * rng.uniform(0.015, 0.05)
    cx = cw / 2 + cw * rng.normal(0.0, 0.04)
    cut = rng.random()
    if cut < 0.05:
        fig_h *= 1.12   # the feet leave the box
    elif cut < 0.1:
        cx += cw * rng.choice((-0.22, 0.22))

    # another person in front of or behind this one
    occluder = None
    if frame_mates and rng.random() < (0.28 if frame.is_action else 0.18):
        occluder = frame_mates[int(rng.integers(0, len(frame_mates)))]
        o_member = game.members[occluder.member]
        o_scale = rng.uniform(0.85, 1.15)
        o_dx = cw * rng.choice((-1.0, 1.0)) * rng.uniform(0.45, 0.85)
        o_top = top + fig_h * rng.uniform(-0.12, 0.18)
        o_args = (o_member, _kit_of(game, o_member), cx + o_dx, o_top, fig_h * o_scale, occluder.view,
                  occluder.stride, occluder.arm)
        in_front = rng.random() < 0.4
    # contact shadow
    shadow = _shade(style['grass'], 0.7)
    sx, sy = cx, top + fig_h * 0.995
    draw.ellipse((sx - fig_h * 0.12, sy - fig_h * 0.02, sx + fig_h * 0.12, sy + fig_h * 0.02), fill=shadow)
    if occluder is not None and not in_front:
        _draw_person(draw, *o_args)
    _draw_person(draw, member, _kit_of(game, member), cx, top, fig_h, box.view, box.stride, box.arm)
    if occluder is not None and in_front:
        _draw_person(draw, *o_args)

    if (cw, ch) != (box.width, box.height):
        canvas = canvas.resize((box.width, box.height), Image.BILINEAR)
    return _finish(canvas, style, rng)


def render_action(game: GamePlan, action: ActionPlan, render_height: Tuple[int, int], seed: int,
                  split_no: int) -> Iterator[Tuple[BoxPlan, Image.Image]]:
    """Yield ``(box, image)`` for every box of the action; each box has its own generator."""
    by_frame = {}
    for box in action.boxes:
        by_frame.setdefault(box.frame_no, []).append(box)
    for box in action.boxes:
        rng = np.random.default_rng([seed, split_no, game.game_no, 3, action.action_no, box.frame_no, box.box_no])
        mates = [b for b in by_frame[box.frame_no] if b is not box]
        yield box, render_box(game, action, box, render_height, rng, mates)
