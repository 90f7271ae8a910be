"""The DCT of picture windows: hash bits, verification vectors and float descriptors.

Every window (a scaled, shifted part of the thumbnail) is box-resampled to
SIDE x SIDE and its low-frequency DCT taken, as two small matrix products per
window (`operators`), so whole batches of thumbnails go through BLAS.

Float descriptors, for the nearest-neighbour proposal (`curate.dedupe.propose`):
A window's descriptor is its 8 x 8 low-frequency DCT (the block whose signs are
the hash bits, DC dropped: 63 values), each value replaced by sign * sqrt(|c|)
and the vector scaled to unit length, so the inner product of two descriptors is
a cosine. The square root keeps part of the magnitudes the sign bits throw away
(a stronger ranking than the Hamming distance) while damping the few large
coefficients a tone change or a bar moves most: on `bench/dedupe.py`'s corpus
it proposed every true pair the 14-bit Hamming search proposed, the raw
coefficients 6 fewer and the signs alone 4 fewer (bench/README.md, Dedupe).

The eight flips and quarter-turns act on a DCT as a transpose and sign changes
of odd rows/columns, so a descriptor is turned by a fixed permutation and sign
pattern (`turned`): no picture is decoded or transformed again. They are
computed from the stored 64 x 64 thumbnails when the search runs (two matrix
products per batch), so the catalogue's stored codes are unchanged.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

SIDE = 32  # pixels a window is resampled to before the DCT
HASH_K = 8  # 8x8 low-frequency coefficients -> 63 sign bits (the DC slot is always 0)
VERIFY_K = 12  # 12x12 coefficients (DC dropped) -> 143-value verification vector
BITS = 64


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m.astype(np.float32)


_DCT = _dct_matrix(SIDE)

# Hash windows (scale, dx, dy) in fractions of the picture; index 0 is the whole picture.
WINDOWS: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.95, 0.0, 0.0)) + tuple(
    (0.9, dx, dy) for dy in (-0.05, 0.0, 0.05) for dx in (-0.05, 0.0, 0.05)
)
# Verification windows: a finer grid, only ever computed for hash candidates.
VERIFY_WINDOWS: tuple[tuple[float, float, float], ...] = (
    ((1.0, 0.0, 0.0),)
    + tuple((0.95, dx, dy) for dy in (-0.025, 0.0, 0.025) for dx in (-0.025, 0.0, 0.025))
    + tuple((0.9, dx, dy) for dy in (-0.05, -0.025, 0.0, 0.025, 0.05) for dx in (-0.05, -0.025, 0.0, 0.025, 0.05))
)

# Small rotations the verification also tries, on the 80 % centre (clear of the corners a turn exposes).
VERIFY_TURNS: tuple[float, ...] = (0.0, -2.0, 2.0, -4.0, 4.0)
CENTRE = ((0.8, 0.0, 0.0),)

# The eight flips/quarter-turns as (transpose, flip rows, flip columns) of a square array.
DIHEDRAL: tuple[tuple[bool, bool, bool], ...] = tuple(
    (t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True)
)


def is_mirror(d: int) -> bool:
    """Whether dihedral `d` mirrors the picture (an odd number of flips and transposes)."""
    return sum(DIHEDRAL[d]) % 2 == 1


def apply_dihedral(a: np.ndarray, d: int) -> np.ndarray:
    t, fy, fx = DIHEDRAL[d]
    if t:
        a = a.T
    if fy:
        a = a[::-1]
    if fx:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def inverse_dihedral(d: int) -> int:
    """The flip/turn that undoes dihedral `d`."""
    probe = np.arange(16).reshape(4, 4)
    target = apply_dihedral(probe, d)
    for k in range(8):
        if np.array_equal(apply_dihedral(target, k), probe):
            return k
    raise AssertionError("dihedral group is closed")


def compose_dihedral(x: int, y: int) -> int:
    """The flip/turn that does dihedral `x`, then `y`."""
    probe = np.arange(16).reshape(4, 4)
    target = apply_dihedral(apply_dihedral(probe, x), y)
    return next(k for k in range(len(DIHEDRAL)) if np.array_equal(apply_dihedral(probe, k), target))


def _box_matrix(n_src: int, start: float, length: float, n_out: int = SIDE) -> np.ndarray:
    """(n_out, n_src) weights of a box-filter resample of [start, start+length) to n_out pixels."""
    edges = start + length * np.arange(n_out + 1) / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_src)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0, None)
    return (overlap / (hi - lo)).astype(np.float32)


_OPS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def operators(shape: tuple[int, int], spec, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-window left/right matrices that resample a window to SIDE and take its k x k DCT."""
    key = (shape, spec, k)
    if key not in _OPS:
        h, w = shape
        ly, lx = [], []
        for s, dx, dy in spec:
            cw, ch = w * s, h * s
            x0 = min(max((w - cw) / 2 + dx * w, 0.0), w - cw)
            y0 = min(max((h - ch) / 2 + dy * h, 0.0), h - ch)
            ly.append(_DCT[:k] @ _box_matrix(h, y0, ch))
            lx.append(_DCT[:k] @ _box_matrix(w, x0, cw))
        _OPS[key] = (np.stack(ly), np.stack(lx))
    return _OPS[key]


