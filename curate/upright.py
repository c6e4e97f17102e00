"""Which member a group's anchor was turned from, so that member's pose is the upright one.

The candidates (members the dups stage found neither resampled nor filled, no EXIF turn, at an
odd angle to the anchor) are tested as the upright one the anchor was turned from: an anchor in
the canvas that candidate's picture needs turned (`_enlarged_canvas`), padded by a turn's wedges
against it, or cut from it (it shows the picture larger or about as large, while the candidate
shows picture, not fill, beyond the anchor's frame) is shown turned from it (`_turned_from`); a
candidate itself shown turned from another is followed back to where the chain starts
(`chain_starts`). Where the frames show no such member, the blur each resampling adds says which
was made from which. `onto_upright` gives the anchor the verified turn onto the chain's start.
"""

from __future__ import annotations

import numpy as np

from curate.group_turns import AGREE, GROUP_SNAP, Group, angle_diff, group_confidence, odd_part
from curate.pair_pixels import PAD_SURE, SCALE_ERROR
from curate.skew import SKEW_BAR, skew_confidence

# Why each value is what it is, and the figures behind it: docs/orient-constants.md.
SUPPORT = 0.75  # wedge fit (of ACCEPT) that confirms a pair's odd turn: few straight films reach it, most copies do
PAIR_FIT = 0.3  # a pair's turned side fits wedges this well...
PAIR_MARGIN = 0.2  # ... and this much better than the other side
CUT_SCALE = 0.03  # a copy cut from a member does not show the picture this much smaller than it
BEYOND_FILL = 0.2  # beyond a cut copy's frame its original fits a fill under this...
PICTURE = 3.0  # ... and holds this many grey levels a pixel that no fill explains
BEYOND_LOOSE = 0.3  # ... under this where the copy shows no picture of its own there (dark, flat borders fit 0.2-0.3)
CUT_SURE = 0.1  # under this the member is picture even if its wedges fit (below SUPPORT): originals fit by chance
PAD_FIT = 0.3  # a fill beyond the original's frame this good shows a turned, zoomed copy, wedges besides
PAD_BACKED = 0.4  # ... and from this, against an unmarked member, it backs wedges from PAIR_FIT
PAD_REACH = 0.03  # a pad is looked for at every scale this close to the verified one (composed scales drift)
CANVAS_PX = 2.0  # px: a canvas this close to the one a turn enlarged to hold the other's picture...
CANVAS_TURN = 1.0  # degrees: ... at an angle this close to the pair's verified one...
CANVAS_SCALE = 0.03  # ... at the same pixel scale, this close: one member is the other so turned
RESAMPLED_GAP = 0.15  # log sharpness from which the sharper member is shown the source (resample_gap)


def placed_frame(g: Group, x: int, u: int, content, dims, reach: float = SCALE_ERROR,
                 mixed: bool = False) -> tuple[float, float, float, bool] | None:
    """(turn, scale, reach, mixed) that put x's picture into u's canvas, for beyond_fill; None when
    the two differ in size or a content scale is unknown (nothing to compare)."""
    if dims[x] is None or tuple(dims[x]) != tuple(dims[u]) or not (content[x] > 0 and content[u] > 0):
        return None
    return round(g.turn(x, u), 2), round(float(content[u] / content[x]), 4), reach, mixed


def _shows_more(x: int, u: int, content) -> bool:
    """Whether x shows the picture CUT_SCALE larger than u (the dups stage's content scales)."""
    if not (content[x] > 0 and content[u] > 0):
        return False
    return round(float(content[u] / content[x]), 4) <= 1 / (1 + CUT_SCALE)


def _cut(g: Group, x: int, u: int, content, dims) -> tuple[float, float, float] | None:
    """x's frame placed in u (see placed_frame) unless u shows the picture CUT_SCALE larger: where x
    shows it larger the frame lies inside u's canvas, and at about the same scale the turn
    between them leaves u's corners beyond it; u's pixels there say whether x was cut from u
    (picture) or u padded around x (fill). None otherwise."""
    frame = placed_frame(g, x, u, content, dims)
    return frame if frame is not None and not _shows_more(u, x, content) else None


def pad_frame(g: Group, x: int, u: int, content, dims) -> tuple | None:
    """u's frame placed in x (see placed_frame) at every scale within PAD_REACH, two constants counting
    as a fill (a Kaggle-style chain copy's pad holds black and white): x's pixels there say whether
    x was padded around u's picture."""
    return placed_frame(g, u, x, content, dims, PAD_REACH, mixed=True)


