"""The one image loader: every step that needs pixels gets them from here.

`decode(path)` returns greyscale uint8 pixels with EXIF orientation applied, plus what the
file told us on the way (format, mode, bit depth, frames, EXIF orientation). DICOM files go
through curate.dicom (pydicom, an optional extra). Anything that
cannot be decoded raises `ImageError` with the manifest's reason word, never a bare
Pillow exception, so callers can record a per-file status and carry on.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from curate.dicom import decode_dicom, is_dicom
from curate.errors import ImageError

# Refuse anything larger than this before decoding it (a 20k x 20k "bomb" would need 400 MB).
# Radiographs are rarely over 25 MP. Pillow's own warning at ~89 MP is not used: this is the limit.
MAX_PIXELS = 120_000_000
# Colour conversion runs over strips of this many pixels, so a full decode peaks at the decoded
# image plus the greyscale result plus a few MB (tests/test_hostile.py measures it).
STRIP_PIXELS = 1 << 20

# File signatures, so that a PNG named .jpg is noticed and garbage in an image's clothes
# is called corrupt rather than not-an-image.
SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WEBP",
    b"\x00\x00\x00\x0cjP  ": "JPEG2000",
}
IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".webp", ".jp2", ".j2k", ".pgm", ".ppm", ".pbm", ".pnm", ".dcm", ".dicom", ".dic",
}
# The formats each extension may legitimately hold (for the extension-mismatch flag).
EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG",
    ".gif": "GIF", ".bmp": "BMP", ".dib": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
    ".webp": "WEBP", ".jp2": "JPEG2000", ".j2k": "JPEG2000", ".pgm": "PPM", ".ppm": "PPM",
    ".pbm": "PPM", ".pnm": "PPM",
}


@dataclass
class Decoded:
    """Greyscale pixels and what the file said about itself."""

    pixels: np.ndarray  # H x W uint8, EXIF orientation applied, maybe reduced (see decode)
    format: str  # JPEG, PNG, ... as Pillow names it
    mode: str  # the file's own mode before conversion: L, RGB, I;16, P, ...
    width: int  # full-size width after EXIF orientation
    height: int
    bit_depth: int  # bits per channel: 1, 8 or 16 (32 for mode I / F)
    colour: bool  # the file holds colour channels that actually differ
    exif_orientation: int  # 1 = upright or no tag; 2..8 as in the EXIF standard
    frames: int  # > 1 for multi-frame TIFF / GIF / DICOM: the first frame is used
    meta: dict = field(default_factory=dict)  # DICOM: patient_id, study_id


def open_regular(path: str | Path):
    """Open a regular file (a link is followed) for reading in binary. FIFOs, devices, sockets
    and folders are never opened (a FIFO would block forever, /dev/zero never ends): they raise
    ImageError('unreadable', what they are). A missing file or a link loop raises OSError."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("unreadable", f"{special_kind(st.st_mode)}, not a regular file: never opened")
    # O_NONBLOCK: should the name have become a FIFO since the stat, opening it cannot hang
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ImageError("unreadable", f"{special_kind(mode)}, not a regular file: never opened")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def special_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def sniff(head: bytes) -> str | None:
    """The image format a file's first bytes announce, or None."""
    for sig, fmt in SIGNATURES.items():
        if head.startswith(sig):
            if fmt == "WEBP" and head[8:12] != b"WEBP":
                continue
            return fmt
    if head[:2] in (b"P2", b"P5", b"P3", b"P6", b"P1", b"P4"):
        return "PPM"
    return None


