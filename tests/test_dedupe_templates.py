"""One site's template around different photos: a round crop on white (a profile picture, a forum's avatar)
and a news site's banner across the foot, flat red with lettering or a gradient with an emblem. Every
picture the site serves shares its pixels and its keypoints, so different photos under it were merged:
in probes of 60, avatars of dark photos (their white corners correlated 0.96-0.98 on thumbnails), and 43
of 60 photos under the banner (it carried their thumbnails' correlation, and 30-190 agreeing keypoints
over 4-6 cells)."""

from __future__ import annotations

import io
from collections import defaultdict

import numpy as np
import pytest
from dedupe_corpus import dedupe_files
from photo_corpus import avatar, banner, closeup, originals

from curate.dedupe import decode, verify

PHOTOS = originals()
DARK = (3, 5, 6, 8, 15, 17)  # rocket, Hubble, retina, moon and two fundus tiles: their avatars were merged


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _mixed(cluster: dict[str, str], photo_of: dict[str, str]) -> list[set[str]]:
    members = defaultdict(set)
    for name, key in cluster.items():
        members[key].add(name)
    return [m for m in members.values() if len({photo_of[n] for n in m}) > 1]


def test_round_crops_on_white_are_in_painted_as_a_field_of_view():
    """Their white corners are a dermatoscope's field stop in another colour: in-painted from the photo, so
    the thumbnails of different dark photos' avatars no longer correlate (0.93-0.98 with the corners white)."""
    thumbs = [decode.decode(_jpeg(avatar(PHOTOS[k]))).thumb for k in DARK]
    worst = max(verify.thumb_correlation(a, b) for i, a in enumerate(thumbs) for b in thumbs[i + 1 :])
    assert worst < 0.7, worst
    assert all(t[:4, :4].mean() < 200 for t in thumbs)  # the corners filled from the photo, not white


def test_different_dark_photos_cropped_round_on_white_stay_apart(tmp_path):
    files = {f"avatar_{k}.jpg": avatar(PHOTOS[k]) for k in DARK}
    files |= {"photo_5.jpg": PHOTOS[5], "photo_8.jpg": PHOTOS[8]}
    cluster, _, _ = dedupe_files(tmp_path, files)
    assert not _mixed(cluster, {n: n.split("_")[1] for n in files})
    assert cluster["avatar_5.jpg"] == cluster["photo_5.jpg"] and cluster["avatar_8.jpg"] == cluster["photo_8.jpg"]


@pytest.mark.parametrize("k", [0, 2, 5])
def test_a_flat_banner_with_two_lines_of_lettering_is_cut_at_dedupes_scale(k):
    """Decoded at half scale, as dedupe decodes a 400 px picture, JPEG rings between the two lines of
    lettering on red (4-6 levels at the median): the band stayed in the box, partly or whole."""
    img = banner(PHOTOS[k], "flat")
    found = decode.decode(_jpeg(img)).box
    photo_rows = img.height - 90  # the banner is 90 px
    assert abs(found.y1 / found.height - photo_rows / img.height) < 0.02, found


def test_a_thumbnail_correlation_carried_by_one_side_is_no_shortcut():
    """Two different close-ups under the site's banner correlate 0.95-0.99; with the banner's quarter left
    out they fall back by 0.05 or more. A copy falls by less."""
    a, b = (np.asarray(banner(closeup(k), "logo").convert("L").resize((64, 64))) for k in (7010, 7017))
    whole = verify.thumb_correlation(a, b)
    assert whole >= verify.ACCEPT_NCC
    assert verify.part_correlation(a, b) <= whole - verify.PART_DROP
    copy = np.asarray(banner(closeup(7010), "logo").convert("L").resize((64, 64)).rotate(180))
    assert verify.part_correlation(copy, a) > verify.thumb_correlation(copy, a) - 0.01


@pytest.mark.slow
def test_different_photos_under_one_sites_banner_stay_apart_and_a_copy_joins_its_photo(tmp_path):
    files = {f"site_{k}.jpg": banner(PHOTOS[k], "logo") for k in range(2, 14)}
    files |= {f"site_c{k}.jpg": banner(closeup(k), "logo") for k in (7010, 7017, 7029, 7035, 7040)}
    files |= {"photo_3.jpg": PHOTOS[3], "photo_c7040.jpg": closeup(7040)}  # each also as it was shot
    cluster, _, pairs = dedupe_files(tmp_path, files)
    assert not _mixed(cluster, {n: n.split("_")[1] for n in files})
    assert cluster["site_3.jpg"] == cluster["photo_3.jpg"]
    assert cluster["site_c7040.jpg"] == cluster["photo_c7040.jpg"]
    said = [reason for *_, kind, reason in pairs if kind == "review"]
    assert any("banner along one side" in r for r in said)  # what the steward reads


def test_the_sheet_shows_photos_under_one_banner_as_one_group(tmp_path, monkeypatch):
    """Different photos under one site's banner make a pair "one object only" for each two of them: the sheet
    shows the pictures those pairs join once each, as a group, not pair by pair among the pairs to review."""
    from pathlib import Path

    from dedupe_corpus import save
    from sqlmodel import select

    from curate.dedupe.review import write_review
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.dedupe.verify import ONE_OBJECT
    from curate.intake.ingest import IngestOptions, ingest_folder
    from curate.workspace import Workspace
    from db.models import DedupePair, Provenance

    for k in (7010, 7017, 7029, 7035, 7040):
        save(banner(closeup(k), "logo"), tmp_path / "in" / f"site_{k}.jpg", quality=90)
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, tmp_path / "in", IngestOptions(source="site", kind="web", workers=1))
    run_dedupe(ws, DedupeOptions(min_side=1, workers=1))
    with ws.session() as s:
        ids = {Path(loc).name: i for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        one = [p for p in s.exec(select(DedupePair)).all() if (p.reason or "").startswith(ONE_OBJECT)]
    assert len(one) >= 3  # one look instead of these
    sheet = write_review(ws).read_text()
    head, after = sheet.split("id='objects'")
    group = after.split("<h2")[0]
    assert f"{len(one)} pairs kept apart as sharing one object" in head and ONE_OBJECT not in head
    joined = {i for p in one for i in (p.image_a, p.image_b)}
    assert all(group.count(f"alt='image {i}'") == 1 for i in joined)
    assert set(ids.values()) >= joined and "curate dedupe merge A B" in group
    from curate.dedupe import review  # a sheet that shows no group says how many it leaves to the JSON

    monkeypatch.setattr(review, "SHEET_CLUSTERS", 0)
    group = write_review(ws).read_text().split("id='objects'")[1].split("<h2")[0]
    assert "alt='image" not in group and "1 more group, the smallest last, not shown here" in group


def test_a_shortcut_carried_by_one_part_that_local_features_cannot_confirm_goes_to_review(tmp_path):
    """A blurred, shrunk copy of a star field correlates 0.96 with it on thumbnails, carried by three stars
    in one quarter (0.79 without it): no shortcut, and SIFT finds nothing on the blur, so the pair is for the
    steward ("review"), not "different" (`pairs.Verifier._carried`)."""
    from photo_corpus import EDITS

    star_field = PHOTOS[43]  # a tile of the Hubble deep field
    blurred = EDITS["blur_small"](star_field, np.random.default_rng([43, list(EDITS).index("blur_small"), 3]))
    _, _, pairs = dedupe_files(tmp_path, {"stars.jpg": star_field, "stars_blurred.jpg": blurred})
    ((_, _, kind, reason),) = pairs
    assert kind == "review" and "with a quarter of them or their light left out" in reason, reason
