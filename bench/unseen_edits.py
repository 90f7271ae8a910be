"""Dedupe on edits no corpus was tuned on: a held-out check of `curate dedupe` beside imagededup.

    python bench/unseen_edits.py [--out DIR] [--json]

Built by a hostile probe (2026-12-06) from scikit-image's photographs and crops of its large ones, none of them
made by `tests/photo_corpus.py`'s transformations: 19 photos (the stereo motorcycle pair counts as one photo, as
README's "two shots of one scene" says; crops of the retina and the Hubble field sharing 25-29 % of their area
are different photos), 7 copies each of 11 edits (a filtered photo in a wide border, the photo in a light
chat app's screenshot, meme bars above and below, 2-3 degrees turned and cropped, JPEG at quality 10, shrunk to
96 px and enlarged, grey with contrast, printed on a page photographed on a table, mirrored with colour jitter,
a 3 x 3 tile, a burst shot a few pixels off with noise), 3 families of 7 different photos that share a large
watermark, one figure template or one background colour, and 2 collages of 4 photos. Scores as
`bench/dedupe.py` does: pair precision counts every pair inside a cluster (a collage with a photo it holds
counts as false there), recall is the share of copies in their photo's cluster; imagededup's pairs are its
direct matches. Prints every false pair's two files, and how many groups holding a photo as saved send the photo
to labelling and export (its representative) rather than an edited copy. The corpus is rebuilt each run (about
5 s).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FONTS = Path("/usr/share/fonts/truetype/dejavu")
SAME_SCENE = {"moto_right": "moto_left"}  # two shots of one scene: one photo (README)


def font(size: int, bold: bool = False):
    """DejaVu when the system has it (Debian's fonts-dejavu-core), else Pillow's own scalable default."""
    path = FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size)


def photos() -> dict[str, Image.Image]:
    import skimage.data as d

    rgb = lambda a: Image.fromarray(a).convert("RGB")  # noqa: E731
    out = {
        n: rgb(getattr(d, n)())
        for n in (
            "astronaut",
            "coffee",
            "chelsea",
            "rocket",
            "coins",
            "camera",
            "immunohistochemistry",
            "clock",
            "cell",
            "moon",
        )
    }
    left, right, _ = d.stereo_motorcycle()
    out |= {"moto_left": rgb(left), "moto_right": rgb(right)}
    ret, hub = rgb(d.retina()), rgb(d.hubble_deep_field())
    out |= {  # retina A and B share 25 % of each, hubble A and B 28.6 %: different photos
        "retina_A": ret.crop((250, 350, 750, 850)),
        "retina_B": ret.crop((625, 350, 1125, 850)),
        "retina_C": ret.crop((400, 850, 900, 1350)),
        "hubble_A": hub.crop((0, 0, 420, 420)),
        "hubble_B": hub.crop((300, 0, 720, 420)),
        "hubble_C": hub.crop((0, 450, 420, 870)),
        "hubble_D": hub.crop((560, 450, 980, 870)),
    }
    return out


def vignette(img, s=0.5):
    w, h = img.size
    y, x = np.mgrid[0:h, 0:w]
    r = np.sqrt(((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / np.sqrt(2)
    m = 1 - s * r**2
    a = np.asarray(img).astype(float) * m[..., None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def insta(img, r):
    im = ImageEnhance.Color(img).enhance(1.35)
    a = np.asarray(im).astype(float)
    a = a * 0.85 + 30  # faded blacks
    a[..., 0] *= 1.08
    a[..., 2] *= 0.88  # warm
    im = vignette(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), 0.45)
    w, h = im.size
    side = max(w, h)
    b = int(side * 0.06)
    canvas = Image.new("RGB", (side + 2 * b, side + 2 * b), (250, 250, 246))
    canvas.paste(im, (b + (side - w) // 2, b + (side - h) // 2))
    return canvas


def chat(img, r):
    W, H = 390, 844
    c = Image.new("RGB", (W, H), (236, 229, 221))
    dr = ImageDraw.Draw(c)
    dr.rectangle((0, 0, W, 100), fill=(7, 94, 84))
    dr.text((14, 12), "9:41", fill="white", font=font(14, True))
    dr.ellipse((50, 50, 86, 86), fill=(200, 200, 200))
    dr.text((98, 52), "Dr. Amara Okafor", fill="white", font=font(17, True))
    dr.text((98, 74), "online", fill=(220, 240, 235), font=font(12))
    dr.rounded_rectangle((12, 116, 270, 170), 10, fill="white")
    dr.text((22, 126), "Hi, can you look at this?", fill="black", font=font(14))
    dr.text((22, 148), "Started 3 days ago", fill="black", font=font(14))
    # image bubble
    bw = 250
    im = img.copy()
    im.thumbnail((bw - 12, 330))
    x0, y0 = W - bw - 12, 190
    dr.rounded_rectangle((x0, y0, x0 + bw, y0 + im.height + 36), 10, fill=(220, 248, 198))
    c.paste(im, (x0 + 6 + (bw - 12 - im.width) // 2, y0 + 6))
    dr.text((x0 + bw - 60, y0 + im.height + 14), "10:02 ✓✓", fill=(100, 120, 100), font=font(11))
    yb = y0 + im.height + 56
    dr.rounded_rectangle((12, yb, 300, yb + 54), 10, fill="white")
    dr.text((22, yb + 8), "Thanks, I'll forward it to the", fill="black", font=font(14))
    dr.text((22, yb + 30), "dermatology team.", fill="black", font=font(14))
    dr.rectangle((0, H - 70, W, H), fill=(240, 240, 240))
    dr.rounded_rectangle((12, H - 58, W - 70, H - 16), 20, fill="white")
    dr.text((30, H - 46), "Message", fill=(150, 150, 150), font=font(15))
    dr.ellipse((W - 58, H - 60, W - 12, H - 14), fill=(7, 94, 84))
    return c


def meme(img, r):
    w, h = img.size
    bar = int(h * 0.2)
    c = Image.new("RGB", (w, h + 2 * bar), "white")
    c.paste(img, (0, bar))
    dr = ImageDraw.Draw(c)
    f = font(max(14, bar // 2), True)
    dr.text((w // 2, bar // 2), "WHEN THE RASH", fill="black", font=f, anchor="mm")
    dr.text((w // 2, h + bar + bar // 2), "WON'T GO AWAY", fill="black", font=f, anchor="mm")
    return c


def rot_crop(img, r):
    ang = float(r.choice([-1, 1]) * r.uniform(2, 3))
    im = img.rotate(ang, resample=Image.BICUBIC, expand=False)
    w, h = im.size
    m = 0.06
    return im.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))


def jpeg10(img, r):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=10)
    b.seek(0)
    return Image.open(b).convert("RGB")


def down96(img, r):
    w, h = img.size
    s = 96 / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS).resize((w, h), Image.BICUBIC)


def gray_contrast(img, r):
    return ImageEnhance.Contrast(ImageOps.grayscale(img)).enhance(1.7).convert("RGB")


def print_rephoto(img, r):
    # page with the photo and text lines
    pw, ph = 600, 800
    page = Image.new("RGB", (pw, ph), (245, 243, 236))
    dp = ImageDraw.Draw(page)
    dp.text((40, 30), "Case 7 - clinical image", fill=(30, 30, 30), font=font(22, True))
    im = img.copy()
    im.thumbnail((520, 420))
    page.paste(im, ((pw - im.width) // 2, 80))
    for i in range(8):
        y = 100 + im.height + 20 + i * 24
        dp.line((40, y, pw - 40 - (i % 3) * 60, y), fill=(90, 90, 90), width=3)
    # perspective onto a table
    W, H = 900, 900
    src = [(0, 0), (pw, 0), (pw, ph), (0, ph)]

    def j() -> float:
        return float(r.uniform(-30, 30))

    dst = [(140 + j(), 60 + j()), (760 + j(), 110 + j()), (800 + j(), 850 + j()), (90 + j(), 800 + j())]
    # coefficients mapping output -> input
    A = []
    B = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        B.append(u)
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        B.append(v)
    coef = np.linalg.solve(np.array(A, float), np.array(B, float))
    table = Image.new("RGB", (W, H), (92, 70, 52))
    warped = page.transform((W, H), Image.PERSPECTIVE, tuple(coef), Image.BICUBIC)
    mask = Image.new("L", page.size, 255).transform((W, H), Image.PERSPECTIVE, tuple(coef), Image.BICUBIC)
    table.paste(warped, (0, 0), mask)
    out = table.filter(ImageFilter.GaussianBlur(1.6))
    out = vignette(out, 0.6)
    a = np.asarray(out).astype(float)
    a[..., 0] *= 1.05
    a[..., 2] *= 0.9
    a += r.normal(0, 5, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).resize((720, 720), Image.LANCZOS)


def flip_jitter(img, r):
    im = img.transpose(Image.FLIP_LEFT_RIGHT)
    im = ImageEnhance.Brightness(im).enhance(float(r.uniform(0.85, 1.15)))
    im = ImageEnhance.Color(im).enhance(float(r.uniform(0.6, 1.5)))
    im = ImageEnhance.Contrast(im).enhance(float(r.uniform(0.85, 1.2)))
    hsv = np.asarray(im.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(r.integers(8, 18))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def tile3(img, r):
    w, h = img.size
    tw, th = w // 3, h // 3
    t = img.resize((tw, th), Image.LANCZOS)
    c = Image.new("RGB", (tw * 3, th * 3))
    for i in range(3):
        for j in range(3):
            c.paste(t, (i * tw, j * th))
    return c


def burst(img, r):
    w, h = img.size
    dx, dy = int(r.integers(3, 9)), int(r.integers(3, 9))
    im = img.crop((dx, dy, w - 9 + dx, h - 9 + dy))  # few px shift, same size
    im = ImageEnhance.Brightness(im).enhance(float(r.uniform(0.95, 1.05)))
    a = np.asarray(im).astype(float) + r.normal(0, 6, (im.height, im.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


KINDS = {
    "insta": insta,
    "chat": chat,
    "meme": meme,
    "rot_crop": rot_crop,
    "jpeg10": jpeg10,
    "down96": down96,
    "gray_contrast": gray_contrast,
    "print_rephoto": print_rephoto,
    "flip_jitter": flip_jitter,
    "tile3x3": tile3,
    "burst": burst,
}

# ---------------- hard-negative families (each file a copy of its own photo)
LOGO = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
dl = ImageDraw.Draw(LOGO)
dl.ellipse((60, 60, 540, 540), outline=(255, 255, 255, 150), width=28)
dl.text((300, 260), "DERMA", fill=(255, 255, 255, 150), font=font(110, True), anchor="mm")
dl.text((300, 370), "ATLAS ©", fill=(255, 255, 255, 150), font=font(70, True), anchor="mm")


def logo(img):
    im = img.copy().convert("RGBA")
    im = im.resize((500, round(500 * im.height / im.width)))
    s = int(min(im.size) * 0.85)
    lg = LOGO.resize((s, s))
    im.alpha_composite(lg, ((im.width - s) // 2, (im.height - s) // 2))
    return im.convert("RGB")


def template(img):
    c = Image.new("RGB", (480, 460), "white")
    im = img.copy()
    im.thumbnail((400, 320))
    c.paste(im, ((480 - im.width) // 2, 30 + (320 - im.height) // 2))
    dr = ImageDraw.Draw(c)
    dr.rectangle((38, 28, 442, 352), outline=(180, 180, 180), width=2)
    dr.text((240, 385), "Figure 1. Clinical presentation", fill="black", font=font(20, True), anchor="mm")
    dr.text((240, 420), "Source: Journal of Case Reports 2023", fill=(80, 80, 80), font=font(15), anchor="mm")
    return c


def bgcol(img):
    c = Image.new("RGB", (640, 640), (233, 30, 99))
    im = img.copy()
    im.thumbnail((280, 280))
    c.paste(im, ((640 - im.width) // 2, (640 - im.height) // 2))
    return c


fam = {
    "logo": (logo, ["astronaut", "coffee", "chelsea", "rocket", "retina_A", "hubble_C", "moto_right"]),
    "template": (template, ["coins", "camera", "immunohistochemistry", "clock", "retina_B", "hubble_A", "moto_left"]),
    "bgcolour": (bgcol, ["cell", "moon", "retina_C", "hubble_B", "hubble_D", "astronaut", "chelsea"]),
}


# ---------------- collages (different pictures from each panel)
def collage(pictures, names):
    c = Image.new("RGB", (820, 820), "white")
    for idx, n in enumerate(names):
        im = pictures[n].copy()
        im.thumbnail((400, 400))
        x = 5 + (idx % 2) * 410 + (400 - im.width) // 2
        y = 5 + (idx // 2) * 410 + (400 - im.height) // 2
        c.paste(im, (x, y))
    return c


def build(out: Path) -> dict[str, dict]:
    """Write the corpus into `out`; file name -> {"photo": name, "kind": kind} (a collage: "collage:a+b+c+d")."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240817)
    pictures = photos()
    names = list(pictures)
    truth: dict[str, dict] = {}

    def save(img: Image.Image, name: str, photo: str, kind: str, quality: int = 88) -> None:
        img = img.convert("RGB")
        img.save(out / name, **({} if name.endswith(".png") else {"quality": quality}))
        truth[name] = {"photo": SAME_SCENE.get(photo, photo), "kind": kind}

    for n in names:
        save(pictures[n], f"orig_{n}.png", n, "original")
    i = 0
    for k_i, (kind, edit) in enumerate(KINDS.items()):
        for j in range(7):
            n = names[(k_i * 5 + j * 3) % len(names)]
            if kind == "jpeg10":  # the file itself at quality 10
                save(pictures[n], f"c{i:03d}_{kind}_{n}.jpg", n, kind, quality=10)
            else:
                save(edit(pictures[n], rng), f"c{i:03d}_{kind}_{n}.jpg", n, kind)
            i += 1
    for kind, (edit, members) in fam.items():
        for n in members:
            save(edit(pictures[n]), f"n{i:03d}_{kind}_{n}.jpg", n, kind)
            i += 1
    for c, members in enumerate(
        [["astronaut", "coffee", "chelsea", "rocket"], ["hubble_A", "retina_C", "coins", "moto_right"]]
    ):
        collage(pictures, members).save(out / f"collage{c}.jpg", quality=88)
        truth[f"collage{c}.jpg"] = {
            "photo": "collage:" + "+".join(SAME_SCENE.get(m, m) for m in members),
            "kind": "collage",
        }
    return truth


def run_ours(corpus: Path, work: Path) -> dict:
    """ingest + dedupe in a fresh workspace: clusters and review pairs by file name."""
    from sqlmodel import select

    from curate.dedupe.review import review_items
    from curate.dedupe.run import DedupeOptions, run_dedupe
    from curate.intake.ingest import IngestOptions, ingest_folder
    from curate.workspace import Workspace
    from db.models import DedupeMember, Provenance

    ws = Workspace.init(work / "ws")
    t = time.perf_counter()
    ingest_folder(ws, corpus, IngestOptions(source="web", kind="web"))
    run_dedupe(ws, DedupeOptions())
    seconds = time.perf_counter() - t
    with ws.session() as s:
        name = {i: Path(loc).name for i, loc in s.exec(select(Provenance.image_id, Provenance.locator)).all()}
        rows = s.exec(select(DedupeMember)).all()
    cluster = {name[m.image_id]: m.cluster_key for m in rows}
    chosen = {m.cluster_key: name[m.image_id] for m in rows if m.representative}
    items = review_items(ws)
    review = [(name[p["image_a"]], name[p["image_b"]]) for p in items["to_review"]]
    return {"seconds": seconds, "cluster": cluster, "review": review, "representative": chosen}


def kept(truth: dict[str, dict], cluster: dict[str, str], chosen: dict[str, str]) -> dict:
    """Of the groups of two or more pictures holding a photo as it was saved (`orig_*.png`), how many send
    the photo to labelling and export (its cluster's representative), and which edits represent the others."""
    members = defaultdict(list)
    for f, c in cluster.items():
        members[c].append(f)
    groups = [c for c, m in members.items() if len(m) > 1 and any(truth[f]["kind"] == "original" for f in m)]
    instead = defaultdict(int)
    for c in groups:
        if truth[chosen[c]]["kind"] != "original":
            instead[truth[chosen[c]]["kind"]] += 1
    return {"groups": len(groups), "photo": len(groups) - sum(instead.values()), "instead": dict(instead)}


def run_imagededup(corpus: Path) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from dedupe import run_imagededup as run

    return run(corpus)


def score(truth: dict[str, dict], pairs: set[frozenset]) -> dict:
    """Precision over `pairs` (every pair a tool put together), recall of copies with their original."""
    photo = {f: t["photo"] for f, t in truth.items()}

    def true_pair(a: str, b: str) -> bool:
        if truth[a]["kind"] == "collage" or truth[b]["kind"] == "collage":
            return False  # a collage is no copy of a photo it holds, nor of another collage
        return photo[a] == photo[b]

    false = sorted(tuple(sorted(p)) for p in pairs if not true_pair(*tuple(p)))
    original = {t["photo"]: f for f, t in truth.items() if t["kind"] == "original" and not f.endswith("moto_right.png")}
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f, t in truth.items():
        if t["kind"] in ("original", "collage"):
            continue
        kinds[t["kind"]][0] += 1
        kinds[t["kind"]][1] += frozenset((f, original[photo[f]])) in pairs
    found = sum(v[1] for v in kinds.values())
    return {
        "precision": 1 - len(false) / len(pairs) if pairs else 1.0,
        "pairs": len(pairs),
        "false": false,
        "recall": found / sum(v[0] for v in kinds.values()),
        "kinds": dict(sorted(kinds.items())),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="Keep the corpus and workspace here (default: a temp folder).")
    ap.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        corpus = work / "corpus"
        truth = build(corpus)
        ours = run_ours(corpus, work)
        members = defaultdict(list)
        for f, c in ours["cluster"].items():
            members[c].append(f)
        our_pairs = {frozenset(p) for m in members.values() for p in itertools.combinations(m, 2)}
        theirs = run_imagededup(corpus)
        their_pairs = {frozenset(p) for p in theirs["pairs"] if p[0] != p[1]}
        result = {
            "files": len(truth),
            "ours": {
                "seconds": round(ours["seconds"], 1),
                "review_pairs": len(ours["review"]),
                "kept": kept(truth, ours["cluster"], ours["representative"]),
                **score(truth, our_pairs),
            },
            "imagededup": {"seconds": round(theirs["seconds"], 1), **score(truth, their_pairs)},
        }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    o, i = result["ours"], result["imagededup"]
    print(f"unseen edits: {result['files']} files")
    print("| | mpox-curate | imagededup |\n|---|---|---|")
    print(f"| seconds (ours: ingest + dedupe) | {o['seconds']} | {i['seconds']} |")
    print(f"| pair precision (every pair in a cluster) | {o['precision']:.4f} | {i['precision']:.4f} |")
    print(f"| false pairs | {len(o['false'])} | {len(i['false'])} |")
    print(f"| recall (copies with their photo) | {o['recall']:.3f} | {i['recall']:.3f} |")
    for k in o["kinds"]:
        (n, a), (_, b) = o["kinds"][k], i["kinds"][k]
        print(f"| recall: {k} | {a}/{n} | {b}/{n} |")
    print(f"| pairs to review | {o['review_pairs']} | no review list |")
    kept_ = o["kept"]
    print(
        f"| the photo represents its group (labelled, exported) | {kept_['photo']} of {kept_['groups']} | keeps none |"
    )
    if kept_["instead"]:
        print(
            "mpox-curate keeps instead of the photo: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kept_["instead"].items()))
        )
    for tool, r in (("mpox-curate", o), ("imagededup", i)):
        if r["false"]:
            print(f"{tool} false pairs:")
            for a, b in r["false"]:
                print(f"  {a}  <->  {b}")


if __name__ == "__main__":
    main()