def looks_like_text(head: bytes) -> bool:
    """True for HTML, CSV, JSON, plain text: bytes that are (almost) all printable."""
    if not head:
        return False
    if head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml", b"{", b"[")):
        return True
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable / len(head) > 0.95


def _classify_open_failure(path: Path, head: bytes) -> ImageError:
    if not head:
        return ImageError("corrupt", "zero bytes")
    if sniff(head):
        return ImageError("corrupt", f"{sniff(head)} header but undecodable data")
    if looks_like_text(head):
        return ImageError("not-image", "text or HTML, not an image")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageError("corrupt", "garbage bytes with an image extension")
    return ImageError("not-image", "not an image format")


def _to_grey(im: Image.Image) -> tuple[np.ndarray, bool]:
    """Any Pillow mode -> (H x W uint8 greyscale, whether colour channels differ).

    Converted strip by strip, so the temporaries (float copies, split channels) stay a few MB
    however large the image: a full decode costs the decoded image plus its greyscale."""
    w, h = im.size
    extrema = im.getextrema() if im.mode in ("I", "F") or im.mode.startswith("I;16") else None
    if w * h <= STRIP_PIXELS:
        return _strip_to_grey(im, extrema)
    out = np.empty((h, w), np.uint8)
    colour = False
    rows = max(1, STRIP_PIXELS // w)
    for top in range(0, h, rows):
        strip, strip_colour = _strip_to_grey(im.crop((0, top, w, min(h, top + rows))), extrema)
        out[top:top + strip.shape[0]] = strip
        colour = colour or strip_colour
    return out, colour


def _strip_to_grey(im: Image.Image, extrema) -> tuple[np.ndarray, bool]:
    """_to_grey of one strip; `extrema` (lo, top) of the whole image for 16/32-bit modes."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im)
        if arr.dtype != np.float64:
            arr = arr.astype(np.float64)
        # 16-bit data keeps its tones: scale the full 16-bit range onto 8 bits rather than
        # clipping at 255 (which would turn nearly every pixel white).
        lo, top = (float(v) for v in extrema)
        if mode.startswith("I;16") or 255 < top <= 65535:
            arr = arr / 257.0
        elif top > 65535 or lo < 0:
            arr = (arr - lo) * (255.0 / max(top - lo, 1e-9))
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8), False
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im.convert("RGBA"))
        r, g, b, a = cv2.split(rgba)
        # colour: channels differ somewhere not fully transparent
        differ = cv2.bitwise_or(cv2.absdiff(r, g), cv2.absdiff(g, b))
        colour = bool(cv2.countNonZero(cv2.bitwise_and(differ, differ, mask=a)))
        alpha = a.astype(np.float32) / np.float32(255)
        rgb = rgba[..., :3].astype(np.float32) * alpha[..., None]  # composite over black
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8), colour
    if mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        rgb = np.asarray(im if mode == "RGB" else im.convert("RGB"))
        r, g, b = cv2.split(rgb)  # cv2 does these full-image passes far faster than numpy
        colour = bool(cv2.countNonZero(cv2.absdiff(r, g)) or cv2.countNonZero(cv2.absdiff(g, b)))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), colour
    return np.asarray(im.convert("L")), False


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8) an image still carries; 1 when none or broken."""
    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not a broken image
        return 1
    return orientation if orientation in range(1, 9) else 1


def orient_pixels(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2..8) to a pixel array, as Pillow's exif_transpose would."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.T
    if orientation == 6:
        return np.rot90(pixels, -1)
    if orientation == 7:
        return pixels[::-1, ::-1].T
    if orientation == 8:
        return np.rot90(pixels, 1)
    return pixels


def _bit_depth(mode: str) -> int:
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def decode(path: str | Path, *, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode one file to greyscale uint8 with EXIF orientation applied.

    max_side: the caller only needs an image this large (longest side). JPEGs are then
    decoded at a reduced scale (libjpeg's DCT scaling, far cheaper than a full decode)
    and the result is shrunk to fit. Without it the whole image is decoded, which is what
    an audit needs to catch a truncated file.
    """
    path = Path(path)
    try:
        with open_regular(path) as fh:
            return _decode_open(path, fh, max_side, max_pixels)
    except PermissionError:
        raise ImageError("unreadable", "permission denied") from None
    except IsADirectoryError:
        raise ImageError("unreadable", "is a directory") from None
    except OSError as exc:
        raise ImageError("unreadable", exc.strerror or str(exc)) from None


def decode_bytes(data: bytes, name: str = "", *, max_side: int | None = None,
                 max_pixels: int = MAX_PIXELS) -> Decoded:
    """decode() of bytes already read (`name` only says what its extension is)."""
    import io

    return _decode_open(Path(name or "image"), io.BytesIO(data), max_side, max_pixels)


def _decode_open(path: Path, fh, max_side: int | None, max_pixels: int) -> Decoded:
    head = fh.read(132)  # DICOM says so after a 128-byte preamble
    fh.seek(0)
    if is_dicom(path, head):
        img = decode_dicom(fh, head, max_pixels)  # pydicom reads the open handle
        if max_side and max(img.pixels.shape) > max_side:
            img.pixels = fit(img.pixels, max_side)
        return img
    try:
        with warnings.catch_warnings():
            # Pillow warns from ~89 MP; our own limit (max_pixels) is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fh)
    except Image.DecompressionBombError:
        raise ImageError("too-large", "decompression bomb: pixel count over the limit") from None
    except UnidentifiedImageError:
        raise _classify_open_failure(path, head) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError("corrupt", f"header: {exc}") from None

    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError("too-large", f"{w}x{h} is over {max_pixels:,} pixels")
        if w == 0 or h == 0:
            raise ImageError("corrupt", "zero-sized image")
        fmt = im.format or "?"
        mode = im.mode
        frames = getattr(im, "n_frames", 1) or 1
        orientation = _orientation(im)
        try:
            if max_side and fmt == "JPEG" and mode in ("L", "RGB", "CMYK", "YCbCr"):
                im.draft("L", (max_side, max_side))
            im.load()
            pending = _orientation(im)  # Pillow turns a TIFF as it loads it (and drops the tag)
            pixels, colour = _to_grey(im)
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
            raise ImageError("corrupt", _describe_decode_error(exc)) from None
    pixels = orient_pixels(pixels, pending)

    if pending in (5, 6, 7, 8):  # (a TIFF's size is already the turned one)
        w, h = h, w
    if max_side and max(pixels.shape) > max_side:
        pixels = fit(pixels, max_side)
    return Decoded(
        pixels=np.ascontiguousarray(pixels),
        format=fmt,
        mode=mode,
        width=w,
        height=h,
        bit_depth=_bit_depth(mode),
        colour=colour,
        exif_orientation=orientation,
        frames=int(frames),
    )


def _describe_decode_error(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if "truncated" in low or isinstance(exc, EOFError):
        return f"truncated: {text}"
    if "crc" in low or "checksum" in low:
        return f"bad checksum: {text}"
    return text


REMAP_COLS = 1024  # cv2.remap wants each side of its maps under 32k


def remap_buffer(size: int) -> np.ndarray:
    """A zeroed float32 map holding `size` points, REMAP_COLS wide (fill its first `size` of .ravel())."""
    return np.zeros((-(-size // REMAP_COLS), REMAP_COLS), np.float32)


def remap_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points (x, y) as the 2-D maps cv2.remap samples at (zero-padded; no np.pad, ~3x slower)."""
    maps = remap_buffer(x.size), remap_buffer(y.size)
    maps[0].ravel()[:x.size] = x.ravel()
    maps[1].ravel()[:y.size] = y.ravel()
    return maps


def fit(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longest side is max_side (area averaging; never enlarges)."""
    h, w = pixels.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return pixels
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def rotate(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise. Multiples of 90 are exact; other angles keep the frame size."""
    degrees = float(degrees) % 360
    if degrees == 0:
        return pixels
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(pixels, int(degrees // 90)))
    h, w = pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(pixels, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def load_grey(path: str | Path, *, size: int | None = None, rotation: float = 0) -> np.ndarray:
    """Pixels ready for a model: EXIF, then `rotation` degrees CCW, then size x size (or as is)."""
    pixels = decode(path, max_side=size * 2 if size else None).pixels
    pixels = rotate(pixels, rotation)
    if size:
        interp = cv2.INTER_AREA if max(pixels.shape) > size else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (size, size), interpolation=interp)
    return pixels


def jpeg_luma(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray] | None:
    """(the luma channel exactly as stored, full size, no EXIF turn applied; its 8x8 quantization
    table in natural order, float), or None for a file that is not a baseline-readable JPEG with
    its tables or that carries an EXIF turn. Raises ImageError when it cannot be read."""
    try:
        with open_regular(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                tables = getattr(im, "quantization", None) or {}
                if im.format != "JPEG" or 0 not in tables or im.mode not in ("L", "RGB", "YCbCr") \
                        or im.size[0] * im.size[1] > max_pixels or _orientation(im) != 1:
                    return None
                im.draft("L", im.size)  # libjpeg hands over Y itself, not a conversion of RGB
                im.load()
                pixels = np.asarray(im if im.mode == "L" else im.convert("L"))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError("corrupt", _describe_decode_error(exc)) from None
    return pixels, np.asarray(tables[0], np.float32).reshape(8, 8)