def pad_fill(g: Group, found: list, x: int, u: int, content, dims) -> tuple[float, float]:
    """x's pixels beyond u's frame (pad_frame): how well they fit a fill, and the grey levels a pixel
    they hold that no fill explains; (0, 0) when not measured or when the frame covers x."""
    pad = pad_frame(g, x, u, content, dims)
    return (found[x]["beyond"].get(pad) or (0.0, 0.0)) if pad else (0.0, 0.0)


def holds_own_picture(g: Group, found: list, x: int, u: int, content, dims) -> bool:
    """Whether x shows picture of its own beyond u's frame (no fill, PAD_FIT, and PICTURE grey
    levels left): x holds what u does not, so x was not made from u."""
    fill, left = pad_fill(g, found, x, u, content, dims)
    return fill < PAD_FIT and left >= PICTURE


def _pair_tests(g: Group, x: int, u: int, content, dims) -> list[tuple[int, list[float], list[tuple]]]:
    """The image work that says whether x was turned from u (see _turned_from): x's wedges at its
    turn onto u, u's at its turn onto x, x's pixels beyond u's frame (padded around u?: a turn
    on a fixed canvas fills x's corners even where a zoom in hides the wedges' shape) and, where
    x shows the picture larger, u's pixels beyond x's frame (cut from u?); and u's pixels beyond
    x's frame, two constants counting as a fill, at any scale (padded around x?)."""
    cut, pad = _cut(g, x, u, content, dims), pad_frame(g, x, u, content, dims)
    beyond = [f for f in (cut, placed_frame(g, x, u, content, dims, mixed=True)) if f is not None]
    return [(x, [round(-odd_part(g.turn(x, u)), 2)], [pad] if pad else []),
            (u, [round(-odd_part(g.turn(u, x)), 2)], beyond)]


def upright_tests(g: Group, content, dims, shown: list[int] | None = None) -> list[tuple[int, list[float], list[tuple]]]:
    """The image work onto_upright needs: the anchor against each candidate (shown None), or
    each of the `shown` candidates against every other candidate."""
    if shown is None:
        return [t for u in g.candidates for t in _pair_tests(g, g.anchor, u, content, dims)]
    return [t for u in shown for v in g.candidates + g.mates if v != u for t in _pair_tests(g, u, v, content, dims)]


def upright_sources(g: Group, found: list, content, dims) -> tuple[list[tuple[int, float]], list[int]]:
    """chain_starts by the frames, or where they show the anchor turned from no candidate, by the
    resampling too (see _turned_from)."""
    by_frames = chain_starts(g, found, content, dims)
    return by_frames if by_frames[1] else chain_starts(g, found, content, dims, resampling=True)


def chain_starts(g: Group, found: list, content, dims, resampling: bool = False) -> tuple[list[tuple[int, float]], list[int]]:
    """Where the chain the anchor was turned along begins: of the candidates it is shown turned
    from (_turned_from), those shown turned from another of them drop out; each one left that
    was itself turned from other candidates is replaced by those, tested so in turn, until the
    ones left were turned from none (a chain's original: kaggle 2's 14-rotated1-rotated1.jpg was
    turned 22.8 degrees onto its parent 14-rotated1.jpg). One turned from a member at the anchor's
    own pose (g.mates) starts the chain where the anchor stands: the anchor itself. Returns those
    starts with the surety of the weakest step to them, and every candidate reached (the ones not
    yet tested against the others read as starts)."""
    def sources(u: int, among) -> list[tuple[int, float]]:  # (v, how surely u was turned from v)
        return [(v, e) for v in among if v != u and abs(odd_part(g.turn(u, v))) >= GROUP_SNAP
                and (e := _turned_from(g, found, u, v, content, dims, resampling)) > 0]

    step = [(u, e) for u in g.candidates if (e := _turned_from(g, found, g.anchor, u, content, dims, resampling)) > 0]
    starts, reached = [], []
    while step:
        step = [(u, e) for u, e in step if u not in reached]
        reached += [u for u, _ in step]
        step = [(u, e) for u, e in step if not sources(u, [v for v, _ in step])]
        further = []
        for u, e in step:
            if sources(u, g.mates):  # turned from where the anchor stands: nothing to turn it by
                starts.append((g.anchor, e))
                continue
            back = sources(u, g.candidates)
            if back:
                further += [(v, min(e, ev)) for v, ev in back]
            else:
                starts.append((u, e))
        step = further
    return sorted(starts, key=lambda s: g.candidates.index(s[0]) if s[0] in g.candidates else -1), reached


