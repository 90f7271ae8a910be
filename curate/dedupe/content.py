"""The content box: the part of a picture inside its borders, frames and padding.

A re-posted photo often gains a frame (white, grey, black, tinted, several
nested) or padding to a wider aspect ratio. Hashes and local features are
taken inside this box, so a frame can neither hide a copy nor make two
different photos look alike.

Why hand-written: OpenCV and scikit-image offer thresholding and contours, but
no "strip uniform bands of any colour from each side" that tolerates JPEG
ringing; the rule below is a few numpy lines. A line (row or column) is part
of a border when at least `UNIFORM_SHARE` of its pixels lie within `TOL` grey
levels (per channel) of the border's colour and its median deviation is at most
`MEAN_DEV` (median): JPEG noise on a flat frame stays well inside both, skin texture
does not. Bands are peeled side by side until stable, then once more inside
(a frame within a frame), up to `LEVELS` times; a level that only went into the
picture's own plain coloured background (`_background`) is not taken. Where no band
is left, a photo shown inside a chat's screenshot or on a photographed page is looked
for (`curate.dedupe.inset`), up to `INSETS` times, and its own bands peeled.

Lettering. A caption strip, a social-media handle bar or a web page's header and
footer are bands too, with rows of text on them, and left in the box they make
different photos on one page look alike (their thumbnails correlated 0.95-0.99,
and local features matched the page's text). A top or bottom band therefore also
takes rows of lettering (`_run_from`) when a uniform line closes them and they look
like text, not like the picture: at least `TEXT_SHARE` of the row in the band's
colour, the rest in `TEXT_WORDS` or more strokes none longer than `TEXT_GAP` of the
row (a lesion's edge is one stretch), `TEXT_ROWS` to `TEXT_RUN` of the side high,
standing out by `TEXT_CONTRAST` grey levels somewhere (the moon's craters and skin
pores do not), and one row with `TEXT_STROKES` strokes at least `TEXT_INK` ink between
its first and last (`_lettered`: a star field's dots are spread over the row). Rows
under `TEXT_WIDTH` px and columns never take lettering: a thumbnail's text is a few
blurred dots, and a column through a small photo on a page is mostly page. Measured
on the corpora's 177 photos, tiles, close-ups and skin photos, each as stored, halved
and mirrored: the rule changes the box of 3 of those 531 pictures, by 1-2 rows
(`tests/test_dedupe_pages.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curate.dedupe.inset import SIDE as INSET_SIDE
from curate.dedupe.inset import inset

TOL = 20  # grey levels per channel a border pixel may differ from the border colour
UNIFORM_SHARE = 0.97  # share of a line's pixels that must be within TOL
TEXT_SHARE = 0.3  # a line of lettering on a band: this share of its pixels within TOL (`_run_from`)
TEXT_RUN = 0.10  # the tallest row of lettering, as a share of the side (`_run_from`)
TEXT_GAP = 0.4  # the longest stretch of a line of lettering off the band's colour, as a share of the line
TEXT_CONTRAST = 100  # grey levels lettering stands out from its band by, somewhere in its row
TEXT_ROWS = 2  # a line of lettering is at least this many lines high (a dot: one)
TEXT_STROKES = 5  # and at least one of its lines crosses this many strokes
TEXT_INK = 0.2  # and is this share ink between its first and last stroke (a star field is far sparser)
TEXT_WIDTH = 96  # px: rows shorter than this take no lettering (a thumbnail's text is a few blurred dots)
TEXT_WORDS = 2  # stretches off the band's colour a line of lettering has at least (a lesion's edge: one)
SCREEN_TALL = 1.6  # a picture this many times as tall as wide may be a phone's screen (19.5:9 is 2.17, 16:9 1.78)
MARKS_SHARE = 0.6  # each row of a screen's bar (`_screen_marks`) this much the band's colour (home indicator: 66 %)
MARKS_EDGE = 0.12  # a screen's marks (`_screen_marks`) end within this share of the side from its edge
MARKS_MARGIN = 0.1  # and the band goes on plain after them for this share of the side (a screen's margin)
MEAN_DEV = 3.0  # median absolute deviation (grey levels) a border line may have: flat frames stay near 1 after JPEG
CLOSE_DEV = 8.0  # and a line between two lines of lettering on a band, where JPEG rings (`_closing`)
MIN_SIDE = 24  # pictures smaller than this are used whole (too small to search for a frame)
MIN_CONTENT = 0.08  # a box narrower than this share of a side means the frame covers everything
FLAT_STD = 2.5  # a whole picture with less spread than this is a single colour
LEVELS = 3
INSETS = 2  # a photo inside a screen or on a page (`curate.dedupe.inset`), then looked for again inside it
BACKGROUND_SHARE = 0.5  # a cut side whose first inside line is this much the band's colour: no edge there
CHROMA = 24  # grey levels between a band colour's channels from which it is a colour (skin), not a grey
SEARCH_SIDE = 160  # the box is searched on a picture subsampled to about this side (rows kept at TEXT_WIDTH px)
SKIP = 2  # seam lines allowed between two bands
SEAM = 4  # lines inside a cut that `_background` looks at: a frame's seam may be left uncut before it


@dataclass(frozen=True)
class ContentBox:
    """Pixel box (x0, y0, x1, y1) of the content; `note` says why the whole picture was used."""

    x0: int
    y0: int
    x1: int
    y1: int
    width: int  # of the picture the box was found in
    height: int
    note: str | None = None  # None when the box was found normally
    flat: bool = False  # single colour: nothing to compare

    @property
    def cut(self) -> bool:
        return (self.x0, self.y0, self.x1, self.y1) != (0, 0, self.width, self.height)

    def fractions(self) -> tuple[float, float, float, float]:
        return (self.x0 / self.width, self.y0 / self.height, self.x1 / self.width, self.y1 / self.height)

    def as_text(self) -> str:
        return ",".join(f"{v:.4f}" for v in self.fractions())


def _middle(length: int) -> list[int]:
    """The order statistics np.median averages (the same one twice for an odd length)."""
    return [(length - 1) // 2, length // 2]


def _colours(lines: np.ndarray) -> np.ndarray:
    """(channels, n, 1) colour of each line of `lines` (channels, n, length): its per-channel median."""
    mid = _middle(lines.shape[2])
    part = np.partition(lines, mid, axis=2)
    return ((part[..., mid[0]].astype(np.float64) + part[..., mid[1]]) / 2)[..., None]


def _within(lines: np.ndarray, colours: np.ndarray, share_needed: float = UNIFORM_SHARE) -> np.ndarray:
    """(n,) whether each line of `lines` (channels, n, length) is within the rule of its colour
    (`colours`: (channels, n or 1, 1)); `share_needed`: `TEXT_SHARE` for a line of lettering.
    Lines are planes of one channel, not pixels of 3 values: numpy is slow along an axis of 3,
    and the arrays are so small that numpy calls are the cost."""
    dev = lines - colours
    dev = np.abs(dev, out=dev).max(axis=0)  # (n, length): each pixel's largest channel deviation
    share = (dev <= TOL).sum(axis=1) / dev.shape[1]
    if share_needed < UNIFORM_SHARE:  # lettering: anti-aliasing and JPEG ringing spread along the line,
        runs, longest = _runs(dev > TOL)  # but in strokes and words, not one stretch (a lesion's edge)
        text = (share >= share_needed) & (runs >= TEXT_WORDS) & (longest <= TEXT_GAP * dev.shape[1])
        return text | (share >= UNIFORM_SHARE)  # or a uniform line, or a blended seam (no median rule)
    mid = _middle(dev.shape[1])
    dev.partition(mid, axis=1)  # in place: the share is counted
    return (share >= UNIFORM_SHARE) & (dev[:, mid[0]] + dev[:, mid[1]] <= 2 * MEAN_DEV)  # twice the median


def _runs(off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) how many runs of True each row of `off` (n, length) holds, and the longest."""
    edge = np.zeros((off.shape[0], 1), np.int8)
    step = np.diff(np.concatenate([edge, off.view(np.int8), edge], axis=1), axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # row-major: each row's runs in order, ends paired with starts
    longest = np.zeros(off.shape[0], np.int64)
    np.maximum.at(longest, rows, ends - starts)
    return np.bincount(rows, minlength=off.shape[0]), longest


def _lettered(ink: np.ndarray) -> bool:
    """Whether some row of `ink` (rows, length; True off the band's colour) reads as a line of text:
    `TEXT_STROKES` strokes or more, at least `TEXT_INK` ink between its first and last stroke (a
    caption's words are dense where they are; a star field's dots are spread over the whole row)."""
    runs, _ = _runs(ink)
    cols = np.arange(ink.shape[1])
    first = np.where(ink, cols, ink.shape[1]).min(axis=1)
    last = np.where(ink, cols, -1).max(axis=1)
    density = ink.sum(axis=1) / np.maximum(last - first + 1, 1)
    return bool(((runs >= TEXT_STROKES) & (density >= TEXT_INK)).any())


def _plain_run(lines: np.ndarray, colour: np.ndarray, share_needed: float, first: int = 1, block: int = 16) -> int:
    """How many leading lines of `lines` are within the rule of `colour` (channels, 1, 1), counting
    from line `first` (the lines before it are known to be); a block of lines at a time."""
    for start in range(first, lines.shape[1], block):
        bad = np.flatnonzero(~_within(lines[:, start : start + block], colour, share_needed))
        if bad.size:
            return start + int(bad[0])
    return lines.shape[1]


def _closing(lines: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(n,) whether each line of `lines` (channels, n, length) closes a line of lettering on a band of
    `colour`: `UNIFORM_SHARE` of it within `TOL`, its median deviation at most `CLOSE_DEV`, no pixel of a
    stroke (`TEXT_CONTRAST`: a letter's tip or tail is in a line that passes the rest). Between two
    lines of text JPEG rings: on a red news banner decoded at half scale (as dedupe decodes), the rows
    between its two lines deviate 4-6 levels at the median, over `MEAN_DEV`, and the banner stayed in the
    box (different photos under it were merged on it). A band's own lines (`_within`) keep the strict
    rule: that is what tells a flat frame from smooth skin."""
    dev = lines - colour
    dev = np.abs(dev, out=dev).max(axis=0)
    plain = (dev <= TOL).mean(axis=1) >= UNIFORM_SHARE
    return plain & (np.median(dev, axis=1) <= CLOSE_DEV) & (dev.max(axis=1) < TEXT_CONTRAST)  # no stroke in it


def _run_from(lines: np.ndarray, colour: np.ndarray, lettering: bool = False, screen: bool = False) -> int:
    """How many leading lines of `lines` form a band of `colour` (channels, 1, 1), the colour of the
    first line, which is known to be within it: uniform lines, and rows of lettering on the band
    (`TEXT_SHARE`; each row of it at most `TEXT_RUN` of the side) that a uniform line closes, as in
    a caption strip or a web page's header and footer (`lettering`: rows only; a column through a
    smooth photo can be half background). A lesion on plain skin is a taller run than a line of
    text; lettering that runs into the photo stays in the box. `screen`: a side of the whole picture, where a
    screen's bar is taken too (`_screen_marks`)."""
    n = lines.shape[1]
    tallest = max(2, int(TEXT_RUN * n))
    end = _plain_run(lines, colour, UNIFORM_SHARE)
    while lettering and end < n and lines.shape[2] >= TEXT_WIDTH:
        after, go_on = _lettering(lines, colour, end, tallest)
        if not go_on and screen and (marks := _screen_marks(lines, colour, end)):
            after, go_on = end + marks, True  # no lettering there, but a screen's bar
        end = after
        if not go_on:
            break
        end += _plain_run(lines[:, end:], colour, UNIFORM_SHARE, first=0)
    return end


def _lettering(lines: np.ndarray, colour: np.ndarray, end: int, tallest: int) -> tuple[int, bool]:
    """Where a band of `colour` ends once the lines of lettering from line `end` (at most `tallest` high) and
    the band's lines after them are taken (`_run_from`), and whether any were: (end, False) where no lettering
    starts, but for the band's last lines blended into the next band (a header into the page)."""
    stretch = _plain_run(lines[:, end : end + tallest + 1], colour, TEXT_SHARE, first=0)
    block = lines[:, end : end + stretch]
    closed = np.flatnonzero(_within(block, colour))
    ink = np.flatnonzero(np.abs(block - colour).max(axis=(0, 2)) >= TEXT_CONTRAST)
    if ink.size:  # after the first ink, a line JPEG's ringing left noisy closes it too (`_closing`)
        closed = np.union1d(closed, np.flatnonzero(_closing(block[:, ink[0] :], colour)) + ink[0])
    if not closed.size:
        return (end + stretch if stretch <= SKIP else end), False
    dev = np.abs(lines[:, end : end + int(closed[0])] - colour).max(axis=0)  # (lines, length)
    if dev.max() < TEXT_CONTRAST:
        return end, False  # faint marks (craters on the moon, pores): the picture, not lettering on a band
    if len(dev) < TEXT_ROWS or not _lettered(dev > TOL):
        return end, False  # dots (stars, pustules on smooth skin): too low, too few or too sparse for lettering
    end += int(closed[0])
    rest = lines[:, end : end + tallest + 1]  # and the band's lines after it, JPEG's ringing in them or not
    band = _within(rest, colour) | _closing(rest, colour)
    return end + (int(band.argmin()) if not band.all() else len(band)), True


def _screen_marks(lines: np.ndarray, colour: np.ndarray, start: int) -> int:
    """How many rows from row `start` of a band of `colour` are a screen's bar, not the picture (0: none): a
    phone's status bar (the time at one end, the battery at the other) or its row of icons, too sparse to read
    as lettering (`_lettered`). Its rows are at least `MARKS_SHARE` the band's colour, off it in no stretch
    longer than `TEXT_GAP` of the row, and the bar ends at the last with a stroke (`TEXT_CONTRAST`), within
    `MARKS_EDGE` of the side from the picture's edge (a home indicator and the toolbar above it are one bar),
    with `TEXT_WORDS` or more marks side by side in one of its rows (a lone star is no bar). The band is
    neutral (black, white or grey: a screen, not skin, `CHROMA`) and starts at the edge of a picture at least
    `SCREEN_TALL` times as tall as wide (`_run_from`'s `screen`: a phone held upright, not a frame's inside),
    and it goes on plain after the bar (but for `SKIP` lines JPEG's ringing or a resize left noisy) for
    `MARKS_MARGIN` of the side: a screen's empty margin around a photo fitted to its width. A square tile of a
    star field darkened by a tone curve (two stars side by side near its top, dark sky below) had its box moved
    by the rule until the shape and the margin were asked. Left in the box, the screen's margins made different
    smooth close-ups shown in one phone's photo viewer correlate 0.96-0.999 as thumbnails, and they were merged
    (`bench/dedupe.py --screens`: 52 false pairs of 140 files; none now). The corpora's photos, as they are and
    cropped tall, keep their boxes (`tests/test_dedupe_pages.py`)."""
    shade = colour[:3]  # an alpha plane is no colour
    if int(shade.max()) - int(shade.min()) >= CHROMA:
        return 0
    edge = int(MARKS_EDGE * lines.shape[1])
    dev = np.abs(lines[:, start : max(start + 1, edge + 1)] - colour).max(axis=0)  # (rows, length)
    off = dev > TOL
    _, longest = _runs(off)
    sparse = ((~off).mean(axis=1) >= MARKS_SHARE) & (longest <= TEXT_GAP * off.shape[1])
    rows = int(sparse.argmin()) if not sparse.all() else len(sparse)
    ink = np.flatnonzero(dev[:rows].max(axis=1, initial=0) >= TEXT_CONTRAST)
    if not ink.size or _runs(off[: ink[-1] + 1])[0].max() < TEXT_WORDS:
        return 0  # nothing, or one mark alone (a star): a bar has two or more side by side
    height = int(ink[-1]) + 1
    if start + height > edge:
        return 0
    rest = lines[:, start + height :]  # its first `SKIP` lines may be what JPEG's ringing or a resize left noisy
    clear = max(k + _plain_run(rest[:, k:], colour, UNIFORM_SHARE, first=0) for k in range(SKIP + 1))
    return height if clear >= MARKS_MARGIN * lines.shape[1] else 0


def _uniform_run(lines: np.ndarray, lettering: bool = False, screen: bool = False) -> int:
    """How many leading lines of `lines` (channels, n, length) form a uniform band.

    Up to `SKIP` leading lines may be the blurred seam between two bands (JPEG
    ringing or resampling where a frame meets the next band; uniform or not), if at
    least 3 uniform lines follow.
    A band starts with a line within the rule of its own colour; the first `SKIP` + 1
    lines are tested so at once (on most sides none is, and that is the answer).
    """
    if lines.shape[1] == 0 or lines.shape[2] == 0:
        return 0
    colours = _colours(lines[:, : SKIP + 1])
    starts = _within(lines[:, : SKIP + 1], colours)
    own = _run_from(lines, colours[:, :1], lettering, screen) if starts[0] else 0
    if own > SKIP:
        return own
    # a line or two of its own colour is the seam itself (a header's last row blended into the page)
    for skip in range(1, SKIP + 1):
        start = lines.shape[1] > skip + 3 and starts[skip]  # a line of its own colour, 3 more after it
        if start and (run := _run_from(lines[:, skip:], colours[:, skip : skip + 1], lettering, screen)) >= 3:
            return skip + run
    return own


def _peel(
    rows: np.ndarray, cols: np.ndarray, y0: int, y1: int, x0: int, x1: int, tall: bool = False
) -> tuple[int, int, int, int]:
    """One level: (top, bottom, left, right) widths of the uniform bands of the box (x0, y0, x1, y1)
    of the picture whose (channels, h, w) planes are `rows` and (channels, w, h) planes `cols`; `tall`: the
    picture is `SCREEN_TALL` times as tall as wide or more."""
    h, w = y1 - y0, x1 - x0
    screen = tall and (y0, y1, x0, x1) == (0, rows.shape[1], 0, rows.shape[2])  # a phone's whole screen
    t = b = lf = r = 0
    for _ in range(4):  # each side is measured inside the others; stops when nothing changes
        nt = _uniform_run(rows[:, y0 : y1 - b, x0 + lf : x1 - r], lettering=True, screen=screen)
        nb = _uniform_run(rows[:, y0 + t : y1, x0 + lf : x1 - r][:, ::-1], lettering=True, screen=screen)
        nl = _uniform_run(cols[:, x0 : x1 - r, y0 + nt : y1 - nb])
        nr = _uniform_run(cols[:, x0 + lf : x1, y0 + nt : y1 - nb][:, ::-1])
        # a band found in a wider window stays a band: a row of lettering measured only where the
        # text is dense can fail `TEXT_SHARE`, and the sides would take turns forever
        nt, nb, nl, nr = max(nt, t), max(nb, b), max(nl, lf), max(nr, r)
        if (nt, nb, nl, nr) == (t, b, lf, r):
            break
        t, b, lf, r = nt, nb, nl, nr
        if t + b >= h or lf + r >= w:
            break
    return t, b, lf, r


def _background(rows: np.ndarray, cols: np.ndarray, outer: tuple, inner: tuple) -> bool:
    """Whether a level of peeling went into the picture's own plain, coloured background (skin around one
    lesion) rather than a frame: on every side it cut, the line `SEAM` lines inside is still at least
    `BACKGROUND_SHARE` the band's colour (a photo inside a frame starts at a straight edge), and that colour is
    not black, white or grey (`CHROMA`; a fundus's or the sky's black surround stays cut). Cut there, two
    different smooth close-ups became two centred blobs, and their thumbnails correlated 0.98. `SEAM` lines
    in, not the first: a coloured frame's last lines, where JPEG bleeds the photo's colour into it at half
    scale, fail the band's rule, so the cut stops up to 4 lines short of the photo, and the frame's own
    colour inside made a cream frame around a skin close-up pass for its background (the frame was kept)."""
    x0, y0, x1, y1 = outer
    nx0, ny0, nx1, ny1 = inner
    dy, dx = min(SEAM, (ny1 - ny0 - 1) // 2), min(SEAM, (nx1 - nx0 - 1) // 2)
    sides = []
    if ny0 > y0:
        sides.append((rows[:, ny0 + dy, nx0:nx1], rows[:, ny0 - 1, nx0:nx1]))
    if ny1 < y1:
        sides.append((rows[:, ny1 - 1 - dy, nx0:nx1], rows[:, ny1, nx0:nx1]))
    if nx0 > x0:
        sides.append((cols[:, nx0 + dx, ny0:ny1], cols[:, nx0 - 1, ny0:ny1]))
    if nx1 < x1:
        sides.append((cols[:, nx1 - 1 - dx, ny0:ny1], cols[:, nx1, ny0:ny1]))
    if not sides or rows.shape[0] < 3:
        return False
    for inside, outside in sides:
        colour = np.median(outside, axis=1).astype(np.int16)[:, None]
        if int(colour.max()) - int(colour.min()) < CHROMA:
            return False  # a neutral band: a frame, padding, or a black surround
        dev = np.abs(inside.astype(np.int16) - colour).max(axis=0)
        if (dev <= TOL).mean() < BACKGROUND_SHARE:
            return False  # the picture starts here
    return True


def _inset_of(full: np.ndarray, step: int, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """`curate.dedupe.inset.inset` of the box (x0, y0, x1, y1) of the picture subsampled by `step`, searched on
    the picture `full` as decoded (every k-th pixel of a large one: the search shrinks it to `inset.SIDE` px
    anyway, and a 12 MP PNG took four times as long), in the subsampled picture's pixels, the lines inside the
    inset only; None for odd input (not 8-bit)."""
    x0, y0, x1, y1 = box
    if full.dtype != np.uint8 or full.shape[2] not in (1, 3, 4):
        return None
    crop = full[y0 * step : y1 * step, x0 * step : x1 * step]  # `inset` takes the first three channels
    k = max(1, max(crop.shape[:2]) // (2 * INSET_SIDE))
    found = inset(np.ascontiguousarray(crop[::k, ::k]))
    if found is None:
        return None
    fx0, fy0, fx1, fy1 = (v * k for v in found)
    sx0, sy0 = x0 - (-fx0 // step), y0 - (-fy0 // step)  # the first line at or after the inset's edge
    sx1, sy1 = min(x1, x0 - (-fx1 // step)), min(y1, y0 - (-fy1 // step))
    return (sx0, sy0, sx1, sy1) if sx1 > sx0 and sy1 > sy0 else None


def content_box(rgb: np.ndarray) -> ContentBox:
    """The content box of an (h, w, 3) uint8 picture; never raises on odd input."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[:2]
    whole = dict(x0=0, y0=0, x1=w, y1=h, width=w, height=h)
    if h == 0 or w == 0:
        return ContentBox(**whole, note="empty picture", flat=True)
    if a.dtype == np.uint8 and a.shape[2] <= 4:  # per channel, as np.std, at a fifth of its cost
        spread = float(cv2.meanStdDev(np.ascontiguousarray(a))[1].max())
    else:
        spread = float(a.reshape(-1, a.shape[2]).std(axis=0).max())
    if spread < FLAT_STD:
        return ContentBox(**whole, note="single colour: nothing to compare", flat=True)
    if min(h, w) < MIN_SIDE:
        return ContentBox(**whole, note=f"{w}x{h} px is too small to search for a frame; whole picture used")
    # searched on every step-th pixel: frames are wide, time is short; but rows keep TEXT_WIDTH px, or a
    # phone screenshot's lettering (a tall picture's rows are short once subsampled) could not be cut
    step = max(1, min(max(h, w) // SEARCH_SIDE, w // TEXT_WIDTH))
    tall = h >= SCREEN_TALL * w  # the picture's own shape: 625 px wide by 1,000 high is 105 by 167 subsampled
    full = a
    a = a[::step, ::step]
    if a.dtype != np.uint8:
        a = a.astype(np.int16)  # grey levels of odd input as whole numbers (uint8 already is)
    h, w = a.shape[:2]
    planes = cv2.split(a) if a.dtype == np.uint8 and a.shape[2] <= 4 else list(a.transpose(2, 0, 1))
    rows = np.stack(planes)  # (channels, h, w): rows as lines
    cols = np.stack([cv2.transpose(p) for p in planes])  # (channels, w, h): columns as lines
    x0, y0, x1, y1 = 0, 0, w, h
    levels = insets = 0
    while True:
        t, b, lf, r = _peel(rows, cols, y0, y1, x0, x1, tall) if levels < LEVELS else (0, 0, 0, 0)
        if t + b + lf + r == 0:
            if insets == INSETS or (found := _inset_of(full, step, (x0, y0, x1, y1))) is None:
                break
            x0, y0, x1, y1 = found  # a photo inside a screen or on a page; its own bands are peeled next
            insets, levels = insets + 1, 0
            continue
        levels += 1
        if (y1 - y0) - t - b < max(2, MIN_CONTENT * h) or (x1 - x0) - lf - r < max(2, MIN_CONTENT * w):
            return ContentBox(**whole, note="the frame covers nearly the whole picture; whole picture used")
        if _background(rows, cols, (x0, y0, x1, y1), (x0 + lf, y0 + t, x1 - r, y1 - b)):
            levels = LEVELS  # no band: a plain coloured background (skin, a desk), peeled no further
            continue
        x0, y0, x1, y1 = x0 + lf, y0 + t, x1 - r, y1 - b
    full_w, full_h = whole["width"], whole["height"]
    return ContentBox(
        min(x0 * step, full_w),
        min(y0 * step, full_h),
        full_w if x1 == w else min(x1 * step, full_w),
        full_h if y1 == h else min(y1 * step, full_h),
        full_w,
        full_h,
    )
