"""A coloured frame around a close-up on plain skin is cut, and the framed copy joins its photo.

Dedupe decodes a stored JPEG at half scale or less; there JPEG bleeds the photo's colour into a cream or
teal frame's last lines, which then fail the band rule, so the cut stopped up to 4 lines short of the
photo. The line just inside the cut was still the frame's colour, so the cut passed for the photo's own
plain background (`curate.dedupe.content._background`, which keeps different close-ups from being cut
down to look-alike blobs) and the frame was kept: the framed copy's thumbnail was mostly frame, and on
the benchmark's skin photos one such copy was left apart from its photo.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from photo_corpus import frame, skin_closeups
from sqlmodel import select

from curate.dedupe import cluster_map
from curate.dedupe.decode import decode
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Provenance

# (close-up, frame colour, width as a share of the shorter side): frames the content box kept before; the first
# is the benchmark's missed copy
FRAMED = ((33, "cream", 0.0733), (3, "teal", 0.03), (24, "cream", 0.03), (30, "teal", 0.15), (18, "cream", 0.15))


def jpeg(img, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize(("k", "colour", "width"), FRAMED)
def test_a_coloured_frame_around_a_skin_closeup_is_cut_at_the_photos_edge(k, colour, width):
    (photo,) = skin_closeups([k]).values()
    framed = frame(photo, colour, width)
    border = (framed.width - photo.width) // 2
    box = decode(jpeg(framed)).box
    x0, y0, x1, y1 = (v * s for v, s in zip(box.fractions(), framed.size * 2, strict=True))
    cuts = [round(v) for v in (x0, y0, framed.width - x1, framed.height - y1)]
    assert all(abs(v - border) <= 6 for v in cuts), f"frame {border} px, cut {cuts}"
    assert not decode(jpeg(photo)).box.cut, "the close-up's own plain skin was cut as if a frame"


def test_framed_copies_of_skin_closeups_join_their_photos_and_nothing_else(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    photos = skin_closeups([k for k, _, _ in FRAMED])
    for k, colour, width in FRAMED:
        (folder / f"lesion{k:02d}.jpg").write_bytes(jpeg(photos[k]))
        (folder / f"lesion{k:02d}_framed.jpg").write_bytes(jpeg(frame(photos[k], colour, width)))
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="web", kind="web", workers=1))
    run_dedupe(ws, DedupeOptions(workers=1))
    with ws.session() as s:
        keys = cluster_map(s)
        key = {p.locator: keys[p.image_id] for p in s.exec(select(Provenance)).all()}
    apart = [k for k, _, _ in FRAMED if key[f"lesion{k:02d}_framed.jpg"] != key[f"lesion{k:02d}.jpg"]]
    assert not apart, f"framed copies left apart from their photo: {apart}"
    assert len({key[f"lesion{k:02d}.jpg"] for k, _, _ in FRAMED}) == len(FRAMED), "different close-ups were merged"
