"""The content box on real photo bytes: frames and padding of any colour and width, and odd pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from photo_corpus import FRAME_COLOURS, frame, originals, pad, reencode
from PIL import Image

from curate.dedupe.content import content_box
from curate.dedupe.decode import decode

PHOTO = originals(1)[0]  # skimage's astronaut, 512 x 512


def _box(img: Image.Image, quality: int = 80):
    return content_box(np.asarray(reencode(img, quality)))


@pytest.mark.parametrize("colour", list(FRAME_COLOURS))
@pytest.mark.parametrize("width", [0.02, 0.1, 0.25])
def test_frames_of_any_colour_and_width_are_cut(colour, width):
    framed = frame(PHOTO, colour, width)
    b = _box(framed)
    border = round(min(PHOTO.size) * width)
    for got, want in zip(
        (b.x0, b.y0, b.x1, b.y1), (border, border, border + PHOTO.width, border + PHOTO.height), strict=False
    ):
        assert abs(got - want) <= 0.025 * PHOTO.width, (b, border)  # a thin frame shares JPEG blocks with the photo
    assert b.note is None and not b.flat


@pytest.mark.parametrize("aspect", [16 / 9, 2.0, 0.6])
def test_padding_to_another_aspect_ratio_is_cut(aspect):
    padded = pad(PHOTO, "white", aspect)
    b = _box(padded)
    assert abs((b.x1 - b.x0) - PHOTO.width) <= 3 and abs((b.y1 - b.y0) - PHOTO.height) <= 3


def test_a_photo_without_a_frame_keeps_its_content():
    b = _box(PHOTO)
    assert (b.x1 - b.x0) * (b.y1 - b.y0) >= 0.95 * PHOTO.width * PHOTO.height


def test_one_sided_band_and_a_frame_inside_a_frame():
    one = Image.new("RGB", (PHOTO.width + 90, PHOTO.height), (0, 0, 0))
    one.paste(PHOTO, (90, 0))
    b = _box(one)
    assert abs(b.x0 - 90) <= 3 and b.x1 >= one.width - 3
    # as the pipeline sees it: decoded from JPEG bytes at reduced scale
    nested = frame(frame(PHOTO, "black", 0.05), "cream", 0.1)
    buf = io.BytesIO()
    nested.save(buf, "JPEG", quality=80)
    x0, y0, x1, y1 = decode(buf.getvalue()).box.fractions()
    inner = PHOTO.width / nested.width
    assert abs((x1 - x0) - inner) <= 0.03 and abs((y1 - y0) - inner) <= 0.03


def test_bands_are_cut_exactly_where_they_end_on_every_side():
    """A lossless picture small enough to be searched pixel by pixel: a white frame of four widths, a
    2-pixel ringing seam, a black frame, the photo; the box is the photo to the pixel."""
    rng = np.random.default_rng(0)
    photo = np.asarray(PHOTO.resize((150, 120)))

    def ring(a, width, colour=None):
        h, w = a.shape[:2]
        out = rng.integers(0, 256, (h + 2 * width, w + 2 * width, 3)).astype(np.uint8)  # the seam: noise
        if colour is not None:
            out[:] = colour
        out[width : width + h, width : width + w] = a
        return out

    seam = ring(ring(photo, 5, 0), 2)  # the photo starts 7 px inside
    top, bottom, left, right = 9, 4, 6, 12
    framed = np.full((seam.shape[0] + top + bottom, seam.shape[1] + left + right, 3), 255, np.uint8)
    framed[top : top + seam.shape[0], left : left + seam.shape[1]] = seam
    b = content_box(framed)
    assert (b.x0, b.y0, b.x1, b.y1) == (left + 7, top + 7, left + 7 + 150, top + 7 + 120) and b.note is None


def test_odd_pictures_get_a_one_line_reason_not_an_error():
    white = content_box(np.full((300, 400, 3), 255, np.uint8))
    assert white.flat and white.note == "single colour: nothing to compare"
    tiny = content_box(np.asarray(PHOTO.resize((16, 16))))
    assert not tiny.flat and "too small" in tiny.note and (tiny.x1, tiny.y1) == (16, 16)
    dot = np.full((300, 300, 3), 255, np.uint8)
    dot[150:153, 150:153] = 0
    covered = content_box(dot)
    assert "frame covers" in covered.note and (covered.x0, covered.x1) == (0, 300)
    assert content_box(np.zeros((0, 5, 3), np.uint8)).flat
