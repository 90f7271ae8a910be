"""Different close-ups on very smooth skin stay apart; their copies still join them.

On skin as plain as padding, the content box used to peel the skin away like a frame, down to the lesion:
two different close-ups became two centred blobs whose thumbnails correlated 0.98, and three different
lesions under three prior labels were merged (a probe's corpus). A level of peeling that only goes into the
picture's own plain coloured background is now not taken (`curate.dedupe.content._background`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from photo_corpus import closeup
from PIL import Image, ImageFilter
from sqlmodel import select

import curate.dedupe.content as content
from curate.dedupe import cluster_map
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Provenance

SEEDS = range(40, 48)


def smooth_closeup(seed: int) -> Image.Image:
    """A close-up on skin with almost no texture (2 grey levels of pores) under a light gradient."""
    rng = np.random.default_rng(seed)
    w, h = 480, 360
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin = np.array([214, 160, 128], np.float32) + rng.normal(0, 6, 3)
    shade = 1 + 0.06 * ((xx / w - 0.5) * rng.normal() + (yy / h - 0.5) * rng.normal())
    pores = np.asarray(
        Image.fromarray(rng.normal(128, 60, (h, w)).clip(0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(0.8)
        ),
        np.float32,
    )
    img = skin * shade[..., None] + 0.1 * (pores - 128)[..., None]
    cx, cy, rx, ry = rng.uniform(150, 330), rng.uniform(120, 240), rng.uniform(35, 80), rng.uniform(30, 70)
    m = np.exp(-((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) ** 1.5))[..., None]
    img = img * (1 - m) + (np.array([150, 70, 70], np.float32) + rng.normal(0, 12, 3)) * m
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def clusters_of(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in SEEDS:
        (folder / f"lesion{seed}.jpg").write_bytes(jpeg(smooth_closeup(seed)))
    first = smooth_closeup(SEEDS[0])
    (folder / "copy_reencoded.jpg").write_bytes(jpeg(first, 75))
    (folder / "copy_resized.jpg").write_bytes(jpeg(first.resize((384, 288), Image.LANCZOS)))
    textured = closeup(7)
    (folder / "textured.jpg").write_bytes(jpeg(textured))
    (folder / "textured_copy.jpg").write_bytes(jpeg(textured.resize((256, 205), Image.LANCZOS), 80))
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="clinic", kind="clinic", workers=1))
    run_dedupe(ws, DedupeOptions(workers=1))
    with ws.session() as s:
        keys = cluster_map(s)
        return {p.locator: keys[p.image_id] for p in s.exec(select(Provenance)).all()}


def test_different_smooth_closeups_stay_apart_and_their_copies_join(tmp_path):
    key = clusters_of(tmp_path)
    lesions = [key[f"lesion{seed}.jpg"] for seed in SEEDS]
    assert len(set(lesions)) == len(lesions), "two different close-ups were merged"
    assert key["copy_reencoded.jpg"] == key["copy_resized.jpg"] == key[f"lesion{SEEDS[0]}.jpg"]
    assert key["textured_copy.jpg"] == key["textured.jpg"] != key[f"lesion{SEEDS[0]}.jpg"]


@pytest.mark.parametrize("level", ["background", "frame"])
def test_plain_skin_is_not_peeled_but_a_frame_is(level):
    """The box of a smooth close-up is the whole photo; the same photo in a tinted frame loses the frame."""
    photo = np.asarray(smooth_closeup(41))
    if level == "frame":
        framed = np.full((photo.shape[0] + 60, photo.shape[1] + 60, 3), (120, 170, 200), np.uint8)
        framed[30:-30, 30:-30] = photo
        box = content.content_box(framed)
        assert abs(box.x0 - 30) <= 2 and abs(box.y0 - 30) <= 2 and abs(box.x1 - (photo.shape[1] + 30)) <= 2
    else:
        box = content.content_box(photo)
        assert not box.cut and box.note is None
