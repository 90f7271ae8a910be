"""Search back-ends and hash codes: pure numpy, no catalogue."""

import io
import time

import numpy as np
import pytest
from dedupe_corpus import photo

from curate.dedupe.decode import decode
from curate.dedupe.hashing import PHash, RegionPHash, apply_dihedral, dihedral_codes
from curate.dedupe.search import Backend, BruteForceIndex, MultiIndexHashing, hamming, make_index
from curate.errors import ConfigError


def _codes(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) << np.uint64(1) | rng.integers(
        0, 2, n
    ).astype(np.uint64)


def _flip(codes, bits, seed=1):
    rng = np.random.default_rng(seed)
    out = codes.copy()
    for _ in range(bits):
        out ^= np.uint64(1) << rng.integers(0, 64, len(codes)).astype(np.uint64)
    return out


def _pairs(res):
    q, c, d = res
    return set(zip(q.tolist(), c.tolist(), d.tolist(), strict=False))


@pytest.mark.parametrize("radius", [0, 3, 6, 9])
def test_multi_index_matches_brute_force(radius):
    codes = _codes(3000)
    queries = np.concatenate([_flip(codes[:500], 4), _codes(200, seed=5)])
    bf = BruteForceIndex(hamming).build(codes).search(queries, radius)
    mih = MultiIndexHashing(hamming).build(codes).search(queries, radius)
    assert _pairs(bf) == _pairs(mih)


def test_unknown_backend_fails_loudly():
    with pytest.raises(ConfigError, match="unknown search back-end 'bktree'.*brute-force"):
        make_index("bktree", 10, 4)


def test_auto_picks_multi_index_for_small_radius_on_many_codes():
    assert isinstance(make_index(Backend.AUTO, 100_000, 6), MultiIndexHashing)
    assert isinstance(make_index(Backend.AUTO, 1_000, 14), BruteForceIndex)


@pytest.mark.slow
def test_100k_codes_searched_within_radius_in_under_10_seconds():
    codes = _codes(100_000)
    queries = _flip(codes, 5)
    t = time.perf_counter()
    q, c, d = make_index(Backend.MULTI_INDEX, len(codes), 7).build(codes).search(queries, 7)
    elapsed = time.perf_counter() - t
    assert elapsed <= 10, elapsed
    found = set(zip(q.tolist(), c.tolist(), strict=False))
    assert all((i, i) in found for i in range(0, 100_000, 997))


def test_dihedral_codes_equal_codes_of_turned_pictures():
    buf = io.BytesIO()
    photo(3).save(buf, "PNG")
    thumb = decode(buf.getvalue()).thumb
    h = PHash()
    variants = dihedral_codes(h.encode(thumb)[:1])[0]
    for d in range(8):
        assert h.encode(apply_dihedral(thumb, d))[0] == variants[d]


def test_thresholds_out_of_range_are_clear_errors():
    with pytest.raises(ConfigError, match="--radius"):
        PHash(radius=40)
    with pytest.raises(ConfigError, match="--similarity"):
        RegionPHash(similarity=1.5)
    with pytest.raises(ConfigError, match="--neighbours"):
        RegionPHash(neighbours=0)


@pytest.mark.slow
@pytest.mark.parametrize("radius", [11, 14])
def test_multi_index_candidates_equal_brute_force_on_real_photo_codes(radius):
    """The Hamming search (`--method phash`, here over every window: each picture's 8
    orientations against every window) gives the same pairs, orientations and distances with
    either back-end, on codes of real photos and their re-posted copies: the index only makes it
    faster, never different."""
    from photo_corpus import crop, frame, originals, watermark

    rng = np.random.default_rng(3)
    pictures = []
    for i, img in enumerate(originals(110)):
        pictures.append(img)
        if i % 3 == 0:
            pictures.append(crop(img, rng))
        elif i % 3 == 1:
            pictures.append(frame(img, "white", 0.08).transpose(0))
        else:
            pictures.append(watermark(img, rng))
    enc = RegionPHash()
    codes = []
    for img in pictures:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        codes.append(enc.encode(decode(buf.getvalue()).thumb))
    codes = np.stack(codes)
    brute = PHash(radius=radius, backend=Backend.BRUTE_FORCE).candidates(codes)
    multi = PHash(radius=radius, backend=Backend.MULTI_INDEX).candidates(codes)
    assert len(brute[0]) > 50  # the copies are there to be found
    for x, y in zip(brute, multi, strict=False):
        assert np.array_equal(x, y)
