"""A light that different pictures share: a site's vignette (darkened corners on every photo it serves)
and a lit corner on black (tiles of one fundus photo's rim). It carried their thumbnails' correlation
past the shortcut: different close-ups on plain skin under one vignette were merged (0.97), and two
different rim tiles (0.97-0.985) made `--edits`' one false cluster."""

from __future__ import annotations

import io
from collections import defaultdict

import numpy as np
from dedupe_corpus import dedupe_files
from photo_corpus import EDITS, closeup, crop, originals, vignette

from curate.dedupe import decode, verify

PHOTOS = originals()


def _thumb(img, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return decode.decode(buf.getvalue()).thumb


def test_a_thumbnail_correlation_carried_by_a_vignette_is_no_shortcut():
    """Two different close-ups under one vignette correlate over `ACCEPT_NCC`; with their light taken out
    they fall back by `PART_DROP` or more. A copy (turned, re-encoded) falls by under 0.01."""
    a, b = _thumb(vignette(closeup(8008))), _thumb(vignette(closeup(8009)))
    whole = verify.thumb_correlation(a, b)
    assert whole >= verify.ACCEPT_NCC
    assert verify.part_correlation(a, b) <= whole - verify.PART_DROP
    assert verify.thumb_correlation(_thumb(closeup(8008)), _thumb(closeup(8009))) < verify.ACCEPT_NCC  # as shot
    copy = _thumb(vignette(closeup(8008)).rotate(180), quality=80)
    assert verify.part_correlation(copy, a) > verify.thumb_correlation(copy, a) - 0.01


def test_unlit_takes_out_a_slope_and_a_vignette_but_leaves_a_lesion():
    y, x = np.mgrid[0:64, 0:64].astype(np.float32) / 63 - 0.5
    light = 120 + 40 * x - 25 * y - 150 * (x * x + y * y)
    assert np.abs(verify.unlit(light)).max() < 0.01
    lesion = 60 * np.exp(-((x - 0.1) ** 2 + (y + 0.2) ** 2) / 0.005)
    kept = verify.unlit(light + lesion)
    assert float((verify._unit(kept) * verify._unit(lesion)).sum()) > 0.9


def test_a_smooth_pictures_light_is_any_quadratic_surface():
    """Two different tiles of a fundus photo's rim (a lit corner on black, too few keypoints to compare)
    correlate 0.97; a vignette's light leaves them within `PART_DROP`, any quadratic surface does not."""
    a = _thumb(EDITS["dark"](PHOTOS[15], np.random.default_rng(0)))
    b = _thumb(PHOTOS[27])
    whole = verify.thumb_correlation(a, b)
    assert whole >= verify.SMOOTH_NCC
    assert verify.part_correlation(a, b) > whole - verify.PART_DROP
    assert verify.part_correlation(a, b, smooth=True) <= whole - verify.PART_DROP


def _mixed(cluster: dict[str, str], photo_of: dict[str, str]) -> list[set[str]]:
    members = defaultdict(set)
    for name, key in cluster.items():
        members[key].add(name)
    return [m for m in members.values() if len({photo_of[n] for n in m}) > 1]


def test_different_close_ups_under_one_vignette_stay_apart_and_a_copy_joins_its_photo(tmp_path):
    files = {f"site_{k}.jpg": vignette(closeup(k)) for k in range(8000, 8012)}
    files["copy_8003.jpg"] = vignette(crop(closeup(8003), np.random.default_rng(3)))  # served again, cropped
    files["shot_8005.jpg"] = closeup(8005)  # as it was shot
    cluster, _, _ = dedupe_files(tmp_path, files)
    assert not _mixed(cluster, {n: n.split("_")[1] for n in files})
    assert cluster["copy_8003.jpg"] == cluster["site_8003.jpg"]
    assert cluster["shot_8005.jpg"] == cluster["site_8005.jpg"]


def test_two_different_tiles_of_a_fundus_rim_go_to_review(tmp_path):
    """Thumbnails are all the evidence about them; their correlation is their light's, so the steward decides
    (before: one cluster)."""
    dark = EDITS["dark"](PHOTOS[15], np.random.default_rng(0))
    cluster, _, pairs = dedupe_files(tmp_path, {"rim_15.jpg": dark, "rim_27.jpg": PHOTOS[27]})
    assert cluster["rim_15.jpg"] != cluster["rim_27.jpg"]
    assert [kind for *_, kind, _ in pairs] == ["review"]


def test_a_close_up_as_shot_joins_its_copy_under_a_heavy_vignette(tmp_path):
    """Darkened to 30 %, the copy's corners turn the skin's pores into JPEG noise: no keypoint there is alike,
    so the agreement looked like one object's, a ruler's ("review"). It covers 0.2-0.4 of the picture; an
    object both pictures show, at most 0.1 (`verify.OBJECT_MOST`)."""
    seeds = (8101, 8103, 8105)  # "served" before "shot": the verifier asks of the second one's keypoints
    files = {f"served_{k}.jpg": vignette(closeup(k), 0.7) for k in seeds} | {f"shot_{k}.jpg": closeup(k) for k in seeds}
    cluster, _, _ = dedupe_files(tmp_path, files)
    assert not _mixed(cluster, {n: n.split("_")[1] for n in files})
    assert all(cluster[f"served_{k}.jpg"] == cluster[f"shot_{k}.jpg"] for k in seeds)


def test_a_thumbnail_same_near_the_threshold_that_local_features_deny_goes_to_review(tmp_path):
    """Two different close-ups under one vignette whose thumbnails correlate just past the threshold
    and stay within `PART_DROP` without their light: the shortcut alone merged them (`--templates`' one
    false link). Near the threshold local features are asked too, and find no match at either size."""
    served = vignette(closeup(8100), 0.7)
    other = vignette(crop(closeup(8134), np.random.default_rng([8134, 5])), 0.7)
    a, b = _thumb(served), _thumb(other)
    whole = verify.thumb_correlation(a, b)
    assert verify.ACCEPT_NCC <= whole < verify.NEAR_NCC
    assert verify.part_correlation(a, b) > whole - verify.PART_DROP  # the thumbnails alone say "same"
    cluster, _, pairs = dedupe_files(tmp_path, {"site_8100.jpg": served, "site_8134.jpg": other})
    assert cluster["site_8100.jpg"] != cluster["site_8134.jpg"]
    [(_, _, kind, reason)] = pairs
    assert kind == "review" and "local features find no match" in reason


def test_a_blurred_copy_near_the_threshold_keeps_the_thumbnails_same(tmp_path):
    """A blurred, shrunk copy and a low-contrast one of one star field correlate just past the threshold;
    local features find no match, but the blurred one gains no keypoints at full size (108 of the 500 SIFT
    is asked for), so it cannot deny the thumbnails: merged, not sent to review."""
    photo, kinds = PHOTOS[37], list(EDITS)
    blurred, flat = (
        EDITS[k](photo, np.random.default_rng([37, kinds.index(k), 3])) for k in ("blur_small", "low_contrast")
    )
    whole = verify.thumb_correlation(_thumb(blurred), _thumb(flat))
    assert verify.ACCEPT_NCC <= whole < verify.NEAR_NCC
    cluster, _, pairs = dedupe_files(tmp_path, {"blurred.jpg": blurred, "flat.jpg": flat})
    assert cluster["blurred.jpg"] == cluster["flat.jpg"], pairs
