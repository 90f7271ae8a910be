"""Find the pairs: pixel-identical, hash candidates checked by verification, CNN.

Hashes, shared local features (`curate.dedupe.local`, up to `LOCAL_MAX`
pictures) and whole pictures of one shape (`curate.dedupe.whole`) only propose.
Each hash candidate whose correlation reaches the floor (`--similarity`), and
each candidate of the two other proposals, is verified: first by the
thumbnails' pixel correlation (`verify.thumb_correlation`; overwhelming evidence,
no local features needed), then, for the pairs that leaves undecided,
geometrically on the two content boxes (`curate.dedupe.verify`; SIFT features
are computed once per picture and size). "same" pairs become edges, "review" pairs are stored
for the steward and never merged, "different" pairs are dropped. Then, so that
clusters never chain, every pair inside a tentative group of up to `COMPLETE_MAX`
images that the hashes did not propose is verified too (a "same" the pixels away from its one object put
to review, `verify.pixels_said`, still links a tentative group, `links`: else the chart's pairs it took out split a
group too large to verify into groups small enough, and in them the chart's other "same"s, on faint
close-ups the pixels cannot tell, were verified and merged: bench/README.md, "the pixels away from a colour
chart"); the clustering joins an
image to a group only when no member contradicts it (`curate.dedupe.cluster`). A
"different" there, and any "review", between two pictures with texture enough is
looked at again with their contrast evened out (`Verifier._evened`); so is a "different" there with a
nearly textureless picture when local features found both "same" as one member (`_both_matched`). A
pair there that one picture's lack of texture leaves undecided (fewer than
`verify.MIN_KEYPOINTS` keypoints, no match) is stored as "untested": no evidence
either way, so it neither joins nor blocks, and it is not put to the steward. So
is a "different" between a thumbnail-sized picture (content box under
`cluster.SMALL` px) and a full-sized one (`Verifier._small`), and one from a
member's thumbnail twin against a picture local features found "same" as that
member (`_through_twin`), and one between two parts of one photo: their keypoints agree but they overlap too
little, and local features found both "same" as one member (`_parts_of_one`: two crops of a photo's ends).
Last, "same" pairs among
three or more pictures that match each other only in place, their pixels unlike, are
put to review: a site's watermark stamped on different photos (`stamps`); a pair
with no such third picture looks for one at full size among the pictures
proposed with both or, laid so with others, with either (`lone_stamps`), and the sides found are stored as `MARKS`.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import cache
from itertools import combinations
from threading import Lock

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
from sqlmodel import Session, select
from threadpoolctl import threadpool_limits

from curate.dedupe import verify
from curate.dedupe.answers import answering
from curate.dedupe.batches import batches
from curate.dedupe.cluster import KIND_RANK, MARKS, NOT_EDGES, SMALL, STAMPED, UNTESTED, stamped
from curate.dedupe.collage import panel_pairs
from curate.dedupe.decode import THUMB, Decodes, box_side, field_stop, grey_thumbnail, parse_box, parse_panels
from curate.dedupe.hashing import METHODS, WINDOWS, RegionPHash, is_mirror
from curate.dedupe.kept import Kept
from curate.dedupe.local import local_pairs
from curate.dedupe.stored import StoredFeatures
from curate.dedupe.whole import SAME_SHAPE, whole_pairs
from curate.imaging import STAMP_NCC
from db.models import DedupeCode, DedupePair, Image

COMPLETE_MAX = 24  # tentative groups up to this size get every pair verified
LOCAL_MAX = 100_000  # pictures up to which local features propose too (at 100,000: 12.8 M descriptors, 1.6 GB
# as stored, an index of 4-bit codes: under 5 minutes, `local.FAST`; bench/README.md, "the local proposal at scale")
# bytes of local features verification keeps (`Verifier`): 1 GB made a run of 21,262 pictures take 36 % of them
# again, 26 % more time for a 0.4 GB lower peak (bench/README.md, "verification's memory"); 2 GB holds 25,000
FEATURES_BUDGET = 2048 * 2**20
PICTURE_BYTES = 160 * 2**10  # twice a picture's on average (both sizes, as it is and mirrored: `Verifier.room`)
PANELS_MAX = 64  # a collage has fewer panels than this (5 x 5 at most: `decode.PANEL_LEAST`; `Verifier.view`)
UNREAD = "unread:"  # `dedupe_codes.searched_with` of a picture verification could not read: its settings follow
# what a stored pair says besides its kind and scores, in `Pair`'s order (read back by an incremental run)
SAID = (DedupePair.inliers, DedupePair.reason, DedupePair.in_place, DedupePair.a_shows, DedupePair.b_shows)


@dataclass(frozen=True)
class Pair:
    a: int  # a < b
    b: int
    kind: str  # pixel | hash | cnn | review | untested
    similarity: float = 1.0
    hamming: int | None = None
    inliers: int | None = None
    reason: str | None = None
    in_place: float | None = None  # a "same" laid in place: its pixels' correlation (`verify.in_place_correlation`)
    a_shows: float | None = None  # a "same": the share of b's content box a shows, and b of a's (`verify.shows`)
    b_shows: float | None = None


def load_codes(s: Session, algo: str):
    """(ids, codes, thumbnails, settings searched with) of the pictures with something to compare, in the
    order of their digests: every search and proposal sees them in one order whatever order they were
    ingested in (an index's training sample and its ties follow it; `Verifier.swapped` for each pair)."""
    rows = s.exec(
        select(DedupeCode.image_id, DedupeCode.codes, DedupeCode.thumb, DedupeCode.searched_with, DedupeCode.flat)
        .join(Image, Image.id == DedupeCode.image_id)
        .where(DedupeCode.algo == algo)
        .order_by(Image.sha256, DedupeCode.image_id)
    ).all()
    rows = [r for r in rows if not r[4]]  # single-colour pictures: nothing to compare
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    codes = (
        np.stack([np.frombuffer(r[1], "<u8") for r in rows]).astype(np.uint64)
        if rows
        else np.empty((0, len(WINDOWS)), np.uint64)
    )
    thumbs = [np.frombuffer(r[2], np.uint8).reshape(THUMB, THUMB) for r in rows]
    return ids, codes, thumbs, [r[3] for r in rows]


class Verifier:
    """Verification of image pairs: thumbnails first, then SIFT at `verify.COARSE` px, and at
    `verify.WORK` px only for what that leaves undecided (`verify.triage`). A picture's features are
    computed once per size, decoded at that size, lazily, on a thread pool, and kept up to `FEATURES_BUDGET`
    (`curate.dedupe.kept`; the least recently used go first and are taken again when needed): at 80-95 KB
    a picture (bench/README.md), a catalogue of 100,000 would otherwise hold 8-9 GB. Pairs are looked at in
    batches whose pictures' features fit (`curate.dedupe.batches`). `on_progress(stage, done, total)` hears
    the pictures whose features are taken ("local features") and the pairs decided ("verify")."""

    def __init__(
        self,
        ws,
        workers: int = 0,
        thumbs: dict[int, np.ndarray] | None = None,
        on_progress: Callable[[str, int, int | None], None] | None = None,
        stored: StoredFeatures | None = None,
    ):
        self.ws = ws
        self.stored = stored  # features kept between runs (`curate.dedupe.stored`)
        self.on_progress = on_progress
        self.counts = {"local features": [0, 0], "verify": [0, 0]}  # stage -> [done, total]
        self.workers = workers or os.cpu_count() or 1
        self.thumbs = thumbs or {}
        # (image, side) -> features (None: unreadable); (image, side, "mirror"): mirrored; (image, side, "even"): evened
        self.kept: Kept[verify.Features | None] = Kept(FEATURES_BUDGET, _nbytes)
        self.taken: dict[int, int] = defaultdict(int)  # side -> features taken (again, when let go: benchmark)
        self._taking = Lock()
        self.keypoints: dict[int, int] = {}  # at `verify.COARSE` px (from the catalogue: up to local.TOP), kept
        self.sift_pairs = 0  # pairs that needed local features (benchmark, logs)
        self.full_pairs = 0  # of those, pairs the coarse look left undecided
        self.corr: dict[tuple[int, int], float | None] = {}  # the content boxes' thumbnails (`correlation`)
        self.ncc: dict[tuple[int, int], tuple[float, str] | None] = {}  # what settles a pair (`overwhelming`)
        self.part: dict[tuple[int, int], float] = {}  # and its lowest with a part left out (`_one_part`)
        self.small_ncc: dict[tuple[int, int], tuple[float, str] | None] = {}  # `_thumbnail_sized`
        self.coarse_review: dict[tuple[int, int], verify.Verdict] = {}  # the coarse look's verdict, when undecided
        self.coarse_same: dict[tuple[int, int], verify.Verdict] = {}  # its "same", `unasked` at that size
        self.near: dict[tuple[int, int], verify.Verdict] = {}  # the thumbnails' "same" the coarse look denied
        self.decodes = Decodes()  # pictures decoded for one look, kept for the next
        self.unread: dict[int, str] = {}  # image id -> why its original could not be read again (`_features`)
        self.intact: set[str] = set()  # originals whose SHA-256 this run checked already (`_grey`)
        self.evened_pairs = 0  # pairs looked at again with contrast evened (benchmark)
        self.recut_pairs = 0  # pairs looked at again with a detail's content box cut again (`_recut`)
        with ws.session() as s:
            rows = s.exec(select(Image.id, Image.sha256, Image.width, Image.height)).all()
            self.sha = {i: sha for i, sha, _, _ in rows}
            self.aspect = {i: w / max(h, 1) for i, _, w, h in rows}
            size = {i: (w, h) for i, _, w, h in rows}
            rows = s.exec(
                select(DedupeCode.image_id, DedupeCode.box, DedupeCode.note, DedupeCode.masked, DedupeCode.panels)
            ).all()
        self.box = {i: parse_box(b) for i, b, _, _, _ in rows}
        self.panels = {i: found for i, *_, text in rows if (found := parse_panels(text))}  # collages (`decode.panels`)
        self.views: set[int] = set()  # a collage's panels, each a picture of its own (`view`)
        # no thumbnail shortcut for these: no content box cut (a frame could make them alike), or a
        # thumbnail mostly in-painted (`verify.MOST_INPAINTED`)
        self.unsure = {i for i, _, note, masked, _ in rows if note or masked > verify.MOST_INPAINTED}
        self.small = {  # a thumbnail-sized copy (`_small`)
            i for i, (w, h) in size.items() if box_side(w, h, self.box.get(i, (0.0, 0.0, 1.0, 1.0))) < SMALL
        }
        # a file of a thumbnail's size (`_thumbnail_sized`): not a small content box cut from a larger picture
        self.thumbnail_files = {i for i, (w, h) in size.items() if max(w, h) < SMALL}

    def overwhelming(self, a: int, b: int) -> tuple[float, str] | None:
        """(correlation, what correlates) when the thumbnails alone decide "same" (`verify.ACCEPT_NCC`):
        the content boxes', or, for two pictures of one shape whose boxes were cut differently, the
        union of both boxes (`_union`), else None."""
        if (a, b) not in self.ncc:
            ncc = None if a in self.unsure or b in self.unsure else self.correlation(a, b)
            if ncc is not None and ncc < verify.ACCEPT_NCC and (union := self._union(a, b)) is not None:
                self.ncc[(a, b)] = (union, "thumbnails of both content boxes together correlate")
            else:
                self.ncc[(a, b)] = None if ncc is None else (ncc, "thumbnails correlate")
                if ncc is not None and ncc >= verify.ACCEPT_NCC:
                    self.part[(a, b)] = verify.part_correlation(
                        self.thumbs[a], self.thumbs[b], smooth=self._smooth(a, b)
                    )
        found = self.ncc[(a, b)]
        if found is None or found[0] < self._least(a, b) or self._one_part(a, b):
            return self._thumbnail_sized(a, b)  # too weak, or carried by one part of the pictures
        return found

    def _thumbnail_sized(self, a: int, b: int) -> tuple[float, str] | None:
        """`overwhelming` for a pair with a thumbnail-sized file (`thumbnail_files`): the thumbnails compared
        at `verify.SMALL_THUMB` px (`verify.coarser`), where they settle it from `verify.SMALL_NCC`, unless a
        quarter of them, or their light, left out drops it by `verify.PART_DROP`. Else None. Not for a
        small content box in a larger file (a fundus tile, mostly black): what correlates there is the
        rim's light, which a neighbouring tile shares (`tests/test_dedupe_smooth.py`)."""
        if (a not in self.thumbnail_files and b not in self.thumbnail_files) or a in self.unsure or b in self.unsure:
            return None
        if (a, b) not in self.small_ncc:
            ta, tb = self.thumbs.get(a), self.thumbs.get(b)
            found = None
            if ta is not None and tb is not None:
                ca, cb = verify.coarser(ta), verify.coarser(tb)
                ncc = verify.thumb_correlation(ca, cb)
                if (
                    ncc >= verify.SMALL_NCC
                    and verify.part_correlation(ca, cb, smooth=self._smooth(a, b)) > ncc - verify.PART_DROP
                ):
                    found = (ncc, f"a thumbnail-sized copy: thumbnails at {verify.SMALL_THUMB} px correlate")
            self.small_ncc[(a, b)] = found
        return self.small_ncc[(a, b)]

    def _least(self, a: int, b: int) -> float:
        """The thumbnails' correlation that settles the pair (`verify.ACCEPT_NCC`, `SMOOTH_NCC` when smooth)."""
        return verify.SMOOTH_NCC if self._smooth(a, b) else verify.ACCEPT_NCC

    def _smooth(self, a: int, b: int) -> bool:
        """Whether either picture is `smooth`."""
        return self.smooth(a) or self.smooth(b)

    def _one_part(self, a: int, b: int) -> bool:
        """Whether the thumbnails' correlation falls by `verify.PART_DROP` or more with a quarter of them, or
        their light, left out (`verify.part_correlation`): one part of the pictures carries it."""
        found, part = self.ncc.get((a, b)), self.part.get((a, b))
        return found is not None and part is not None and part <= found[0] - verify.PART_DROP

    def smooth(self, image_id: int) -> bool:
        """Whether the picture is known to have under `verify.MIN_KEYPOINTS` keypoints at `verify.COARSE`
        px: its thumbnail is then the only evidence about it, and two different smooth pictures (tiles
        of one fundus photo, a perspective-warped or captioned copy of one) correlate up to 0.96."""
        n = self.keypoints.get(image_id)
        return n is not None and n < verify.MIN_KEYPOINTS

    def correlation(self, a: int, b: int) -> float | None:
        """The content boxes' thumbnail correlation (`verify.thumb_correlation`), once a pair; None
        without both thumbnails."""
        if (a, b) not in self.corr:
            ta, tb = self.thumbs.get(a), self.thumbs.get(b)
            self.corr[(a, b)] = None if ta is None or tb is None else verify.thumb_correlation(ta, tb)
        return self.corr[(a, b)]

    def _union(self, a: int, b: int) -> float | None:
        """Correlation of the same part of two pictures of one shape (within `SAME_SHAPE`) whose content
        boxes differ: the smallest box holding both. A tone change or re-encode of a smooth photo can move
        where the cut into its plain background falls (a microscope blob: 68 % of the width kept in one
        copy, 43 % in the other), and two boxes of different parts never correlate."""
        ba, bb = self.box.get(a), self.box.get(b)
        if a in self.views or b in self.views:  # a panel's box is a part of its collage, not a picture's shape
            return None
        if ba is None or bb is None or abs(self.aspect[a] / self.aspect[b] - 1) > SAME_SHAPE:
            return None
        if max(abs(x - y) for x, y in zip(ba, bb, strict=True)) <= SAME_SHAPE:
            return None  # the same box: the content boxes' thumbnails said it
        union = (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3]))
        try:
            ga, gb = (self._grey(i, union, THUMB) for i in (a, b))
        except Exception:  # unreadable now: no shortcut, the local features decide
            return None
        ta, tb = verify.view_thumbnails(ga, gb)
        if field_stop(ta) is not None or field_stop(tb) is not None:
            return None  # a round field's surround, the same on different photos (0.97), is in these crops
        ncc = verify.view_correlation(ta, tb)
        if ncc >= verify.ACCEPT_NCC:
            self.part[(a, b)] = verify.part_correlation(ta, tb, turn=False, smooth=self._smooth(a, b))
        return ncc

    def _grey(self, image_id: int, box: tuple[float, float, float, float], side: int) -> np.ndarray:
        """`box` of a picture as grey at about `side` px, decoded once for all its looks (`decode.Decodes`); its
        original's SHA-256 checked at its first look of the run."""
        sha = self.sha[image_id]
        data = self.ws.store.read(sha, check=sha not in self.intact)
        self.intact.add(sha)
        return self.decodes.box(sha, data, box, side)

    def _features(self, key: tuple[int, int], even: bool = False) -> verify.Features | None:
        """Features of one picture's content box, decoded at the size they are taken at (nothing kept
        but the features: a catalogue's pictures do not all fit in memory); `even`: its contrast evened
        out (`verify.evened`)."""
        image_id, side = key
        box = self.box.get(image_id, (0.0, 0.0, 1.0, 1.0))
        kept = None if self.stored is None else self.stored.key(self.sha[image_id], box, side, even)
        f = None if kept is None else self.stored.get(kept)
        if f is None:
            try:
                grey = self._grey(image_id, box, side)
            except Exception as exc:  # unreadable now: the pair is judged on no evidence ("different" or "review")
                self.unread.setdefault(image_id, str(exc) or type(exc).__name__)
                return None
            f = verify.features(grey, side, even)
            if kept is not None:
                self.stored.put(kept, f)
            with self._taking:
                self.taken[side] += 1
        if side == verify.COARSE and not even:
            self.keypoints[image_id] = len(f.points)
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return f
        sx, sy = f.width / (x1 - x0), f.height / (y1 - y0)  # working pixels per whole picture
        whole = None if (x0, y0, x1, y1) == (0.0, 0.0, 1.0, 1.0) else (-x0 * sx, -y0 * sy, (1 - x0) * sx, (1 - y0) * sy)
        panels = tuple(
            (
                max(0.0, (px0 - x0) * sx),
                max(0.0, (py0 - y0) * sy),
                min(f.width, (px1 - x0) * sx),
                min(f.height, (py1 - y0) * sy),
            )
            for px0, py0, px1, py1 in self.panels.get(image_id, ())
        )
        return replace(f, whole=whole, panels=panels)

    def feature(self, key: tuple[int, int]) -> verify.Features | None:
        """The features of (image, side): kept ones, or taken now (`_features`)."""
        return self.kept.get(key, lambda: self._features(key))

    def _flipped(self, image_id: int, side: int) -> verify.Features:
        return self.kept.get((image_id, side, "mirror"), lambda: verify.mirrored(self.feature((image_id, side))))

    @property
    def room(self) -> int:
        """Pictures whose features the budget holds at once (`PICTURE_BYTES` each)."""
        return max(2, self.kept.budget // PICTURE_BYTES)

    def prepare(self, image_ids, side: int = verify.WORK) -> None:
        image_ids = list(image_ids)
        if any((i, side) not in self.kept for i in image_ids):
            with ThreadPoolExecutor(self.workers) as pool:  # OpenCV releases the GIL
                self._extract(pool, [(i, side) for i in image_ids])

    def _extract(self, pool: ThreadPoolExecutor, keys) -> None:
        """The features of `keys` (image, side) not kept now, taken on `pool`."""
        todo = sorted({key for key in keys if key not in self.kept})
        self._count("local features", 0, len(todo))
        for _ in pool.map(self.feature, todo):
            self._count("local features", 1)

    def _count(self, stage: str, done: int, more: int = 0) -> None:
        """`done` more of `stage`'s units finished, `more` added to its total; told to `on_progress`."""
        counts = self.counts[stage]
        counts[0] += done
        counts[1] += more
        if self.on_progress is not None and (done or more):
            self.on_progress(stage, *counts)

    def _look(self, a: int, b: int, corr: float, dihedral: int | None, side: int):
        """(geometry, keypoints) of the pair at `side` px, or None when a picture cannot be read."""
        fa, fb = self.feature((a, side)), self.feature((b, side))
        if fa is None or fb is None:
            return None
        mirrored = None if dihedral is None else is_mirror(dihedral)
        g = verify.match(fa, lambda: self._flipped(a, side), fb, mirrored, corr >= verify.BOTH_CORR)
        return g, (len(fa.points), len(fb.points))

    def _needs_features(self, a: int, b: int) -> bool:
        """Whether the pair is looked at with local features: the thumbnails do not settle it, or settle it
        only near their threshold (`verify.NEAR_NCC`)."""
        found = self.overwhelming(a, b)
        return found is None or found[0] < verify.NEAR_NCC

    def _coarse(self, a: int, b: int, corr: float, dihedral: int | None = None) -> verify.Verdict | None:
        self.coarse_same.pop((a, b), None)  # an earlier batch's look at this pair (`complete` asks again)
        self.near.pop((a, b), None)
        found = self.overwhelming(a, b)
        if found is not None and found[0] >= verify.NEAR_NCC:
            return verify.Verdict(verify.SAME, f"{found[1]} {found[0]:.3f}", verify.Geometry())
        self.prepare((a, b), verify.COARSE)
        if found is not None and (found := self.overwhelming(a, b)) is not None:  # smoothness is known now
            return self._near_coarse(a, b, corr, dihedral, found)
        look = self._look(a, b, corr, dihedral, verify.COARSE)
        if look is None:
            return verify.decide(verify.Geometry(), corr, (0, 0))
        verdict = verify.triage(look[0], corr, look[1])
        if verdict is None:
            self.coarse_review[(a, b)] = verify.decide(look[0], corr, look[1])
            return None
        placed = self._placed(a, b, verify.COARSE, verdict)
        if placed.decision != verdict.decision:  # one object only: the full-size look decides
            self.coarse_review[(a, b)] = placed
            return None
        if placed.unasked:  # on part of the pictures, not asked at this size (`verify.one_object`)
            self.coarse_same[(a, b)] = placed
            return None
        return placed

    def _near_coarse(
        self, a: int, b: int, corr: float, dihedral: int | None, found: tuple[float, str]
    ) -> verify.Verdict | None:
        """The thumbnails' "same" near their threshold (`verify.NEAR_NCC`), unless the coarse look denies it
        (`verify.denies`): then None, and the full-size look decides (`_near_full`)."""
        shortcut = verify.Verdict(verify.SAME, f"{found[1]} {found[0]:.3f}", verify.Geometry())
        look = self._look(a, b, corr, dihedral, verify.COARSE)
        if look is None or not verify.denies(verify.decide(look[0], corr, look[1]), look[1]):
            return shortcut
        self.near[(a, b)] = shortcut
        return None

    def _near_full(self, a: int, b: int, corr: float, dihedral: int | None, shortcut: verify.Verdict) -> verify.Verdict:
        """ "review" when the full-size look denies the thumbnails' "same" too, both pictures with all the
        keypoints SIFT is asked for (`verify.N_FEATURES`): the stages disagree near a threshold, the steward
        decides; else the "same" stands. A blurred or small copy has fewer at full size (enlarged, it gains
        no detail: 33-226 at 160 px, 39-231 at 320), and its thumbnail is the better evidence."""
        look = self._look(a, b, corr, dihedral, verify.WORK)
        full = None if look is None else verify.decide(look[0], corr, look[1])
        if full is None or not verify.denies(full, look[1], verify.N_FEATURES):
            return shortcut
        said = f"{shortcut.reason}, but local features find no match ({look[0].inliers} keypoints agree)"
        return verify.Verdict(verify.REVIEW, f"near the threshold: {said}", full.geometry)

    def _full(self, a: int, b: int, corr: float, dihedral: int | None = None) -> verify.Verdict:
        """The look at full size; a "review" at the coarse size stands when this one finds less (a small
        or blurred picture enlarged to `verify.WORK` px loses matches: 10 at 160 px, "different" at 320)."""
        self.prepare((a, b), verify.WORK)
        if (shortcut := self.near.pop((a, b), None)) is not None:
            return self._near_full(a, b, corr, dihedral, shortcut)
        if (same := self.coarse_same.get((a, b))) is not None:
            return self._asked(a, b, same)
        look = self._look(a, b, corr, dihedral, verify.WORK)
        full = verify.decide(verify.Geometry(), corr, (0, 0)) if look is None else verify.decide(look[0], corr, look[1])
        full = self._placed(a, b, verify.WORK, full)
        coarse = self.coarse_review.get((a, b))
        if full.decision == verify.DIFFERENT and coarse is not None and coarse.decision == verify.REVIEW:
            return verify.Verdict(verify.REVIEW, f"{coarse.reason} (at {verify.COARSE} px)", coarse.geometry)
        return full

    def _asked(self, a: int, b: int, same: verify.Verdict) -> verify.Verdict:
        """The coarse look's "same" on part of the pictures (`verify.Verdict.unasked`), its transform asked
        at `verify.WORK` px, where the skin away from the agreement has keypoints (`verify.one_object`):
        "review" on one object only, else the "same" stands (no match at full size is needed)."""
        g, plain, fb = same.geometry, self.feature((a, verify.WORK)), self.feature((b, verify.WORK))
        fa = self._flipped(a, verify.WORK) if g.mirrored and plain is not None else plain
        ca, cb = self.feature((a, verify.COARSE)), self.feature((b, verify.COARSE))
        if fa is None or fb is None or ca is None or cb is None or g.transform is None:
            return replace(same, unasked=False)
        m = np.array(g.transform, np.float64).reshape(2, 3)
        onto = np.diag([fb.width / cb.width, fb.height / cb.height])  # b's coarse pixels -> b's full-size ones
        t = np.hstack([onto @ m[:, :2] @ np.diag([ca.width / fa.width, ca.height / fa.height]), onto @ m[:, 2:]])
        asked = verify.one_object(replace(same, geometry=replace(g, transform=tuple(t.ravel().tolist()))), fa, fb)
        return replace(asked if asked.decision == verify.REVIEW else same, unasked=False, in_place=same.in_place)

    def _placed(self, a: int, b: int, side: int, v: verify.Verdict) -> verify.Verdict:
        feats = self.feature((a, side)), lambda: self._flipped(a, side), self.feature((b, side))
        return _laid(v, *feats, coarse=side == verify.COARSE, ask=not self._tiny(a, b))

    def _tiny(self, a: int, b: int) -> bool:
        """Whether a picture of the pair is thumbnail-sized (`_small`): enlarged to the look's size its
        keypoints away from the agreement are JPEG noise, unlike on their spots (a small JPEG copy against
        its photo in a frame: 24 of 193 alike), so `verify.one_object` is not asked."""
        return a in self.small or b in self.small

    def _unsettled(self, a: int, b: int, v: verify.Verdict, thorough: bool) -> bool:
        """Whether `_evened` looks at the pair again: a "review", or a "different" inside a tentative group
        (`complete`) between two pictures with texture enough (not `smooth`: evening a nearly textureless
        picture raises its JPEG noise into keypoints, `verify.evened`). Not a "different" for want of texture
        (`untestable`): looking at those too (at 320 px, `_evened`) took verification 41 % more CPU than before on
        `bench/skin_photos.py`'s corpus, against 23 % for the "review"s alone, for one copy more."""
        wanted = v.decision == verify.REVIEW or (thorough and v.decision == verify.DIFFERENT and not self._smooth(a, b))
        return wanted and not v.untestable

    def _evened(self, a: int, b: int, corr: float, dihedral: int | None, v: verify.Verdict) -> verify.Verdict:
        """The pair looked at again with both pictures' contrast evened out (`verify.evened`), at
        `verify.COARSE` px. A darkened copy of a photo and its squeezed crop shared 4-7 keypoints, and
        that "different" kept the darkened copy out of its photo's cluster: a "different" gives way to
        what this look says ("same" or "review"). A "review" gives way only to "same" on `verify.SAME_INLIERS`
        or more (a blurred, shrunk copy: 10-11 matches with its photo); on fewer, two different photos under
        one stamp became "same" (`bench/dedupe.py --stamped`). At 160 px rather than 320: `--edits` recall
        0.960 against 0.949, and v6's verification took 46 s of CPU instead of 67. A "review" with a `smooth`
        picture is looked at at `verify.WORK` px: a close-up of one lesion on plain skin has 5-13 keypoints at
        160 px, evened or not; copies it lifted shared 21-325 agreeing ones at 320 px evened, different close-ups
        at most 9, and different photos under one watermark up to 23, along its lettering, which `verify.decide`
        keeps to review (bench/README.md, "Since 2026-12-02 22:30: close-ups on plain skin")."""
        side = verify.WORK if self._smooth(a, b) else verify.COARSE
        fa, fb = (self.kept.get((i, side, "even"), lambda i=i: self._features((i, side), even=True)) for i in (a, b))
        if fa is None or fb is None:
            return v
        mirrored = None if dihedral is None else is_mirror(dihedral)
        flipped = cache(lambda: verify.mirrored(fa))  # the match and the laying share it
        g = verify.match(fa, flipped, fb, mirrored, True)
        again = verify.decide(g, corr, (len(fa.points), len(fb.points)))
        if again.decision == verify.DIFFERENT:
            return v
        if v.decision == verify.REVIEW and (again.decision != verify.SAME or g.inliers < verify.SAME_INLIERS):
            return v
        again = _laid(again, fa, flipped, fb, ask=not self._tiny(a, b))
        if v.decision == verify.REVIEW and again.decision != verify.SAME:  # one object only (`verify.one_object`)
            return v
        return replace(again, reason=f"{again.reason} (contrast evened)")

    def _detail_of_cut(self, a: int, b: int, v: verify.Verdict) -> tuple[int, tuple] | None:
        """(the picture to cut again, its new box as fractions of it) when `v` failed only because that
        picture's content box, cut into its photo, is a detail of the other (`verify.detail_region`); else None.
        Only a verdict of the look at `verify.WORK` px (`_full`) is taken: a coarse look's transform is in
        160 px coordinates, and asking for it would take full-size features the coarse look spared."""
        coarse = f"(at {verify.COARSE} px)" in v.reason
        if v.decision == verify.SAME or coarse or v.geometry.transform is None or not verify.detail_only(v.geometry):
            return None
        if a in self.panels or b in self.panels:  # a collage's box cut again loses its panels: never merged so
            return None
        fa, fb = self.feature((a, verify.WORK)), self.feature((b, verify.WORK))
        found = None if fa is None or fb is None else verify.detail_region(v.geometry, fa, fb)
        if found is None:
            return None
        small, lo, hi = found
        cut, f = (a, fa) if small else (b, fb)
        x0, y0, x1, y1 = self.box.get(cut, (0.0, 0.0, 1.0, 1.0))
        sx, sy = f.width / (x1 - x0), f.height / (y1 - y0)
        box = (x0 + lo[0] / sx, y0 + lo[1] / sy, x0 + hi[0] / sx, y0 + hi[1] / sy)
        return cut, tuple(min(1.0, max(0.0, float(c))) for c in box)

    def _recut(self, a: int, b: int, corr: float, v: verify.Verdict) -> verify.Verdict:
        """`v`, or the verdict of a look with the detail's box cut again around the other picture
        (`_detail_of_cut`) when that is a "same" whose agreement spans `verify.SAME_SHARE` of the new box
        (beyond the old one: the photo around the first box agrees too)."""
        found = self._detail_of_cut(a, b, v)
        if found is None:
            return v
        cut, box = found
        try:
            grey = self._grey(cut, box, verify.WORK)
        except Exception:  # an original unreadable since its features were taken: the first verdict stands
            return v
        self.recut_pairs += 1
        f = verify.features(grey, verify.WORK)
        fa, fb = (f, self.feature((b, verify.WORK))) if cut == a else (self.feature((a, verify.WORK)), f)
        flipped = cache(lambda: verify.mirrored(fa))
        g = verify.match(fa, flipped, fb, v.geometry.mirrored, True)
        again = verify.decide(g, corr, (len(fa.points), len(fb.points)))
        if again.decision != verify.SAME or g.spot is None:
            return v
        x0, y0, x1, y1 = g.spot  # in b's pixels
        if (x1 - x0) * (y1 - y0) < verify.SAME_SHARE * fb.width * fb.height:
            return v
        again = _laid(again, fa, flipped, fb, ask=not self._tiny(a, b))
        if again.decision != verify.SAME:
            return v
        # what the pictures show of each other is not known: the new box is not a whole picture's
        return replace(again, reason=f"{again.reason} (a content box cut into its photo, cut again)", shows=None)

    def evened(self, a: int, b: int, v: verify.Verdict) -> verify.Verdict:
        """`_evened` for a pair of a tentative group (`complete`, no hash correlation), in its own order."""
        self.evened_pairs += 1
        return self._evened(b, a, 0.0, None, v) if self.swapped(a, b) else self._evened(a, b, 0.0, None, v)

    def view(self, image_id: int, k: int) -> int:
        """Panel `k` of collage `image_id` as a picture of its own: an id (negative) whose content box is the
        panel, its thumbnail made as a picture's (`decode.grey_thumbnail`), for `collage`'s proposal and
        `_panel_for`."""
        view = -(image_id * PANELS_MAX + k + 1)
        if view not in self.views:  # two threads may both make it: the same values
            x0, y0, x1, y1 = box = self.panels[image_id][k]
            self.sha[view], self.box[view] = self.sha[image_id], box
            self.aspect[view] = self.aspect[image_id] * (x1 - x0) / max(y1 - y0, 1e-6)
            with suppress(Exception):  # unreadable now: no thumbnail, and no look at it (`_panel_for`)
                self.thumbs[view] = grey_thumbnail(self._grey(view, box, 2 * THUMB))
            self.views.add(view)
        return view

    def _panel_for(self, a: int, b: int, v: verify.Verdict) -> tuple[int, int, int] | None:
        """(view, picture, panel number) to look at when `v` is a "different" between a collage and a picture
        that is none: the collage's panel whose thumbnail is most alike the picture's, cut out (`view`), to be
        verified as a picture of its own. In the whole collage a panel is a quarter of the picture, and a
        smooth photo in it (a fundus rim, a grey sky, a star field) kept 0-9 agreeing keypoints: "different"
        (`bench/dedupe.py --collages`: 4 of 54 such pairs listed to review only so). None otherwise."""
        if v.decision != verify.DIFFERENT or (a in self.panels) == (b in self.panels):
            return None
        c, p = (a, b) if a in self.panels else (b, a)
        if self.thumbs.get(p) is None:
            return None
        views = [(k, self.view(c, k)) for k in range(len(self.panels[c]))]
        alike = [(self.correlation(view, p), k, view) for k, view in views if view in self.thumbs]
        if not alike:
            return None
        _, k, view = max(alike)  # one look a pair, not one a panel
        return view, p, k

    def _panel_seen(self, v: verify.Verdict, a: int, b: int, k: int, seen: verify.Verdict) -> verify.Verdict:
        """`v`, or "review" when the panel looked at (`_panel_for`) is the picture or holds it (`seen`)."""
        if seen.decision == verify.DIFFERENT:
            return v
        n = len(self.panels[a] if a in self.panels else self.panels[b])
        said = f"panel {k + 1} of {n}: {seen.reason.removeprefix('near the threshold: ')}"
        return verify.Verdict(verify.REVIEW, f"{verify.PANEL} ({said})", seen.geometry)

    def rank(self, image_id: int) -> tuple[str, int]:
        """Where a picture comes in the order no ingest changes: by digest (`swapped`, `load_codes`)."""
        return self.sha[image_id], image_id

    def swapped(self, a: int, b: int) -> bool:
        """Whether the pair is looked at as (b, a). Ratio matching runs from one picture's keypoints to the
        other's and RANSAC keeps what that finds, so a pair's verdict could depend on which picture was
        ingested first: the same 75 previews ingested in reverse order merged two different ones
        (`bench/dedupe.py --stamped`). Each pair is looked at in the order of its pictures' digests, which
        no ingest order changes (ids break a tie: a collage's panel carries its collage's digest)."""
        return self.rank(a) > self.rank(b)

    def check(self, a: int, b: int, corr: float, dihedral: int | None = None) -> verify.Verdict:
        """`dihedral`: the hash's orientation of a onto b (None: unknown, both tried); the verdict is the
        pair's in its own order (`swapped`): only what does not depend on it is to be read (the decision,
        the reason, the inliers, `in_place`)."""
        if self.swapped(a, b):
            return self.check(b, a, corr, dihedral)  # a mirror stays a mirror either way
        v = self._coarse(a, b, corr, dihedral)
        v = v or self._recut(a, b, corr, self._full(a, b, corr, dihedral))
        v = self._evened(a, b, corr, dihedral, v) if self._unsettled(a, b, v, False) else v
        if (panel := self._panel_for(a, b, v)) is not None:
            view, p, k = panel
            v = self._panel_seen(v, a, b, k, self.check(view, p, corr))
        return self._small(a, b, v)

    def _small(self, a: int, b: int, v: verify.Verdict) -> verify.Verdict:
        """A "different" for want of pixels is no evidence: a thumbnail-sized copy (content box under
        `cluster.SMALL` px, often heavily compressed) keeps too few true keypoints to confirm a
        full-sized edit of its photo (a caption, a sticker), so against a picture that is not small
        the pair is `untestable`: it neither joins nor blocks (`curate.dedupe.cluster`). Between
        two small pictures "different" stands."""
        if v.decision != verify.DIFFERENT or v.untestable or (a in self.small) == (b in self.small):
            return v
        return verify.Verdict(v.decision, f"{v.reason}; a picture under {SMALL} px", v.geometry, True)

    def check_many(
        self, jobs: list[tuple[int, int, float, int | None]], thorough: bool = False
    ) -> list[verify.Verdict]:
        """`check` for many (a, b, corr, dihedral), in parallel; features extracted only for the pairs
        the thumbnails leave undecided, at full size only for those the coarse look leaves undecided.
        `thorough` (the pairs inside a tentative group, `complete`): a "different" is not settled at the
        coarse size, where it blocks a join (a re-encode whose box cut into a smooth photo had 3 matches at
        160 px with a copy of it in a shared frame, and 12, "review", at 320), unless it is a detail's
        (`verify.detail`: 106 such pairs inside v6's groups, all "different" at 320 px too). Each pair is
        looked at in its own order (`swapped`), its verdict returned in the place of its job."""
        jobs = [(b, a, corr, d) if self.swapped(a, b) else (a, b, corr, d) for a, b, corr, d in jobs]
        undecided = [self._needs_features(a, b) for a, b, _, _ in jobs]
        self.sift_pairs += sum(undecided)
        # decoding, SIFT and matching release the GIL; BLAS's own threads (the descriptor products) would
        # fight the pool's: one thread each (measured: 2.3x the CPU time on the benchmark without this)
        self._count("verify", 0, len(jobs))
        verdicts: list[verify.Verdict | None] = [None] * len(jobs)
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(self.workers) as pool:
            # how many keypoints each picture has (`smooth`) is known before any pair is decided, as when
            # every picture's features were kept (the local proposal's descriptors tell it already)
            pictures = {i for (a, b, _, _), u in zip(jobs, undecided, strict=True) if u for i in (a, b)}
            self._extract(pool, [(i, verify.COARSE) for i in pictures if i not in self.keypoints])
            for batch in batches([job[:2] for job in jobs], undecided, self.room):
                self._check_batch(pool, jobs, batch, undecided, verdicts, thorough)
        panels = {k: found for k, (a, b, _, _) in enumerate(jobs) if (found := self._panel_for(a, b, verdicts[k]))}
        if panels:  # a collage's panel against the picture, as a picture of its own: a batch of its own
            seen = self.check_many([(view, p, jobs[k][2], None) for k, (view, p, _) in panels.items()], thorough)
            for (k, (_, _, n)), look in zip(panels.items(), seen, strict=True):
                verdicts[k] = self._panel_seen(verdicts[k], jobs[k][0], jobs[k][1], n, look)
        return [
            self._small(job[0], job[1], self._carried(job[0], job[1], v)) for job, v in zip(jobs, verdicts, strict=True)
        ]

    def _check_batch(
        self,
        pool: ThreadPoolExecutor,
        jobs: list[tuple],
        batch: list[int],
        undecided: list[bool],
        verdicts: list[verify.Verdict | None],
        thorough: bool,
    ) -> None:
        """`check_many`'s looks at the jobs numbered `batch`, their verdicts put in `verdicts` (in place)."""
        self._extract(pool, [(i, verify.COARSE) for k in batch if undecided[k] for i in jobs[k][:2]])
        for k, v in zip(batch, pool.map(lambda k: self._coarse(*jobs[k]), batch, chunksize=16), strict=True):
            if thorough and v is not None and v.decision == verify.DIFFERENT and not verify.detail(v.geometry):
                v = None
            verdicts[k] = v
            self._count("verify", v is not None)
        rest = [k for k in batch if verdicts[k] is None]
        self.full_pairs += len(rest)
        self._extract(pool, [(i, verify.WORK) for k in rest for i in jobs[k][:2]])
        for k, v in zip(rest, pool.map(lambda k: self._recut(*jobs[k][:3], self._full(*jobs[k])), rest), strict=True):
            verdicts[k] = v
            self._count("verify", 1)
        again = [k for k in batch if self._unsettled(jobs[k][0], jobs[k][1], verdicts[k], thorough)]
        self.evened_pairs += len(again)
        for k, v in zip(again, pool.map(lambda k: self._evened(*jobs[k], verdicts[k]), again), strict=True):
            verdicts[k] = v

    def marks(self, a: int, b: int) -> Pair | None:
        """A `MARKS` pair when local features at `verify.WORK` px lay one picture in place on the other on
        `verify.REVIEW_INLIERS` or more matches while the pixels are unlike (`STAMP_NCC`), whatever the
        rule says of them (`lone_stamps`), else None. At 160 px a stamp's lettering is blurred away: two
        previews under one tiled stamp shared 0-4 matches there and 20-50 here."""
        x, y = (b, a) if self.swapped(a, b) else (a, b)
        self.prepare((x, y), verify.WORK)
        look = self._look(x, y, verify.BOTH_CORR, None, verify.WORK)  # both orientations tried
        if look is None or look[0].transform is None or look[0].inliers < verify.REVIEW_INLIERS:
            return None
        g, fx, fy = look[0], self.feature((x, verify.WORK)), self.feature((y, verify.WORK))
        laid = verify.in_place_correlation(g, self._flipped(x, verify.WORK) if g.mirrored else fx, fy)
        if laid is None or laid >= STAMP_NCC:
            return None
        said = f"laid in place on {g.inliers} matching keypoints, the pixels unlike ({laid:.2f})"
        return Pair(a, b, MARKS, 0.0, None, g.inliers, said, laid)

    def _carried(self, a: int, b: int, v: verify.Verdict) -> verify.Verdict:
        """`v`, or "review" for a "different" whose thumbnails correlate enough for the shortcut but not with a
        quarter of them, or their light, left out (`overwhelming`): a site's banner or vignette on different
        photos, two smooth tiles of one photo's rim, or a sparse picture
        (a few stars on black) whose blurred, shrunk copy local features cannot match; the steward decides."""
        if v.decision != verify.DIFFERENT or not self._one_part(a, b):
            return v
        found, part = self.ncc[(a, b)], self.part[(a, b)]
        if found[0] < self._least(a, b):
            return v
        said = f"{found[1]} {found[0]:.3f}, {part:.3f} with a quarter of them or their light left out"
        return verify.Verdict(verify.REVIEW, f"near the threshold: {said}; local features: {v.reason}", v.geometry)


def _nbytes(f: verify.Features | None) -> int:
    """What one picture's features hold in memory (`Verifier.kept`)."""
    arrays = () if f is None else (f.points, f.desc, f.small)
    return 256 + sum(a.nbytes for a in arrays if a is not None)


def _laid(
    v: verify.Verdict,
    fa: verify.Features,
    flipped: Callable[[], verify.Features],
    fb: verify.Features,
    coarse: bool = False,
    ask: bool = True,
) -> verify.Verdict:
    """`v`, with the pixels' correlation when local features found one picture laid in place on the other
    (`verify.in_place_correlation`; `stamps` reads it), for a "same" or a "review"; `flipped`: `fa` mirrored.
    With `ask`, a "same" on one object only is a "review" (`verify.one_object`; `coarse`: the look at 160 px);
    a match inside one panel of a collage is a "review" whatever it was (`verify.paneled`)."""
    if v.geometry.transform is None or (v.decision == verify.DIFFERENT and not (fa.panels or fb.panels)):
        return v
    a = flipped() if v.geometry.mirrored else fa
    if v.decision == verify.DIFFERENT:  # a photo that is one panel of a collage: "review" (`verify.paneled`)
        return verify.paneled(v, a, fb)
    v = verify.objects(v, a, fb, coarse, ask)
    shown = verify.shows(v.geometry, a, fb) if v.decision == verify.SAME else None
    return replace(verify.paneled(v, a, fb), in_place=verify.in_place_correlation(v.geometry, a, fb), shows=shown)


def _laid_unlike(p: Pair) -> bool:
    """Laid in place by local features with its pixels unlike (`curate.imaging.STAMP_NCC`): a stamp's
    keypoints alone, or a copy under a sticker (`stamps`)."""
    return p.in_place is not None and p.in_place < STAMP_NCC


def _pair(v: verify.Verdict, a: int, b: int, corr: float, hamming: int | None, verifier: Verifier) -> Pair | None:
    """The pair to store for a verdict on (a, b), or None for "different". Where the verifier looked at (b, a)
    (`Verifier.swapped`), what each picture shows of the other is read the other way."""
    if v.decision == verify.DIFFERENT:
        return None
    kind = "hash" if v.decision == verify.SAME else "review"
    shown = (None, None) if v.shows is None else v.shows[::-1] if verifier.swapped(a, b) else v.shows
    return Pair(a, b, kind, round(corr, 4), hamming, v.geometry.inliers, v.reason[:200], v.in_place, *shown)


def _still_away(ws, image_ids: list[int]) -> set[int]:
    """Of pictures whose pairs a run judged without their originals, those whose originals are still missing or
    unreadable: not searched again (each run would judge them blind again, and say so), until they are back."""
    if not image_ids:
        return set()
    with ws.session() as s:
        rows = s.exec(select(Image.id, Image.sha256, Image.size_bytes).where(Image.id.in_(image_ids))).all()
    return {i for i, sha, size in rows if ws.store.fault(sha, size) is not None}


def propose_local(verifier: Verifier, ids: np.ndarray, new: set[int] | None, algo: str, report) -> list:
    """(a, b) of the pairs shared local features propose; each picture's strongest descriptors come
    from the catalogue, computed only for pictures without current ones (`curate.dedupe.answers`)."""
    answers = answering(verifier, ids.tolist(), algo, report)
    for i, d in answers.items():  # what SIFT found on this run is exact, a stored row holds up to local.TOP
        verifier.keypoints.setdefault(i, len(d))
    return [(a, b) for a, b, _ in local_pairs(answers, new, ids.tolist())]


def propose_whole(verifier: Verifier, ids: np.ndarray, new: set[int] | None, algo: str) -> list[tuple[int, int]]:
    """(a, b) of the pairs the whole pictures of one shape propose (`curate.dedupe.whole`)."""
    with verifier.ws.session() as s:
        rows = s.exec(
            select(DedupeCode.image_id, DedupeCode.whole).where(DedupeCode.algo == algo, DedupeCode.whole.is_not(None))
        ).all()
    wholes = {i: np.frombuffer(w, np.uint8).reshape(THUMB, THUMB) for i, w in rows if len(w) == THUMB * THUMB}
    found = whole_pairs(ids.tolist(), verifier.thumbs, wholes, verifier.aspect, verifier.box, new)
    return [(a, b) for a, b, _ in found]


def propose_panels(verifier: Verifier, ids: np.ndarray, new: set[int] | None) -> list[tuple[int, int]]:
    """(a, b) of the pairs a collage's panels propose (`curate.dedupe.collage`); each panel's thumbnail is
    decoded here (collages are few: `Verifier.view`)."""
    looks = {}
    for i, boxes in verifier.panels.items():
        views = [verifier.view(i, k) for k in range(len(boxes))]
        looks[i] = [verifier.thumbs[v] for v in views if v in verifier.thumbs]  # unreadable now: none
    return [(a, b) for a, b, _ in panel_pairs(ids.tolist(), verifier.thumbs, looks, new)]


def more_candidates(
    verifier: Verifier, ids: np.ndarray, jobs: list[tuple], new: set[int] | None, algo: str, report, local: bool = True
) -> tuple[list[tuple], int, int, int]:
    """The hash proposal's jobs with the other proposals' pairs appended (`with_local`): shared local features
    (the second, with `local`), then whole pictures of one shape whose boxes were cut apart (the third, at any
    size), then a collage's panels (the fourth); and how many pairs each added."""
    before = len(jobs)
    if local:
        jobs = with_local(jobs, propose_local(verifier, ids, new, algo, report), verifier)
    by_local, have = len(jobs) - before, {(a, b) for a, b, _, _ in jobs}
    whole = [p for p in propose_whole(verifier, ids, new, algo) if p not in have]
    have.update(whole)
    panels = [p for p in propose_panels(verifier, ids, new) if p not in have]
    return with_local(jobs, whole + panels, verifier), by_local, len(whole), len(panels)


def with_local(jobs: list[tuple], local: list[tuple[int, int]], verifier: Verifier) -> list[tuple]:
    """The hash proposal's jobs (a, b, corr, dihedral) and the local-feature proposal's pairs, as one
    list: a pair only local features proposed is appended (orientation unknown), and one both proposed
    is checked in both orientations: a hash's orientation of a copy turned by 30 degrees is a guess,
    and it alone made such copies "different" (`tests/test_dedupe_fill.py`)."""
    at = {(a, b): k for k, (a, b, _, _) in enumerate(jobs)}
    out = list(jobs)
    for a, b in local:
        if (a, b) in at:
            out[at[(a, b)]] = (*out[at[(a, b)]][:3], None)
        else:
            at[(a, b)] = len(out)
            out.append((a, b, max(0.0, verifier.correlation(a, b) or 0.0), None))
    return out


def complete(verifier: Verifier, pairs: dict[tuple[int, int], Pair], touched: set[int] | None = None) -> None:
    """Verify the missing pairs inside each tentative group (see module docstring); in place.

    Tentative groups are held together by `links`. `touched` (an incremental run): only groups holding one
    of these images. A group holding none has the links the last run stored for its members, so it is one of
    the last run's tentative groups, whose missing pairs that run verified: "same", "review" and "untested"
    ones were stored and are in `pairs` again, the absent ones were "different" and still block. `touched`
    must hold the new images and both ends of every link gained or lost since that run (`_changed`): a new
    image joining two old groups makes one group whose old-old pairs were never compared, and holds a new
    image."""
    joined = DisjointSet()
    for p in pairs.values():
        if links(p):
            joined.add(p.a)
            joined.add(p.b)
            joined.merge(p.a, p.b)
    jobs, group_of = [], []
    for members in joined.subsets():
        if 3 <= len(members) <= COMPLETE_MAX and (touched is None or not touched.isdisjoint(members)):
            todo = [(a, b, 0.0, None) for a, b in combinations(sorted(members), 2) if (a, b) not in pairs]
            jobs += todo
            group_of += [members] * len(todo)
    verdicts = verifier.check_many(jobs, thorough=True)
    different = []
    for (a, b, _, _), v, members in zip(jobs, verdicts, group_of, strict=False):
        p = _pair(v, a, b, 0.0, None, verifier)
        if p is None and v.untestable:  # no evidence either way: it neither joins nor blocks (`cluster`)
            p = Pair(a, b, UNTESTED, 0.0, None, v.geometry.inliers, v.reason[:200])
        if p is not None:
            pairs[(a, b)] = p
        else:
            different.append((a, b, v, members))
    shared = [
        (k, a, b) for k, (a, b, _, members) in enumerate(different) if _both_matched(verifier, pairs, members, a, b)
    ]
    evened = {k: verifier.evened(a, b, different[k][2]) for k, a, b in shared}  # on the pairs as they were verified
    for k, (a, b, v, members) in enumerate(different):  # every pair of the batch in: none hangs on the order verified
        if k in evened and evened[k].decision == verify.SAME:
            pairs[(a, b)] = _pair(evened[k], a, b, 0.0, None, verifier)
            continue
        why = _through_twin(verifier, pairs, members, a, b, v.geometry.inliers) or _parts_of_one(
            verifier, pairs, members, a, b, v.geometry
        )
        if why is not None:
            said = v.reason[: 200 - len(why) - 2]  # the explanation's part whole
            pairs[(a, b)] = Pair(a, b, UNTESTED, 0.0, None, v.geometry.inliers, f"{said}; {why}")


def _through_twin(
    verifier: Verifier, pairs: dict[tuple[int, int], Pair], members, a: int, b: int, agree: int
) -> str | None:
    """Why a "different" between `a` and `b` (`agree` keypoints agreeing) is no evidence, or None: one of them
    is its group's member `o` again, thumbnail for thumbnail (`Verifier.overwhelming`: a tone curve, a blur, a
    re-encode of one content box), the pair shares few keypoints (under
    `verify.REVIEW_INLIERS`), and local features found the other "same" as `o`, not laid in place on it with
    unlike pixels (a stamp's keypoints alone, `stamps`). A blurred, shrunk copy keeps 20-50 keypoints, too few to
    match a turned crop of its photo (3-7 agree) that the photo or a faded copy matches on 15-32: the blurred
    copy's "different" kept the crop out of their photo's cluster (`bench/dedupe.py --edits`, turn_crop). Not
    when they share more: a tile and the whole photo share 41, which is no lack of evidence but a detail
    (`tests/test_dedupe_pages.py`)."""
    if agree >= verify.REVIEW_INLIERS:
        return None
    for x, y in ((a, b), (b, a)):
        for o in sorted(members - {a, b}, key=verifier.rank):
            seen = pairs.get((min(o, y), max(o, y)))
            if _features_found(seen) and (twin := verifier.overwhelming(min(x, o), max(x, o))) is not None:
                return f"but its {twin[1]} {twin[0]:.3f} with image {o}, which local features match ({seen.inliers})"
    return None


def _parts_of_one(
    verifier: Verifier, pairs: dict[tuple[int, int], Pair], members, a: int, b: int, g: verify.Geometry
) -> str | None:
    """Why a "different" between `a` and `b` is no evidence, or None: it fails for the overlap (`verify.overlap_only`:
    as many keypoints agree as a review needs, spread as a "same" needs), and local features found both "same" as
    one member `o` of their group. Two crops of one photo's ends, each a copy of it, share a third of themselves;
    their pair's "different" kept one crop out of its photo's cluster in half the photos of `bench/dedupe.py
    --crops` (11-66 keypoints agreeing on the shared third; now 2 of 20 are out, one never proposed, one too
    smooth). Not without that third picture: different lesions beside one ruler laid elsewhere fail for the
    overlap too (`--rulers`: 43 such pairs with 20 or more agreeing), and so do a photo's two crops alone, which
    the leakage audit finds at export (`curate.export.leakage`)."""
    if not verify.overlap_only(g):
        return None
    o = _common(verifier, pairs, members, a, b)
    return None if o is None else f"but both are parts of image {o}, which local features match with each"


def _common(verifier: Verifier, pairs: dict[tuple[int, int], Pair], members, a: int, b: int) -> int | None:
    """The first member of the group (`Verifier.rank`) that local features found "same" as both `a` and `b`."""
    for o in sorted(members - {a, b}, key=verifier.rank):
        if _features_found(pairs.get((min(o, a), max(o, a)))) and _features_found(pairs.get((min(o, b), max(o, b)))):
            return o
    return None


def _both_matched(verifier: Verifier, pairs: dict[tuple[int, int], Pair], members, a: int, b: int) -> bool:
    """Whether a "different" between `a` and `b` inside their group gets a second look with contrast evened out
    (`Verifier.evened`) though a picture is `smooth`: local features found both "same" as one member. `check`
    does not even smooth pictures' "different"s (`Verifier._unsettled`), but two copies of a close-up on
    plain skin, each matched to their photo, can share only 7-9 agreeing keypoints as they are: a watermarked crop
    and a mirrored crop, a sticker's copy and a caption's, and that "different" kept one copy out of the photo's
    cluster (`bench/dedupe.py --photos`). Evened at `verify.WORK` px, such copies shared 137-150; different
    close-ups at most 9 (`_evened`). Only a "same" there replaces the "different": a "review" would put on the
    steward's list a pair that the rules after it may find to be no evidence either way. Only such pairs:
    evening every smooth "different" in a group cost 41 % more CPU for one copy more."""
    return (verifier.smooth(a) or verifier.smooth(b)) and _common(verifier, pairs, members, a, b) is not None


def _features_found(p: Pair | None) -> bool:
    """Whether `p` is "same" on local features, not merely on thumbnails, nor laid in place with its pixels
    unlike (a stamp's keypoints alone, `stamps`)."""
    return p is not None and p.kind == "hash" and bool(p.inliers) and not _laid_unlike(p)


def stamps(pairs: dict[tuple[int, int], Pair]) -> int:
    """Put to review (in `pairs`) the "same" pairs among three or more pictures that local features all lay
    in place on each other while their pixels do not correlate (`curate.imaging.STAMP_NCC`); returns how many
    pairs are under review for that.

    A stock site or an atlas stamps its watermark at one place on every preview: two different photos
    under it share dozens of keypoints, spread wide enough to pass every geometric rule, and no pixel
    measure of one pair tells them from a true copy under a sticker (`verify.in_place_correlation`).
    A true copy's in-place edits (a re-encode, a tone change, a bar) leave its pixels correlating with
    its other copies, so three pictures pairwise alike only in their marks are the stamp; a side of that
    triangle may be a `MARKS` pair, one `lone_stamps` found for a pair that had no third picture. Measured
    (bench/README.md, `--stamped`): 57 of the 61 stamped pairs that passed lie in such triangles; the
    first triangle of true copies on the v5 corpus (a sticker, a small JPEG and a perspective copy of one
    photo) comes at 0.72, hence `curate.imaging.STAMP_NCC` = 0.6. Re-run on stored pairs, so a pair put to
    review comes back to "same" when its triangle is gone (a picture removed), its reason cut to what fits
    beside `STAMPED` in 200 characters."""
    weak = {k for k, p in pairs.items() if _laid_unlike(p)}
    near = _neighbours(weak)
    moved = 0
    for a, b in weak:
        p = pairs[(a, b)]
        said = (p.reason or "").removeprefix(STAMPED)
        one_object = said.startswith(verify.ONE_OBJECT)  # a review already (`verify.one_object`), shown as a stamp
        if (p.kind == "hash" or (one_object and not stamped(p.kind, p.reason))) and near[a] & near[b]:
            pairs[(a, b)] = replace(p, kind="review", reason=(STAMPED + said)[:200])
        elif stamped(p.kind, p.reason) and not near[a] & near[b]:  # put to review by an earlier run's triangle
            pairs[(a, b)] = replace(p, kind="review" if one_object else "hash", reason=said)
        moved += stamped(pairs[(a, b)].kind, pairs[(a, b)].reason)
    return moved


def _neighbours(pairs) -> dict[int, set[int]]:
    """Each picture's partners in `pairs` (a, b)."""
    near: dict[int, set[int]] = defaultdict(set)
    for a, b in pairs:
        near[a].add(b)
        near[b].add(a)
    return near


def lone_stamps(verifier: Verifier, pairs: dict[tuple[int, int], Pair], candidates: list[tuple[int, int]]) -> int:
    """For each "same" pair laid in place with its pixels unlike and no third picture to make a stamp's
    triangle (`stamps`), look for one (`Verifier.marks`) among the pictures proposed with both, then among
    those proposed with either that are laid in place unlike with some picture already (a stamp's other
    previews), and keep the two sides found (`MARKS`, stored: they block as any "different" does, and a
    later run finds the triangle again without looking); in place in `pairs`, returns how many such pairs
    found one. Two previews under one stamp, whose photos have few keypoints of their own (a fundus photo,
    a star field), were "same" on the stamp alone while other previews were "different" at 160 px, where the
    stamp is blurred away; at 320 px 3 of them lie in place on both (`bench/dedupe.py --stamped`). Another
    such pair had 6 stamp-mates at 320 px, each proposed with one of the two only. On six corpora the 50 true
    pairs laid in place unlike (a sticker, a round crop on white) had no such third picture; looking at
    those proposed with either costs `--templates` 187 looks at 320 px instead of 31 (0.3 s more)."""
    proposed = _neighbours([*candidates, *pairs])
    near = _neighbours(key for key, p in pairs.items() if _laid_unlike(p))
    found = 0
    rank = verifier.rank  # the pictures' own order, not the ingest's: the first third found is kept
    for (a, b), p in sorted(pairs.items(), key=lambda item: sorted(map(rank, item[0]))):
        if p.kind != "hash" or not _laid_unlike(p) or near[a] & near[b]:
            continue
        both = sorted((proposed[a] & proposed[b]) - {a, b}, key=rank)
        for c in both + sorted((c for c in (proposed[a] | proposed[b]) - {a, b, *both} if near[c]), key=rank):
            sides = [(min(x, c), max(x, c)) for x in (a, b)]
            if any(k in pairs and k[0] not in near[k[1]] for k in sides):
                continue  # stored already, and not in place with unlike pixels: no stamp's side
            marks = []
            for k in sides:  # the second side is looked at only when the first is a stamp's
                marks.append(pairs[k] if k in pairs else verifier.marks(*k))
                if marks[-1] is None:
                    break
            if len(marks) == 2 and None not in marks:
                for k, m in zip(sides, marks, strict=True):
                    pairs.setdefault(k, m)
                    near[k[0]].add(k[1])
                    near[k[1]].add(k[0])
                found += 1
                break
    return found


def links(p: Pair) -> bool:
    """Whether a pair links its two pictures into a tentative group (`complete`): an edge, or a "same" the
    pixels away from its one object put to review (`verify.pixels_said`). The last run's links, this run's and
    the groups completed are all counted so (`_changed`, `find_pairs`), or an incremental run would complete a
    group a full run leaves alone."""
    return p.kind not in NOT_EDGES or (p.kind == "review" and verify.pixels_said(p.reason))


def _changed(before: set[tuple[int, int]], pairs: dict[tuple[int, int], Pair]) -> set[int]:
    """Both ends of every link in `pairs` not among `before` (the last run's links), and of every one gone."""
    now = {key for key, p in pairs.items() if links(p)}
    return {i for key in now ^ before for i in key}


def find_pairs(ws, options, algo: str, report, on_progress=None) -> list[Pair]:
    """Every pair worth storing (see module docstring); one per image pair, strongest kind first
    (`on_progress`: `Verifier`'s)."""
    if options.method == "phash":
        method = METHODS["phash"](radius=options.radius, backend=options.backend)
    else:
        method = RegionPHash(neighbours=options.neighbours, similarity=options.similarity)
    with ws.session() as s:
        ids, codes, thumbs, searched = load_codes(s, algo)
        digests = s.exec(select(Image.id, Image.pixel_sha256).where(Image.pixel_sha256.is_not(None))).all()
        columns = (DedupePair.image_a, DedupePair.image_b, DedupePair.kind, DedupePair.similarity, DedupePair.hamming)
        old = [  # plain rows, not ORM objects (bench/README.md, "A steward's decision on a big catalogue")
            Pair(*row)
            for row in s.exec(
                select(*columns, *SAID).where(DedupePair.kind.in_(("hash", "cnn", "review", UNTESTED, MARKS)))
            ).all()
        ]
        edges_before = {
            (a, b)
            for a, b in s.exec(select(DedupePair.image_a, DedupePair.image_b).where(DedupePair.kind.not_in(NOT_EDGES)))
        } | {(p.a, p.b) for p in old if links(p)}
    # a picture whose pairs a run judged without its original (`UNREAD`) is searched again once it is back
    waiting = UNREAD + options.settings
    away = _still_away(ws, [int(i) for i, w in zip(ids, searched, strict=True) if w == waiting])
    new = np.array(
        [w != options.settings and not (w == waiting and int(i) in away) for i, w in zip(ids, searched, strict=True)],
        dtype=bool,
    )
    found: list[Pair] = []
    by_digest: dict[str, list[int]] = defaultdict(list)  # same decoded pixels
    for i, dg in digests:
        by_digest[dg].append(i)
    for group in by_digest.values():
        group.sort()
        found.extend(Pair(group[0], other, "pixel") for other in group[1:])
    incremental = 0 < new.sum() < len(new) or (len(new) and not new.any())
    report.searched = "incremental" if incremental else "all"
    if incremental:
        known = set(ids[~new].tolist())
        found.extend(p for p in old if p.a in known and p.b in known)
        matches = method.find_duplicates(codes, thumbs, new=new) if new.any() else []
    else:
        found.extend(p for p in old if p.kind == "cnn")
        matches = method.find_duplicates(codes, thumbs)
    started, cpu = time.perf_counter(), time.process_time()  # CPU: this process's threads (benchmark under load)
    stored = StoredFeatures(ws.root, algo)
    verifier = Verifier(ws, options.workers, dict(zip(ids.tolist(), thumbs, strict=False)), on_progress, stored)
    # the dihedral turns row m.a onto row m.b; only whether it mirrors is read, the same either way
    jobs = [
        (
            *sorted((int(ids[m.a]), int(ids[m.b]))),
            m.similarity,
            m.dihedral if options.method == "region-phash" else None,
        )
        for m in matches
    ]
    hammings = [m.hamming for m in matches]
    fresh = None if not incremental else set(ids[new].tolist())
    proposing = options.method == "region-phash" and (not incremental or new.any())
    if len(ids) > LOCAL_MAX:
        report.notes.append(
            f"{len(ids):,} pictures: more than the {LOCAL_MAX:,} the local-feature proposal handles; copies whose "
            "low frequencies an edit changed (watermark + crop, frame + rescale) are proposed by the hashes alone"
        )
    if proposing:
        jobs, report.local_candidates, report.whole_candidates, report.panel_candidates = more_candidates(
            verifier, ids, jobs, fresh, algo, report, local=len(ids) <= LOCAL_MAX
        )
    report.collages = len(verifier.panels)
    if report.collages:
        report.notes.append(
            f"{report.collages} pictures are collages of several photos side by side: a label would cover every "
            "photo in one; a photo one of them holds is listed to review with it, never merged"
        )
    hammings += [None] * (len(jobs) - len(hammings))
    for (a, b, corr, _), hamming, v in zip(jobs, hammings, verifier.check_many(jobs), strict=True):
        p = _pair(v, a, b, corr, hamming, verifier)
        if p is not None:
            found.append(p)
    verifying, verifying_cpu = time.perf_counter() - started, time.process_time() - cpu
    if options.cnn:
        from curate.dedupe.cnn import cnn_pairs

        cnn_edges, note = cnn_pairs(ws, options.cnn_similarity, {(p.a, p.b) for p in found})
        if note:
            report.notes.append(note)
        found = [p for p in found if p.kind != "cnn"] + [Pair(e.a, e.b, "cnn", e.similarity) for e in cnn_edges]
    best: dict[tuple[int, int], Pair] = {}
    for p in sorted(found, key=lambda p: (KIND_RANK.get(p.kind, 9), -p.similarity)):
        best.setdefault((p.a, p.b), p)
    started, cpu = time.perf_counter(), time.process_time()
    complete(verifier, best, set(ids[new].tolist()) | _changed(edges_before, best) if incremental else None)
    # the pairs `complete` verified are the third sides of most stamps' triangles; the groups the stamp rule
    # changed (a site's previews held together, over `COMPLETE_MAX` not verified at all, now apart) are
    # completed again, and looked at once more
    edges = {key for key, p in best.items() if links(p)}
    lone_stamps(verifier, best, [(a, b) for a, b, _, _ in jobs])
    held = stamps(best)
    if moved := _changed(edges, best):
        complete(verifier, best, moved)
        held = stamps(best)
    if held:
        report.notes.append(
            f"{held} pairs matched only on marks in the same place on 3 or more pictures whose pixels differ "
            "(a site's watermark?): not merged; the review sheet shows each such group once"
        )
    report.notes += [
        f"image {i}: {why}; its pairs were judged without its pixels, and are judged again once it is back"
        for i, why in sorted(verifier.unread.items())
    ]
    # a collage's panel (a negative id, `Verifier.view`) is read from its collage's original
    report.unread = sorted({i if i > 0 else (-i - 1) // PANELS_MAX for i in verifier.unread} | away)
    report.seconds["verify"] = verifying + time.perf_counter() - started
    report.seconds["verify_cpu"] = verifying_cpu + time.process_time() - cpu
    report.sift_pairs = verifier.sift_pairs
    report.decoded, report.decodes_reused = verifier.decodes.misses, verifier.decodes.hits
    report.features_taken = sum(verifier.taken.values())
    report.features_read = stored.read
    stored.close()
    report.notes += stored.notes()
    report.full_sift_pairs = verifier.full_pairs
    report.evened_pairs = verifier.evened_pairs
    report.recut_pairs = verifier.recut_pairs
    return list(best.values())
