"""The one image loader: every mode becomes greyscale uint8 with the right tones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from curate.errors import ImageError
from curate.imageio import decode, load_grey, rotate
from tests.conftest import radiograph, save

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))  # 32 x 64, dark left, bright right


def test_greyscale_jpeg_keeps_its_tones(tmp_path):
    img = decode(save(tmp_path / "a.jpg", GRADIENT, quality=95))
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (32, 64)
    assert img.format == "JPEG" and img.mode == "L" and img.bit_depth == 8
    assert np.abs(img.pixels.astype(int) - GRADIENT).mean() < 2


def test_rgb_grey_content_is_not_colour_but_real_colour_is(tmp_path):
    grey_rgb = np.stack([GRADIENT] * 3, axis=-1)
    img = decode(save(tmp_path / "grey.png", grey_rgb))
    assert img.mode == "RGB" and not img.colour
    assert np.array_equal(img.pixels, GRADIENT)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    img = decode(save(tmp_path / "red.png", red))
    assert img.colour and img.pixels[0, 0] == 76  # ITU-R 601 luma of pure red


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    wide = (GRADIENT.astype(np.uint16) * 257)  # 0..65535-ish
    Image.fromarray(wide).save(tmp_path / "deep.png")
    img = decode(tmp_path / "deep.png")
    assert img.bit_depth == 16
    assert np.abs(img.pixels.astype(int) - GRADIENT).max() <= 1  # clipping would make it all 255


def test_mode_I_32_bit(tmp_path):
    Image.fromarray(GRADIENT.astype(np.int32) * 257, mode="I").save(tmp_path / "i.tif")
    img = decode(tmp_path / "i.tif")
    assert np.abs(img.pixels.astype(int) - GRADIENT).max() <= 1


def test_alpha_is_composited_on_black(tmp_path):
    la = np.stack([np.full((4, 4), 200, np.uint8), np.full((4, 4), 0, np.uint8)], axis=-1)
    la[:2, :, 1] = 255  # top half opaque, bottom half transparent
    img = decode(save(tmp_path / "la.png", la, ))
    assert img.pixels[0, 0] == 200 and img.pixels[3, 0] == 0
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 100
    rgba[..., 3] = 128
    assert decode(save(tmp_path / "rgba.png", rgba)).pixels[0, 0] == 50


def test_palette_bilevel_and_cmyk(tmp_path):
    Image.fromarray(GRADIENT).convert("P").save(tmp_path / "p.png")
    assert np.abs(decode(tmp_path / "p.png").pixels.astype(int) - GRADIENT).mean() < 3
    Image.fromarray(GRADIENT).convert("1").save(tmp_path / "b.png")
    assert set(np.unique(decode(tmp_path / "b.png").pixels)) <= {0, 255}
    Image.fromarray(np.stack([GRADIENT] * 3, -1)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = decode(tmp_path / "c.jpg")
    assert img.mode == "CMYK"
    assert np.abs(img.pixels.astype(int) - GRADIENT).mean() < 4


def test_exif_orientation_is_applied(tmp_path):
    upright = radiograph(1, (40, 60))  # 40 rows x 60 columns
    stored = np.rot90(upright, 1)  # stored sideways; tag 6 tells viewers to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=98)
    img = decode(tmp_path / "r.jpg")
    assert img.exif_orientation == 6
    assert img.pixels.shape == upright.shape and (img.width, img.height) == (60, 40)
    assert np.abs(img.pixels.astype(int) - upright).mean() < 3


def test_multi_frame_gives_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "m.tif", save_all=True, append_images=frames[1:])
    img = decode(tmp_path / "m.tif")
    assert img.frames == 2 and img.pixels[0, 0] == 10


def test_reduced_decode_is_small_and_similar(tmp_path):
    big = np.kron(radiograph(3, (64, 64)), np.ones((16, 16), np.uint8))  # 1024 x 1024
    path = save(tmp_path / "big.jpg", big, quality=90)
    small = decode(path, max_side=128)
    assert max(small.pixels.shape) == 128 and (small.width, small.height) == (1024, 1024)
    reference = np.asarray(Image.fromarray(big).resize((128, 128), Image.BOX))
    assert np.abs(small.pixels.astype(int) - reference).mean() < 6


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = save(tmp_path / "wide.png", np.zeros((100, 200), np.uint8))
    with pytest.raises(ImageError) as err:
        decode(path, max_pixels=10_000)
    assert err.value.reason == "too-large"


@pytest.mark.parametrize("content, reason", [
    (b"", "corrupt"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "not-image"),
    (bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)), "corrupt"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "corrupt"),  # a JPEG header and nothing else
])
def test_broken_files_raise_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        decode(path)
    assert err.value.reason == reason


def test_truncated_jpeg_is_corrupt_though_verify_passes_it(tmp_path):
    data = save(tmp_path / "ok.jpg", radiograph(5, (256, 256)), quality=90).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    Image.open(cut).verify()  # Pillow's own check is fooled
    with pytest.raises(ImageError) as err:
        decode(cut)
    assert err.value.reason == "corrupt" and "truncated" in err.value.detail


def test_load_grey_rotates_counter_clockwise_then_resizes(tmp_path):
    pixels = np.zeros((20, 40), np.uint8)
    pixels[:, :20] = 255  # left half bright
    path = save(tmp_path / "half.png", pixels)
    out = load_grey(path, rotation=90)  # CCW: the left half goes to the bottom
    assert out.shape == (40, 20) and out[-1, 0] == 255 and out[0, 0] == 0
    assert load_grey(path, size=16, rotation=90).shape == (16, 16)
    assert np.array_equal(rotate(pixels, 360), pixels)
