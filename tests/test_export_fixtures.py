"""A small real catalogue for the export tests (helpers only; no tests in this module).

`build_catalogue(root)` writes real image files (JPEGs with EXIF rotation, GPS, XMP, ICC and a
comment naming the patient; PNGs with alpha; re-encoded near-duplicates; several images per case),
ingests them with the intake stage, and inserts `Consensus` rows directly. Near-duplicate clusters
come from `clusters` (patch `curate.export.plan.cluster_map` with `patched_clusters`), since the
dedupe stage may not be there yet.
"""

from __future__ import annotations

import io
import json
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from sqlmodel import select

from curate.intake.ingest import IngestOptions, ingest_folder
from curate.workspace import Workspace
from db.models import Image as ImageRow
from db.models import Provenance
from db.models.label import Consensus

NON_MPOX = [
    "genital_herpes",
    "genital_warts",
    "primary_syphilis",
    "secondary_syphilis",
    "molluscum_contagiosum",
    "dermatosis",
]


def pattern(w: int, h: int, seed: int) -> Image.Image:
    """Smooth random colour field (survives JPEG) with a bright marker in the top-left corner."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img).copy()
    arr[: h // 6, : w // 6] = (255, 255, 255)
    return Image.fromarray(arr)


def jpeg_with_metadata(img: Image.Image, orientation: int | None = None, patient: str = "P0001") -> bytes:
    """A JPEG carrying EXIF (orientation, GPS, camera serial), XMP, an ICC profile and a comment."""
    exif = Image.Exif()
    exif[0x010F] = "ClinicCam"
    if orientation:
        exif[0x0112] = orientation
    exif[0x8825] = {1: "S", 2: (37.0, 48.0, 0.0), 3: "E", 4: (144.0, 58.0, 0.0)}  # GPS IFD
    exif[0xA431] = "SERIAL-12345"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{patient}</rdf:Description></x:xmpmeta>'.encode()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, exif=exif, icc_profile=icc, xmp=xmp, comment=f"patient {patient}".encode())
    return buf.getvalue()


def jpeg_markers(data: bytes) -> list[int]:
    """Marker bytes of a JPEG's header segments up to the start of scan (0xE0 APP0 … 0xFE COM)."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    pos, out = 2, []
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        out.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return out


def oriented(path: Path) -> Image.Image:
    from PIL import ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode == "RGBA":  # the export flattens transparency onto white
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, im).convert("RGB")
        return im.convert("RGB")


@dataclass
class Catalogue:
    ws: Workspace
    clusters: dict[int, str] = field(default_factory=dict)
    boxes: dict[int, list[list[int]]] = field(default_factory=dict)
    case_of: dict[int, str] = field(default_factory=dict)  # image id -> "source:case"
    ids_by_name: dict[str, int] = field(default_factory=dict)  # file stem -> image id


@contextmanager
def patched_clusters(monkeypatch, clusters: dict[int, str]):
    monkeypatch.setattr(
        "curate.export.plan.cluster_map", lambda s: {**{i: f"img{i}" for i in range(1, 10_000)}, **clusters}
    )
    yield


