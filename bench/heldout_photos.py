"""A folder of photos the dedupe thresholds were never tuned on, for `bench/dedupe.py --photos`.

    python bench/heldout_photos.py DIR [--tile 180]
    python bench/dedupe.py --photos DIR [--edits]

Every threshold in `curate.dedupe` was measured on scikit-image's photographs (`tests/photo_corpus.py`).
These are other photographs that ship with installed packages, so anyone can rebuild the same folder
offline: scikit-learn's two sample photos (a temple, a flower), Matplotlib's portrait of Grace Hopper,
and, when a Label Studio install is found (`$CURATE_LABEL_STUDIO`, as `curate studio` finds it), its
sample photos (an airport from above, trees in snow, kittens, an opossum, and a drawing of one). Each photo
larger than twice `--tile` also gives its non-overlapping `--tile` px tiles that are not plain (grey
standard deviation 14 or more, as `tests/photo_corpus.py` keeps): different pictures from one camera and
scene, the hard negatives. The drawing gives no tiles (flat black and white: two of its tiles can be the
same picture). Prints how many pictures it wrote and from where.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUDIO_SAMPLES = {  # under label_studio/core/static/: name -> (file, tiled)
    "airport": ("samples/sample.jpg", True),
    "snow": ("samples/trees_in_snow.jpg", True),
    "kittens": ("samples/kittens1.jpg", True),
    "opossum": ("images/opossum_posing.png", True),
    "drawing": ("images/opossum_looking.png", False),
}
PLAIN_STD = 14  # grey standard deviation under which a tile is plain (sky, bokeh) and left out


def sources() -> dict[str, tuple[Path, bool]]:
    """name -> (photo file, whether it is tiled), for the packages installed here."""
    import matplotlib
    import sklearn

    out = {
        "temple": (Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg", True),
        "flower": (Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg", True),
        "hopper": (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", True),
    }
    from curate.studio.server import find_executable

    exe = find_executable()
    static = (
        next(iter(sorted(exe.resolve().parent.parent.glob("lib/python3*/site-packages/label_studio"))), None)
        if exe
        else None
    )
    if static is not None:
        out |= {k: (static / "core" / "static" / f, t) for k, (f, t) in STUDIO_SAMPLES.items()}
    return {k: v for k, v in out.items() if v[0].is_file()}


def write(out: Path, tile: int) -> dict[str, int]:
    """The photos and their tiles as JPEGs (quality 95) in `out`; pictures written per source."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, (path, tiled) in sources().items():
        img = Image.open(path).convert("RGB")
        img.save(out / f"{name}.jpg", quality=95)
        n = 1
        if tiled and min(img.size) >= 2 * tile:
            for y in range(0, img.height - tile + 1, tile):
                for x in range(0, img.width - tile + 1, tile):
                    t = img.crop((x, y, x + tile, y + tile))
                    if np.asarray(t.convert("L")).std() >= PLAIN_STD:
                        t.save(out / f"{name}_{x}_{y}.jpg", quality=95)
                        n += 1
        counts[name] = n
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="folder to write the photos to (created)")
    p.add_argument("--tile", type=int, default=180, help="side of the tiles cut from the larger photos (default: 180)")
    args = p.parse_args(argv)
    counts = write(args.out, args.tile)
    print(f"{sum(counts.values())} pictures in {args.out}: " + ", ".join(f"{k} {n}" for k, n in counts.items()))


if __name__ == "__main__":
    main()
