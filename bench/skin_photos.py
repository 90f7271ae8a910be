"""A folder of skin photos at a phone's or a web page's sizes, for `bench/dedupe.py --photos`.

    python bench/skin_photos.py DIR [--n 120]
    python bench/dedupe.py --photos DIR

scikit-image's photographs, which the default corpus posts again, are textured: SIFT finds hundreds of
keypoints on each at 160 px. A lesion photographed on plain skin is not: a close-up of one lesion, 640 to
1,024 px wide, keeps 6-14 there, and its copies could only go to review. The folder holds `--n` different
photos, the first `--n` * 5 / 12 single lesions on plain skin (`tests/photo_corpus.py`'s `closeup`, each with
its own skin colour and 1-4 % texture), the rest synthetic skin photos with several spots and creases
(`tests/dedupe_corpus.py`'s `photo`), at sizes from 224 px square to 1,024 x 768, landscape and portrait,
JPEG at 90. Seeds start at 9,000, so none is a photo the main corpus or `scope_photos.py` holds already.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SEED = 9000
SIZES = ((224, 224), (400, 300), (640, 480), (800, 600), (1024, 768), (300, 400), (480, 640))


def _size(k: int) -> tuple[int, int]:
    """Photo k's size: the sizes in turn."""
    return SIZES[(k + 3) % len(SIZES)]


def closeups(n: int):
    """The folder's first `n` close-ups, in order: (name, image), each with its own size, skin colour and
    1-4 % texture (`bench/leakage.py --closeups` audits them too)."""
    import numpy as np
    from photo_corpus import closeup

    rng = np.random.default_rng(SEED)
    for k in range(n):
        skin = tuple(int(x) for x in rng.integers([150, 100, 80], [235, 180, 150]))
        img = closeup(SEED + k, _size(k), skin=skin, texture=float(rng.uniform(0.01, 0.04)))
        yield f"c{k:03d}", img


def write(out: Path, n: int) -> int:
    """Write `n` photos into `out` (created); returns how many."""
    from dedupe_corpus import photo

    out.mkdir(parents=True, exist_ok=True)
    for name, img in closeups(n * 5 // 12):
        img.save(out / f"{name}.jpg", quality=90)
    for k in range(n * 5 // 12, n):
        photo(SEED + k, _size(k)).save(out / f"s{k:03d}.jpg", quality=90)
    return n


def main(argv=None) -> None:
    from scope_photos import folder_cli

    folder_cli(write, __doc__, 120, "skin photos", argv)


if __name__ == "__main__":
    main()