def build_catalogue(root: Path, seed: int = 0, db_url: str | None = None) -> Catalogue:
    """About 70 images: clinic (cases P01..P24, 1–3 photos each), web, and a reserved 'kaggle' set."""
    rng = np.random.default_rng(seed)
    ws = Workspace.init(root / "ws", db_url=db_url)
    incoming = root / "incoming"
    n = 0
    plan: dict[str, tuple[str, list]] = {}  # stem -> (diagnosis, boxes in oriented pixels)

    def add(folder: Path, stem: str, diagnosis: str, kind: str, box: bool) -> None:
        nonlocal n
        n += 1
        w, h = int(rng.integers(100, 160)), int(rng.integers(80, 120))
        img = pattern(w, h, seed * 1000 + n)
        boxes = []
        if box:
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            boxes = [[x0, y0, x0 + w // 3, y0 + h // 3]]
            if n % 5 == 0:
                boxes.append([x0 + 5, y0 + 5, min(w, x0 + w // 2), min(h, y0 + h // 2)])
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "rotated":  # stored sideways, EXIF orientation 6 = display rotated 90° clockwise
            data = jpeg_with_metadata(img.transpose(Image.Transpose.ROTATE_90), orientation=6, patient=stem)
            (folder / f"{stem}.jpg").write_bytes(data)
        elif kind == "png":
            rgba = img.convert("RGBA")
            rgba.putalpha(200)
            rgba.save(folder / f"{stem}.png")
        else:
            (folder / f"{stem}.jpg").write_bytes(jpeg_with_metadata(img, patient=stem))
        plan[stem] = (diagnosis, boxes)

    kinds = ["plain", "rotated", "png"]
    for c in range(1, 25):
        case = f"P{c:02d}"
        diagnosis = "mpox" if c % 3 == 0 else NON_MPOX[c % len(NON_MPOX)]
        for k in range(1 + c % 3):
            add(incoming / "clinic" / case, f"{case}_{k}", diagnosis, kinds[(c + k) % 3], box=(c + k) % 2 == 0)
    for i in range(10):
        add(incoming / "web", f"web{i}", "mpox" if i % 2 else "genital_herpes", "plain", box=i % 3 == 0)
    for i in range(10):
        add(incoming / "kaggle", f"kag{i}", "mpox" if i < 6 else "dermatosis", "plain", box=False)
    # A near-duplicate of web0 (re-encoded at another quality) arriving through the clinic, case P01.
    with Image.open(incoming / "web" / "web0.jpg") as im:
        im.save(incoming / "clinic" / "P01" / "P01_dup.jpg", quality=70)
    plan["P01_dup"] = plan["web0"]
    # A near-duplicate of kag0 in the web folder: its cluster touches the reserved source.
    with Image.open(incoming / "kaggle" / "kag0.jpg") as im:
        im.save(incoming / "web" / "web_kdup.jpg", quality=75)
    plan["web_kdup"] = plan["kag0"]
    # Extra rows for the card: one "not assessable", one discarded, one excluded, one pending.
    for i, _status in enumerate(["not_assessable", "discarded", "excluded", "pending"]):
        add(incoming / "web", f"extra{i}", "not_assessable", "plain", box=False)

    ingest_folder(
        ws,
        incoming / "clinic",
        IngestOptions(
            source="clinic", kind="clinic", licence="clinic-consent", case_id_pattern=r"(?P<case>P\d+)/", workers=1
        ),
    )
    ingest_folder(ws, incoming / "web", IngestOptions(source="web", kind="web", licence="CC-BY-4.0", workers=1))
    ingest_folder(
        ws, incoming / "kaggle", IngestOptions(source="kaggle", kind="public", licence="CC-BY-4.0", workers=1)
    )

    cat = Catalogue(ws=ws)
    with ws.session() as s:
        for p, im in s.exec(select(Provenance, ImageRow).join(ImageRow, ImageRow.id == Provenance.image_id)).all():
            stem = Path(p.locator).stem
            cat.ids_by_name[stem] = im.id
            if p.case_id:
                cat.case_of[im.id] = f"{p.source_id}:{p.case_id}"
        for stem, (diagnosis, boxes) in sorted(plan.items()):
            image_id = cat.ids_by_name[stem]
            if stem.startswith("extra"):
                status = ["agreed", "discarded", "excluded", "pending"][int(stem[-1])]
                s.add(
                    Consensus(
                        image_id=image_id,
                        status=status,
                        diagnosis="not_assessable" if status == "agreed" else None,
                        method="majority",
                        n_raters=2,
                        exclusion="identifiable_features" if status == "excluded" else None,
                    )
                )
                continue
            adjudicated = image_id % 4 == 0
            s.add(
                Consensus(
                    image_id=image_id,
                    status="adjudicated" if adjudicated else "agreed",
                    diagnosis=diagnosis,
                    method="adjudication" if adjudicated else "unanimous",
                    n_raters=3 if adjudicated else 2,
                    agreement=0.6667 if adjudicated else 1.0,
                    boxes=json.dumps(boxes),
                )
            )
            cat.boxes[image_id] = boxes
    cat.clusters = {
        cat.ids_by_name["web0"]: "c-web0",
        cat.ids_by_name["P01_dup"]: "c-web0",
        cat.ids_by_name["kag0"]: "c-kag0",
        cat.ids_by_name["web_kdup"]: "c-kag0",
    }
    return cat