def _enlarged_canvas(g: Group, x: int, u: int, content, dims) -> bool:
    """Whether x's canvas is the one u's picture needs turned by the pair's angle in a canvas
    enlarged to hold all of it, at u's pixel scale (see CANVAS_PX): x is u so turned. A turn only
    adds canvas, so the reverse cannot also hold."""
    if dims[x] is None or dims[u] is None or not (content[x] > 0 and content[u] > 0):
        return False
    turn = g.turn(x, u)
    (wx, hx), (wu, hu) = (float(v) for v in dims[x]), (float(v) for v in dims[u])
    if round(turn / 90.0) % 2:  # a quarter turn swaps u's sides first
        wu, hu = hu, wu
    # content scale is per longest side (dups): the same pixel scale when it matches the sides' ratio
    if abs(content[x] / content[u] * max(wx, hx) / max(wu, hu) - 1.0) > CANVAS_SCALE:
        return False
    t = np.radians(abs(odd_part(turn)) + np.arange(-CANVAS_TURN, CANVAS_TURN + 1e-9, 0.05))
    c, s = np.cos(t), np.sin(t)
    off = np.maximum(np.abs(wx - (wu * c + hu * s)), np.abs(hx - (hu * c + wu * s)))
    return bool(off.min() <= CANVAS_PX)


def _turned_from(g: Group, found: list, x: int, u: int, content, dims, resampling: bool = False) -> float:
    """How surely x is u turned (0: not shown): x's canvas is u's turned and enlarged
    (_enlarged_canvas), or x is padded (its wedges at the pair's angle fit SUPPORT at least and
    PAIR_MARGIN better than u's: a straight film fits one angle by chance up to ~0.55, a thin
    one up to 0.85; and where u shows the picture larger, x's pixels beyond u's frame, placed at
    any scale within PAD_REACH of the verified one, two constants counting as a fill, fit a fill
    PAD_FIT at least: a copy cut from x would show x's picture there; elsewhere x was cut from u
    too, so u's pixels beyond x's frame fit a fill under BEYOND_LOOSE; its wedges from PAIR_FIT
    where they fit PAD_BACKED (PAD_FIT where u shows picture beyond x's frame, see below) and u
    bears no mark at all; or, with no wedges to go by, they fit PAD_SURE, a Kaggle-style zoom out
    on the same canvas, which u's wedges outweigh only from SUPPORT) or cut (u does not show the picture CUT_SCALE
    larger, u's pixels beyond x's frame are picture, not a zoom out's fill (BEYOND_FILL;
    BEYOND_LOOSE where x shows no picture of its own beyond u's frame, which at about u's scale
    it must not: a copy made from u has nothing of its own there), u is not the padded one
    (unless clearly picture, CUT_SURE, and u's wedges under SUPPORT), and u bears no mark at
    all: a Kaggle-style chain copy can shrink without a fill that beyond_fill sees, and such a
    copy seldom escapes every mark). u's wedges at the pair's angle count against x only where u
    may have been padded around x: not where u's pixels beyond x's frame hold PICTURE grey levels
    and fit no fill (BEYOND_FILL) even with two constants (a chain's pad holds black and white),
    while x shows no picture of its own beyond u's frame: then u's fit is a chance one (224 px
    originals fit 0.3-0.87). With `resampling` (the frames showed no candidate, see upright_sources),
    failing all that, x is also shown made from u when u is sharper than x put onto its frame by
    RESAMPLED_GAP more than x is than u put onto x's (resample_gap), and u's wedges do not say u
    was padded around x."""
    if _enlarged_canvas(g, x, u, content, dims):
        return 1.0
    fx = found[x]["fits"].get(round(-odd_part(g.turn(x, u)), 2), 0.0)
    fu = found[u]["fits"].get(round(-odd_part(g.turn(u, x)), 2), 0.0)
    u_padded = fu >= PAIR_FIT and fu - fx >= PAIR_MARGIN
    cut, pad = _cut(g, x, u, content, dims), pad_frame(g, x, u, content, dims)
    # (a file that did not decode says nothing: None)
    beyond, picture = (found[u]["beyond"].get(cut) or (1.0, 0.0)) if cut else (1.0, 0.0)
    fill = pad_fill(g, found, x, u, content, dims)[0]
    own_picture = holds_own_picture(g, found, x, u, content, dims)
    shows_less = pad is not None and _shows_more(u, x, content)  # u shows the picture larger: cut from x?
    # at about u's scale, a copy made from u holds nothing of its own beyond u's frame (two copies
    # both cut from a third do)
    same_scale = cut is not None and not _shows_more(x, u, content)
    # u's pixels beyond x's frame, two constants counting as a fill: picture there says u was not
    # padded around x (kaggle 7's upright 58.jpg against its chain copy zoomed out to 0.78, white
    # then black: 0.14 with one fill, 0.60 with two); against wedges that do not confirm a turn
    # (under SUPPORT) a fit under BEYOND_LOOSE is picture too, as for a cut (dark, flat borders fit
    # 0.2-0.3): the originals of 9 kept copies (8 zoomed in 1.1-1.6) on kaggle seeds 1-73 but 83
    # fit 0.21-0.29 there with 4-22 grey levels left, against chance wedges of 0.35-0.46
    beyond_u = found[u]["beyond"].get(placed_frame(g, x, u, content, dims, mixed=True)) or (1.0, 0.0)
    u_picture = beyond_u[1] >= PICTURE and beyond_u[0] < (BEYOND_FILL if fu >= SUPPORT else BEYOND_LOOSE)
    backed = shows_less and g.unmarked[u] and fx >= PAIR_FIT and fill >= (PAD_FIT if u_picture else PAD_BACKED)
    # where u does not show the picture larger, x turned from u was cut from it too: u's pixels
    # beyond x's frame are u's picture, not fill (kaggle seeds 1-73 but 83: the turned copies so
    # shown padded against their original, at most 0.33 in 346 pairs; kaggle 241's original
    # against a chain copy zoomed out to 0.86, 0.385)
    cut_from = cut is None or beyond < BEYOND_LOOSE
    if (fx >= SUPPORT or backed) and fx - fu >= PAIR_MARGIN and (fill >= PAD_FIT if shows_less else cut_from):
        return fx
    # ... and where x shows no picture of its own beyond u's frame either, u's wedges are chance,
    # unless they fit as well as a lone image's search reports a skew (SKEW_BAR): no original's
    # chance fit reached that (224 px: 0.3-0.87). Kaggle 829's upright 7.jpg was read as cut from
    # its copy turned -12.3 and zoomed out to 0.872 (wedges 1.33): the verified turn and scale,
    # 1.1 degrees and 1.2% off, put its bright edge band beyond its frame in the copy, picture
    if u_picture and not own_picture and skew_confidence(fu) < SKEW_BAR:
        u_padded = False
    # no original beyond a copy's frame fits PAD_SURE (see PAD_FIT): only a fit that confirms a
    # turn (SUPPORT) says u was padded instead (kaggle 73's 27.jpg fits 0.30 by chance against its
    # copy's pad of 0.84)
    if fill >= PAD_SURE and not (u_padded and fu >= SUPPORT):
        return fill
    if g.unmarked[u] and picture >= PICTURE and not (same_scale and own_picture) and (
            not u_padded and beyond < (BEYOND_FILL if own_picture else BEYOND_LOOSE)
            or not own_picture and fu < SUPPORT and beyond < CUT_SURE):
        return 1.0 - beyond
    # resampling: the frames showed no candidate, so the blur of resampling says which was made
    # from which (a copy is as blurred against a sibling made in fewer steps: only a fallback)
    gap = found[x]["gaps"].get(u, 0.0) if resampling else 0.0
    if gap >= RESAMPLED_GAP and not u_padded:
        return min(1.0, gap)
    return 0.0


