"""A fully transparent PNG is a blank picture to dedupe, as it is to every page, rater and export.

Before, dedupe compared the pixels hidden under its alpha: a blank PNG holding a photo's pixels joined that
photo's cluster as its representative, so the blank picture went to labelling and the photo did not.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import data as samples
from sqlmodel import select

from curate.dedupe import cluster_map, labelable_image_ids
from curate.dedupe.run import DedupeOptions, run_dedupe
from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Provenance


def test_a_transparent_png_hiding_a_photo_is_blank_not_its_copy(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = Image.fromarray(samples.astronaut())
    photo.save(folder / "lesion.jpg", quality=90)
    hidden = photo.resize((1024, 1024)).convert("RGBA")
    hidden.putalpha(0)
    hidden.save(folder / "blank_but_hidden.png")
    half = photo.convert("RGBA")  # half transparent: the photo faded over white, a copy still
    half.putalpha(Image.fromarray(np.full((512, 512), 128, np.uint8)))
    half.save(folder / "faded.png")
    ws = Workspace.init(tmp_path / "ws")
    ingest_folder(ws, folder, IngestOptions(source="clinic", kind="clinic", workers=1))
    report = run_dedupe(ws, DedupeOptions(workers=1))
    with ws.session() as s:
        ids = {p.locator: p.image_id for p in s.exec(select(Provenance)).all()}
        keys = cluster_map(s)
        labelable = labelable_image_ids(s)
    assert keys[ids["blank_but_hidden.png"]] != keys[ids["lesion.jpg"]] == keys[ids["faded.png"]]
    assert {ids["lesion.jpg"], ids["faded.png"]} & set(labelable)  # the photo's cluster goes to labelling
    assert any(i == ids["blank_but_hidden.png"] and "single colour" in why for i, why in report.whole_picture)
