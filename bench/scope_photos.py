"""A folder of photos through one dermatoscope, for `bench/dedupe.py --photos`.

    python bench/scope_photos.py DIR [--n 40]
    python bench/dedupe.py --photos DIR [--edits]

Clinics photograph lesions through a dermatoscope (or a phone's clip-on one): a round field of view, black
outside, at the same place on every photo. It is a frame the content box cannot cut, and its edge is
structure that different photos share (`curate.dedupe.decode.field_stop`). The folder holds `--n`
different lesions, seen through it (`tests/photo_corpus.py`'s `through_scope`): half single lesions on
plain skin (`closeup`), half synthetic skin photos with several spots (`tests/dedupe_corpus.py`'s `photo`),
each a 512 px square JPEG. Seeds start at 7,000, so none is a photo the main corpus holds already.
`bench/dedupe.py --photos` then posts each again as it posts its own photos, 110 px thumbnails among them,
which keep little but the field stop's edge. (`through_scope(clipped=True)`, a 4:3 frame cutting the circle,
is a test's, `tests/test_dedupe_field_stop.py`.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SEED = 7000  # the main corpus's close-ups and skin photos use seeds far below


def write(out: Path, n: int) -> int:
    """Write `n` photos into `out` (created); returns how many."""
    from dedupe_corpus import photo
    from photo_corpus import closeup, through_scope

    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        lesion = closeup(SEED + k, (512, 512)) if k % 2 else photo(SEED + k, (512, 512))
        through_scope(lesion).save(out / f"scope{k:03d}.jpg", quality=92)
    return n


def folder_cli(write, doc: str, n: int, what: str, argv=None) -> None:
    """`DIR [--n N]`: `write(DIR, N)` and say how many `what` it wrote (this script's command line, and
    `skin_photos.py`'s)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--n", type=int, default=n, help=f"different photos (default: {n})")
    args = ap.parse_args(argv)
    print(f"{write(args.dir, args.n)} {what} in {args.dir}")


def main(argv=None) -> None:
    folder_cli(write, __doc__, 40, "photos through one dermatoscope", argv)


if __name__ == "__main__":
    main()
