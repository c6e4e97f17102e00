"""Two aligned members' pixels against each other: which one was made from the other.

`beyond_fill`: how well one image's pixels beyond another member's frame (placed by the pair's
verified turn and scale) are fill (it was padded around that member's picture) or picture (that
member was cut from it). `resample_gap`: every turn or zoom blurs the finest detail a little, so
put onto each other's frames, the member a copy was made from stays the sharper.
"""

from __future__ import annotations

import cv2
import numpy as np

# Why each value is what it is, and the figures behind it: docs/orient-constants.md.
SCALE_ERROR = 0.01  # how far a verified content scale may be off (see beyond_fill)
PAD_SURE = 0.6  # a fill beyond another member's frame this good is a pad (no original's reached it)
GAP_MIN_CORR = 0.8  # the two put onto one frame correlate at least this well, or no claim
GAP_SCALE = 1.5  # ... and show the picture within this factor: a copy magnified further is mostly JPEG noise
GAP_MARGIN = 7  # px inside both frames and the canvas's edge: a copy's fill and the edge's blur stay out


def beyond_fill(pixels: np.ndarray, deg: float, scale: float, reach: float = SCALE_ERROR,
                mixed: bool = False) -> tuple[float, float]:
    """How well the pixels beyond the frame of another member of the same size, turned `deg` CCW
    and scaled by `scale` into this image, are fill (original.fill_beyond; either sign of the turn, as
    a mirror leaves it open), and how much they hold that the fill does not explain (grey levels
    per pixel): a good fit when this image was padded around that member's picture; a poor fit
    and much left over when it shows picture there (that member was cut from it). The scale is
    tried within `reach` of `scale`, in SCALE_ERROR steps (beyond the first, until a fit reaches
    PAD_SURE). mixed: a pad of two constants counts as fill too (original.fill_beyond)."""
    from curate.original import fill_beyond

    img = pixels.astype(np.float32)
    # the verified scale is known to about SCALE_ERROR: a frame edge moved by that error lands on
    # picture, so the pixels show picture only if they do at every scale within it, and fill if
    # they are fill at any (a copy zoomed out 0.907 with a replicated border, verified at 0.8995,
    # left 8.2 grey levels unexplained at 0.8995 and 2.7 at 0.907)
    found = []
    for step in range(int(round(reach / SCALE_ERROR)) + 1):
        # beyond SCALE_ERROR, only while no scale has shown a pad (PAD_SURE): most frames stop there
        if step > 1 and max(f for f, _ in found) >= PAD_SURE:
            break
        found += [fill_beyond(img, sign * deg, scale * (1 + SCALE_ERROR) ** k, residual=True, mixed=mixed)
                  for sign in (1, -1) for k in sorted({-step, step})]
    return round(max(f for f, _ in found), 3), round(min(left for _, left in found), 2)


def _sharpness(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Finest detail over coarse detail within the mask (log): a tone change scales both alike."""
    fine = np.abs(cv2.Laplacian(pixels, cv2.CV_32F, ksize=1))[mask].mean()
    coarse = np.abs(cv2.Laplacian(cv2.GaussianBlur(pixels, (0, 0), 2.0), cv2.CV_32F, ksize=3))[mask].mean()
    return float(np.log(max(fine, 1e-6) / max(coarse, 1e-6)))


def _placed(pixels: np.ndarray, flip: bool, deg: float, scale: float, flip_after: bool, shape) -> tuple:
    """pixels mirrored when `flip`, turned deg CCW and scaled about the centre, that centre put
    onto the centre of a canvas of `shape`, mirrored again when `flip_after`; and where it holds
    them (GAP_MARGIN inside)."""
    img = np.ascontiguousarray(pixels[:, ::-1]) if flip else pixels
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, scale)
    # centre onto centre, as every copy the builders make is placed (a turn on a grown canvas,
    # a quarter turn, a resize, a zoom on the same canvas)
    m[:, 2] += ((shape[1] - w) / 2, (shape[0] - h) / 2)
    # rounded to whole grey levels as any saved file is: on a dark, flat picture a float placement
    # is smoother than a file by its rounding alone (kaggle 443's upright 15.jpg read as made from
    # its copy zoomed in 1.14, 0.18 the wrong way; rounded, 0.09)
    out = np.rint(cv2.warpAffine(img, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR))
    inside = cv2.warpAffine(np.ones(img.shape, np.uint8), m, (shape[1], shape[0]), flags=cv2.INTER_NEAREST)
    # GAP_MARGIN from the canvas's own edge too: interpolation draws what lies beyond it into the
    # edge rows (the demo's upright 64.jpg read +0.19 the wrong way against its copy with white
    # wedges, -0.34 without its canvas's edge)
    side = 2 * GAP_MARGIN + 1
    inside = cv2.erode(inside, np.ones((side, side), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return (out[:, ::-1], inside[:, ::-1]) if flip_after else (out, inside)


def resample_gap(x_pixels: np.ndarray, u_pixels: np.ndarray, x_mirrored: bool, u_mirrored: bool,
                 deg: float, scale: float) -> float:
    """How surely x was resampled from u rather than u from x: u is x (mirrored as marked) turned
    deg CCW and scaled by `scale` about the centre. Each is put onto the other's frame; a copy
    put back onto its source was resampled twice, so the source is sharper than it, while the
    source put onto the copy matches the copy. Returns (u's sharpness over x put onto u) minus
    (x's over u put onto x), log: > 0 when u is the less resampled; 0 when they do not align or
    one shows the picture more than GAP_SCALE times larger."""
    if not 1 / GAP_SCALE <= scale <= GAP_SCALE:
        return 0.0
    x, u = x_pixels.astype(np.float32), u_pixels.astype(np.float32)
    into_u, on_u = _placed(x, x_mirrored, deg, scale, u_mirrored, u.shape)
    into_x, on_x = _placed(u, u_mirrored, -deg, 1.0 / scale, x_mirrored, x.shape)
    if on_u.sum() < 400 or on_x.sum() < 400 or np.corrcoef(into_u[on_u], u[on_u])[0, 1] < GAP_MIN_CORR:
        return 0.0
    return round((_sharpness(u, on_u) - _sharpness(into_u, on_u)) - (_sharpness(x, on_x) - _sharpness(into_x, on_x)), 3)
