"""DICOM files through pydicom (the optional extra `curate[dicom]`), as imageio.decode's pixels.

Radiographs are stored as 10-16-bit values that only become an image through the file's own
display pipeline: the modality LUT (rescale slope / intercept), then the VOI LUT or window
(centre / width), then MONOCHROME1's inversion (high values are dark). That pipeline is
followed here and its output range mapped onto 0-255; a file without a window is shown from its
darkest to its brightest value (what viewers do). Multi-frame files give their first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from curate.errors import ImageError

DICOM_EXTENSIONS = {".dcm", ".dicom", ".dic"}
MISSING = "DICOM needs pydicom, which is not installed: pip install 'curate[dicom]'"


def is_dicom(path: Path, head: bytes) -> bool:
    """A DICOM file: 'DICM' after the 128-byte preamble (which may hold a TIFF header of its
    own), or a DICOM extension on a file no other format claims."""
    from curate.imageio import sniff

    return head[128:132] == b"DICM" or (path.suffix.lower() in DICOM_EXTENSIONS and not sniff(head))


def decode_dicom(path: Path, head: bytes, max_pixels: int):
    """pixels (H x W uint8) and what the file says: a Decoded, or ImageError."""
    try:
        import pydicom  # noqa: F401
    except ImportError:
        raise ImageError("unreadable", MISSING) from None
    with warnings.catch_warnings():  # pydicom warns about every oddity; the status says what matters
        warnings.simplefilter("ignore")
        return _decode(path, head, max_pixels)


def _decode(path: Path, head: bytes, max_pixels: int):
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    from curate.imageio import Decoded

    try:  # a .dcm without the preamble (old ACR-NEMA style) is read by force
        ds = pydicom.dcmread(path, force=head[128:132] != b"DICM")
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise ImageError("corrupt", f"DICOM header: {exc}") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if head[128:132] == b"DICM":
            raise ImageError("not-image", "DICOM without pixel data (a report or other object)")
        raise ImageError("corrupt", "DICOM extension, but no DICOM pixel data could be read")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageError("corrupt", f"DICOM header: {exc}") from None
    if rows * cols > max_pixels:
        raise ImageError("too-large", f"{cols}x{rows} is over {max_pixels:,} pixels")
    if rows == 0 or cols == 0:
        raise ImageError("corrupt", "zero-sized image")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        arr = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:  # pydicom raises many kinds; a missing codec is not a broken file
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "plugin" in text.lower() or "missing" in text.lower() or "not supported" in text.lower():
            raise ImageError("unreadable", f"DICOM pixel data: {text}") from None
        raise ImageError("corrupt", f"DICOM pixel data: {text}") from None

    colour = False
    if arr.ndim == 3:  # colour samples (pydicom gives YBR as RGB)
        import cv2

        rgb = np.clip(arr, 0, 255).astype(np.uint8) if arr.dtype != np.uint8 else arr
        colour = bool(np.ptp(rgb.astype(np.int16), axis=2).max() > 0)
        pixels = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    else:
        pixels = _grey(arr, ds)
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
    bits = int(ds.get("BitsStored", 8) or 8)
    meta = {"patient_id": str(ds.get("PatientID", "") or "").strip(),
            "study_id": str(ds.get("StudyInstanceUID", "") or "").strip()}
    return Decoded(pixels=np.ascontiguousarray(pixels), format="DICOM", mode=photometric, width=cols, height=rows,
                   bit_depth=bits, colour=colour, exif_orientation=1, frames=frames, meta=meta)


def _grey(arr: np.ndarray, ds) -> np.ndarray:
    """Stored values -> displayed values -> 0-255: modality LUT, then VOI LUT or window."""
    from pydicom.pixels import apply_modality_lut, apply_windowing

    try:
        values = apply_modality_lut(arr, ds)
        if ds.get("VOILUTSequence"):
            shown, lo, hi = _voi_lut(values, ds.VOILUTSequence[0])
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            shown = apply_windowing(values, ds)
            # the window's whole output range maps onto 0-255, not the image's own range
            lo, hi = (float(v) for v in apply_windowing(np.array([-1e12, 1e12]), ds))
        else:
            shown = values
            lo, hi = float(np.min(values)), float(np.max(values))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError) as exc:
        raise ImageError("corrupt", f"DICOM display values: {exc}") from None
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((np.asarray(shown, dtype=np.float64) - lo) * scale), 0, 255).astype(np.uint8)


def _voi_lut(values: np.ndarray, item) -> tuple[np.ndarray, float, float]:
    """A VOI LUT applied: (displayed values, the table's lowest and highest output). Done here:
    pydicom 3.0's apply_voi indexes through the table's own output type, so a 12-bit image
    through an 8-bit table wraps (every value read the first 256 entries)."""
    entries, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    data = item.LUTData
    table = (np.frombuffer(data, "<u2")[:entries] if isinstance(data, bytes)
             else np.asarray(data, dtype=np.float64).ravel()[:entries])
    index = np.clip(np.asarray(values, dtype=np.int64) - first, 0, len(table) - 1)
    return table[index], float(table.min()), float(table.max())
