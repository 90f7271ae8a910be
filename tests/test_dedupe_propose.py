"""The nearest-neighbour proposal (`curate.dedupe.propose`) on real photos' thumbnails."""

import io

import numpy as np
import pytest
from photo_corpus import crop, frame, originals, watermark

from curate.dedupe.dct import DIHEDRAL, HASH_K, WINDOWS, apply_dihedral, descriptors, turned, window_dct
from curate.dedupe.decode import decode
from curate.dedupe.hashing import PHash, RegionPHash
from curate.dedupe.propose import MARGIN, nearest_pairs
from curate.dedupe.search.knn import NearestNeighbours


def _thumb(img) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return decode(buf.getvalue()).thumb


@pytest.fixture(scope="module")
def photos():
    """60 real photos; each of the first 48 has a copy (cropped, framed or watermarked) turned
    by each of the eight flips/quarter-turns in turn."""
    rng = np.random.default_rng(5)
    pics = [_thumb(img) for img in originals(60)]
    copies, truth = [], {}
    for i, img in enumerate(originals(48)):
        edit = (crop(img, rng, 0.08), frame(img, "white", 0.06), watermark(img, rng))[i % 3]
        d = i % len(DIHEDRAL)
        copies.append(apply_dihedral(_thumb(edit), d))
        truth[(i, len(pics) + i)] = d
    return np.stack(pics + copies), truth


def test_descriptors_turn_as_the_pictures_do(photos):
    """A descriptor turned by the fixed permutation/sign table equals the descriptor of the
    turned picture: the search never re-decodes or turns thumbnails."""
    thumbs, _ = photos
    v = descriptors(thumbs[:5])
    for d in range(len(DIHEDRAL)):
        direct = descriptors(np.stack([apply_dihedral(t, d) for t in thumbs[:5]]))[:, 0]
        assert np.allclose(turned(v[:, 0], d), direct, atol=1e-4)


def test_batched_coefficients_equal_the_per_picture_dct(photos):
    from curate.dedupe.dct import window_coefficients

    thumbs, _ = photos
    batch = window_coefficients(thumbs[:3])
    for i in range(3):
        assert np.allclose(batch[i], window_dct(thumbs[i], WINDOWS, HASH_K), atol=1e-3)


@pytest.fixture(scope="module")
def hamming_found(photos):
    """The copies the former proposal (every window within 14 bits, any orientation) found."""
    thumbs, truth = photos
    enc = RegionPHash()
    a, b, _, _ = PHash(radius=14).candidates(np.stack([enc.encode(t) for t in thumbs]))
    return set(truth) & set(zip(a.tolist(), b.tolist(), strict=True))


@pytest.mark.parametrize("exact,margin", [(True, None), (True, MARGIN), (False, None)])
def test_planted_copies_are_proposed_in_their_orientation(photos, hamming_found, exact, margin):
    """Every copy the 14-bit Hamming search found is proposed, and more (two heavy watermarks
    it missed; the other two correlate 0.22 and 0.38 with their original, below anything the
    verification would pass), each with the orientation that turns the original onto it; the
    candidates stay within n x neighbours. `exact=False` forces the inverted file of big
    catalogues, `margin` their canonical-orientation queries (each approximate: at most three of the
    45 lost). A near-symmetric picture (the cell photo, its watermark cut away as lettering) may be
    proposed in another orientation that fits it as well."""
    thumbs, truth = photos
    nn = NearestNeighbours() if exact else NearestNeighbours(exact_work=0, nprobe=16, dims=32)
    if not exact:  # the inverted file needs a few thousand vectors: pad with blocky noise pictures
        rng = np.random.default_rng(1)
        noise = rng.integers(0, 255, (400, 8, 8)).astype(np.uint8).repeat(8, 1).repeat(8, 2)
        thumbs = np.concatenate([thumbs, noise])
    a, b, d, s = nearest_pairs(thumbs, 5, nn=nn, margin=margin)
    assert np.all(a < b) and len(a) <= 5 * len(thumbs)
    found = {(x, y): z for x, y, z in zip(a.tolist(), b.tolist(), d.tolist(), strict=True)}
    assert len(hamming_found) == 45  # 44 before watermarks near an edge were cut as lettering
    if exact and margin is None:
        assert hamming_found <= set(found)
        assert len(set(truth) & set(found)) >= 46
    else:  # approximate: a copy whose nearest cluster centre differs from its original's can be lost
        assert len(hamming_found - set(found)) <= 3
    for a, b in hamming_found & set(found):  # (a heavy watermark's best orientation may be another)
        if found[(a, b)] != truth[(a, b)]:  # then only where the picture looks the same that way too
            ua, ub = (t.astype(np.float32) - t.mean() for t in (thumbs[a], thumbs[b]))
            fit = [float((apply_dihedral(ua, d) * ub).sum()) for d in (found[(a, b)], truth[(a, b)])]
            assert fit[0] >= 0.97 * fit[1], (a, b, fit)


def test_new_pictures_only(photos):
    """With a mask of new pictures, exactly the pairs a full search proposes that touch a new
    picture: not also each old picture's nearest new ones, however far (all different photos)."""
    thumbs, truth = photos
    new = np.zeros(len(thumbs), bool)
    new[60::2] = True
    full = set(zip(*(x.tolist() for x in nearest_pairs(thumbs, 5)[:2]), strict=True))
    part = set(zip(*(x.tolist() for x in nearest_pairs(thumbs, 5, new=new)[:2]), strict=True))
    assert part == {p for p in full if new[p[0]] or new[p[1]]}
    assert {p for p in truth if new[p[1]]} <= part


def test_find_duplicates_keeps_the_copies_and_records_their_orientation(photos, hamming_found):
    thumbs, truth = photos
    enc = RegionPHash(similarity=0.6)
    codes = np.stack([enc.encode(t) for t in thumbs])
    matches = {(m.a, m.b): m for m in enc.find_duplicates(codes, list(thumbs))}
    passing = {p for p in hamming_found if enc.verify(thumbs[p[0]], thumbs[p[1]], truth[p]) >= enc.similarity}
    assert len(passing) >= 40 and passing <= set(matches)
    for pair in passing:
        assert matches[pair].dihedral == truth[pair] and 0 <= matches[pair].hamming <= 63


def test_canonical_turn_is_the_one_turn_with_positive_slack(photos):
    from curate.dedupe.dct import all_turns, canonical_slack, canonical_turn, turn_slack

    thumbs, _ = photos
    v = descriptors(thumbs)[:, 0]
    slack = canonical_slack(all_turns(v))
    assert np.array_equal(canonical_turn(v), slack.argmax(1))
    assert np.all((slack > 0).sum(1) <= 1)
    assert np.allclose(turn_slack(v), slack, atol=1e-5)  # the same slacks without turning the descriptors
    for d in range(len(DIHEDRAL)):  # every orientation of a picture has the same canonical form
        t = turned(v, d)
        assert np.allclose(
            np.stack([turned(x, k) for x, k in zip(t, canonical_turn(t), strict=True)]),
            np.stack([turned(x, k) for x, k in zip(v, canonical_turn(v), strict=True)]),
            atol=1e-5,
        )
