"""Verification decodes a picture once for all its looks (`curate.dedupe.decode.Decodes`): the same pixels as
a fresh decode, a phone photo's JPEG not decoded again for 160 and 320 px, memory bounded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from photo_corpus import originals

from curate.dedupe.decode import Decodes, work_grey


def _jpeg(img, size) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").resize(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_the_looks_at_one_phone_photo_share_one_decode_and_see_the_same_pixels():
    data = _jpeg(originals()[0], (4000, 3000))  # a 12 MP JPEG: decoded at its 1/8 DCT scale for every look
    box = (0.1, 0.05, 0.9, 0.95)
    cache = Decodes()
    looks = [(box, 160), (box, 320), ((0.0, 0.0, 1.0, 1.0), 64)]
    for b, side in looks:
        kept = cache.box("photo", data, b, side)
        assert np.array_equal(kept, work_grey(data, b, side))  # exactly what a fresh decode gives
    assert (cache.misses, cache.hits) == (1, 2)
    with pytest.raises(ValueError):
        kept[0, 0] = 0  # handed out again: read-only


def test_another_scale_is_another_decode_and_the_budget_holds():
    small = _jpeg(originals()[1], (1200, 800))
    cache = Decodes(budget=1_000_000)  # room for one 1200 x 800 grey picture (960 kB), not two
    a = cache.box("a", small, (0.0, 0.0, 1.0, 1.0), 100)  # DCT scale 1/8: 150 x 100
    b = cache.box("a", small, (0.0, 0.0, 1.0, 1.0), 900)  # full size
    assert a.shape == (100, 150) and b.shape == (800, 1200)
    assert (cache.misses, cache.hits) == (2, 0)
    cache.box("b", small, (0.0, 0.0, 1.0, 1.0), 900)  # a second full-size picture evicts the oldest
    assert cache.used <= cache.budget
    cache.box("a", small, (0.0, 0.0, 1.0, 1.0), 100)
    assert cache.misses == 4  # the 1/8 decode of "a" was evicted, so it was decoded again