def onto_upright(g: Group, found: list, content, dims) -> tuple | None:
    """The verified turn onto the member judged upright, when the anchor was turned from it.

    The candidates (unmarked by the dups stage, no EXIF turn, one picture with the anchor at an
    odd angle) the anchor is shown turned from (_turned_from), followed back along the chain to
    where it starts (chain_starts), are judged upright; a chain that starts at a member at the anchor's
    own pose leaves the anchor as it stands. When they agree on the anchor's odd turn, the anchor
    gets the turn onto the first (the representative first), whatever copies turned further say
    (their wedges call any less turned member straight). When they agree on the whole turn too,
    the first's right-angle pose is the upright one (a Kaggle-style chain turns 5-25 degrees a
    step: copies end up turned beyond 45); else it stays _quarter's. When they disagree the
    anchor is flagged and left as it is. None when no candidate is so shown. Returns
    _odd_decision's tuple and the member whose right-angle pose is upright (or None)."""
    k = g.anchor
    upright, reached = upright_sources(g, found, content, dims)
    if not reached:
        return None
    turns = [0.0 if u == k else odd_part(g.turn(k, u)) for u, _ in upright]
    if not upright or any(angle_diff(t, turns[0]) > AGREE for t in turns):
        return 0.0, 0.5, "", "low-confidence", None, [], None
    u, e = upright[0]
    conf = min(group_confidence(g.score[u]), round(0.5 + 0.5 * min(1.0, e), 3))
    if u == k:
        return 0.0, conf, "", "", None, [0.0], None
    whole = all(angle_diff(g.turn(k, v), g.turn(k, u)) <= AGREE for v, _ in upright)
    return turns[0], conf, "group", "", u, [0.0], u if whole else None