def window_dct(thumb: np.ndarray, spec, k: int) -> np.ndarray:
    """(len(spec), k, k) low-frequency DCT of each window of `thumb` (box-resampled to SIDE)."""
    ly, lx = operators(thumb.shape, tuple(spec), k)
    t = thumb.astype(np.float32)
    return (ly @ t) @ lx.transpose(0, 2, 1)


DIMS = HASH_K * HASH_K - 1


def window_coefficients(thumbs: np.ndarray, spec=WINDOWS, k: int = HASH_K, chunk: int = 1024) -> np.ndarray:
    """(n, len(spec), k, k) low-frequency DCT of each window of each (H, W) thumbnail; the same
    numbers as `window_dct`, batched: the distinct row operators times each thumbnail times the
    distinct column operators (the 11 hash windows share 5 row and 5 column ranges), two large
    matrix products a chunk at a time into buffers reused from chunk to chunk, then each window's
    block. On 100,000 thumbnails (one thread, 2026-11-30, load ~2.7): 3.2 s of CPU, against 4.5-5.5
    s as one product for all windows' columns, then a small product per window, in fresh arrays."""
    thumbs = np.asarray(thumbs)
    n, h, w = thumbs.shape
    ly, lx = operators((h, w), tuple(spec), k)  # (windows, k, h), (windows, k, w)
    rows, ry = _distinct(ly)
    cols, rx = _distinct(lx)
    right = np.ascontiguousarray(cols.T)  # (w, distinct columns * k)
    m = min(chunk, n)
    t = np.empty((m, h, w), np.float32)
    a = np.empty((m * h, right.shape[1]), np.float32)
    at = np.empty((h, m, right.shape[1]), np.float32)
    b = np.empty((len(rows), m * right.shape[1]), np.float32)
    out = np.empty((n, len(spec), k, k), np.float32)
    for s in range(0, n, m):
        e = min(n, s + m) - s
        np.copyto(t[:e], thumbs[s : s + e], casting="unsafe")
        np.matmul(t[:e].reshape(-1, w), right, out=a[: e * h])
        np.copyto(at[:, :e], a[: e * h].reshape(e, h, -1).transpose(1, 0, 2))
        bb = b[:, : e * right.shape[1]]
        np.matmul(rows, at[:, :e].reshape(h, -1), out=bb)
        blocks = bb.reshape(-1, k, e, len(cols) // k, k)  # (row range, i, picture, column range, j)
        out[s : s + e] = blocks[ry, :, :, rx, :].transpose(2, 0, 1, 3)
    return out


def _distinct(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (k, n) operators among `ops` stacked as one (distinct * k, n) matrix, and which
    one each window uses."""
    uniq, which = np.unique(ops.reshape(len(ops), -1), axis=0, return_inverse=True)
    return uniq.reshape(-1, ops.shape[-1]), which.reshape(-1)


def descriptors(thumbs: np.ndarray, spec=WINDOWS, chunk: int = 4096) -> np.ndarray:
    """(n, len(spec), DIMS) float32 unit descriptors (module docstring), a chunk of thumbnails at a
    time, in place, on a thread a core (numpy releases the GIL; BLAS one thread each): 4.0 s of
    CPU on 100,000 thumbnails, against 6.7-7.5 s with whole-array temporaries (fresh memory is slow
    to touch here); on 2 idle cores 2.5 s of wall time against 3.4 s in one thread."""
    thumbs = np.asarray(thumbs)
    out = np.empty((len(thumbs), len(spec), DIMS), np.float32)

    def one(s: int) -> None:
        c = window_coefficients(thumbs[s : s + chunk], spec).reshape(-1, len(spec), HASH_K * HASH_K)[..., 1:]
        v = out[s : s + chunk]
        np.sqrt(np.abs(c, out=v), out=v)
        np.copysign(v, c, out=v)
        v /= np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6)

    in_chunks(one, len(thumbs), chunk)
    return out


def in_chunks(one, n: int, chunk: int) -> None:
    """`one(start)` for each chunk of `n` rows, on a thread a core when there are several (numpy
    releases the GIL; BLAS one thread each, or its threads would fight the pool's)."""
    starts = range(0, n, chunk)
    if len(starts) < 2:
        for s in starts:
            one(s)
        return
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, starts))


def _orientation_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per dihedral: where each descriptor value comes from, and its sign (as `hashing.dihedral_codes`)."""
    idx = np.arange(HASH_K * HASH_K).reshape(HASH_K, HASH_K)
    odd = np.arange(HASH_K) % 2 == 1
    perms, signs = [], []
    for t, fy, fx in DIHEDRAL:
        src = idx.T if t else idx
        sign = np.ones((HASH_K, HASH_K), np.float32)
        if fy:
            sign[odd, :] *= -1
        if fx:
            sign[:, odd] *= -1
        perms.append(src.reshape(-1)[1:] - 1)
        signs.append(sign.reshape(-1)[1:])
    return np.stack(perms), np.stack(signs)


_PERM, _SIGN = _orientation_tables()


def turned(v: np.ndarray, d: int) -> np.ndarray:
    """Descriptors (…, DIMS) of the pictures turned/flipped by dihedral `d` (index into DIHEDRAL)."""
    return v[..., _PERM[d]] * _SIGN[d]


# The same as (DIMS, DIMS) signed permutation matrices: `v @ _TURN[d]` is `turned(v, d)` exactly
# (each output is one input times +-1); turning 1.1 M window descriptors to their canonical
# orientation this way took 1.1 s of CPU against 2.0-2.8 s with fancy indexing.
_TURN = np.zeros((len(DIHEDRAL), DIMS, DIMS), np.float32)
for _d in range(len(DIHEDRAL)):
    _TURN[_d, _PERM[_d], np.arange(DIMS)] = _SIGN[_d]


def turned_each(v: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """(n, DIMS) descriptors each turned by its own dihedral `turns[i]`."""
    out = np.empty_like(v)
    for d in range(len(DIHEDRAL)):
        rows = np.flatnonzero(turns == d)
        out[rows] = v[rows] @ _TURN[d]
    return out


_FLAT = np.arange(HASH_K * HASH_K).reshape(HASH_K, HASH_K) - 1
_UPPER, _LOWER = _FLAT[np.triu_indices(HASH_K, 1)], _FLAT[np.tril_indices(HASH_K, -1)]
_LOWER = _LOWER[_LOWER >= 0]
_UPPER = _UPPER[_UPPER >= 0]
_ENERGY = np.zeros(DIMS, np.float32)  # energy above the diagonal minus below it, as one product
_ENERGY[_UPPER], _ENERGY[_LOWER] = 1, -1


def canonical_slack(v: np.ndarray) -> np.ndarray:
    """(…) how close descriptors are to the canonical orientation: the least of (energy above the
    diagonal minus below it, first horizontal coefficient, first vertical one); exactly one of a
    picture's eight turns has all three positive (a transpose swaps the first, flips negate the others)."""
    energy = (v * v) @ _ENERGY  # |c|: the descriptors are signed square roots
    return np.minimum(energy, np.minimum(v[..., _FLAT[0, 1]], v[..., _FLAT[1, 0]]))


_TRANSPOSED = np.array([t for t, _, _ in DIHEDRAL])
_ROWS_FLIPPED = np.array([fy for _, fy, _ in DIHEDRAL])
_COLS_FLIPPED = np.array([fx for _, _, fx in DIHEDRAL])


def turn_slack(v: np.ndarray) -> np.ndarray:
    """(n, 8) `canonical_slack` of each of the eight turns of (n, DIMS) descriptors, without turning
    them: a transpose negates the energy and swaps the first horizontal and vertical coefficients,
    a flip of the columns (rows) negates the first horizontal (vertical) one. 100,000 pictures:
    0.05 s, against 0.45 s for `all_turns` and the slack of each."""
    energy = ((v * v) @ _ENERGY)[:, None]
    h, w = v[:, _FLAT[0, 1], None], v[:, _FLAT[1, 0], None]
    across = np.where(_TRANSPOSED, w, h) * np.where(_COLS_FLIPPED, -1, 1)
    down = np.where(_TRANSPOSED, h, w) * np.where(_ROWS_FLIPPED, -1, 1)
    return np.minimum(np.where(_TRANSPOSED, -energy, energy), np.minimum(across, down))


def canonical_turn(v: np.ndarray) -> np.ndarray:
    """(…) the dihedral that turns each descriptor into its canonical orientation (the one turn
    whose `canonical_slack` is positive), from three numbers instead of eight turned copies."""
    t = (v * v) @ _ENERGY < 0
    across = np.where(t, v[..., _FLAT[1, 0]], v[..., _FLAT[0, 1]])  # first horizontal after the transpose
    down = np.where(t, v[..., _FLAT[0, 1]], v[..., _FLAT[1, 0]])
    return t * 4 + (down < 0) * 2 + (across < 0)  # DIHEDRAL's order: (transpose, flip rows, flip columns)


def canonical(flat: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIMS) descriptors each in its canonical orientation, and that orientation (`canonical_turn`),
    a chunk at a time on a thread a core: 0.31 s for 700,000 descriptors on 2 idle cores, against
    0.65 s in one thread."""
    out, turn = np.empty_like(flat), np.empty(len(flat), np.int64)

    def one(s: int) -> None:
        part = slice(s, s + chunk)
        turn[part] = canonical_turn(flat[part])
        out[part] = turned_each(flat[part], turn[part])

    in_chunks(one, len(flat), chunk)
    return out, turn


def all_turns(v: np.ndarray) -> np.ndarray:
    """(…, 8, DIMS): every flip and quarter-turn of each descriptor."""
    return np.stack([turned(v, d) for d in range(len(DIHEDRAL))], axis=-2)
