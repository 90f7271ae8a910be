"""Perceptual hashing methods: one class per method, the same verbs on each.

`encode(decoded)` turns one decoded thumbnail into its codes (what the
catalogue stores, so later runs never re-hash); `find_duplicates(codes, …)`
returns the matched pairs. Settings go to the constructor, work to the verbs.

`PHash`   — the classic DCT hash of the whole picture, made invariant to the
            eight flips and quarter-turns (bits are signs of AC coefficients,
            so a flip is an XOR and a transpose a bit permutation).
`RegionPHash` — codes of the whole picture plus of 10 inner windows (a 95 %
            centre crop and a 3x3 grid of 90 % crops) so that a copy with a
            border cut away still meets one window closely. Candidates are each
            picture's nearest others on float descriptors of those windows
            (`curate.dedupe.propose`, any orientation), not a Hamming radius;
            each is then checked by the correlation of 143 real DCT
            coefficients over a finer grid of windows, which separates a
            re-posted copy from a different photo of the same skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from curate.dedupe.dct import (
    BITS,
    CENTRE,
    DIHEDRAL,
    HASH_K,
    VERIFY_K,
    VERIFY_TURNS,
    VERIFY_WINDOWS,
    WINDOWS,
    apply_dihedral,
    inverse_dihedral,
    is_mirror,
    window_dct,
)
from curate.dedupe.decode import THUMB
from curate.dedupe.propose import nearest_pairs
from curate.dedupe.search import Backend, hamming, make_index
from curate.dedupe.search.knn import NearestNeighbours
from curate.errors import ConfigError

NEIGHBOURS = 5  # pictures each picture proposes (bench/README.md, Dedupe: proposal)


def pack_bits(coeffs: np.ndarray) -> np.ndarray:
    """Sign bits of the 8x8 low-frequency block (DC excluded) -> uint64 per window."""
    bits = coeffs[..., :HASH_K, :HASH_K] > 0
    bits[..., 0, 0] = False
    flat = bits.reshape(bits.shape[:-2] + (BITS,))
    return np.packbits(flat, axis=-1, bitorder="little").view("<u8")[..., 0].astype(np.uint64)


def unpack_bits(codes: np.ndarray) -> np.ndarray:
    b = np.unpackbits(np.asarray(codes, dtype="<u8")[..., None].view(np.uint8), axis=-1, bitorder="little")
    return b.reshape(b.shape[:-1] + (HASH_K, HASH_K)).astype(bool)


_ODD = (np.arange(HASH_K) % 2).astype(bool)


def dihedral_codes(codes: np.ndarray) -> np.ndarray:
    """(…, 8) codes of the eight flips/quarter-turns, straight from the bits.

    On a DCT, flipping columns negates odd columns' coefficients (an XOR of
    their sign bits), flipping rows negates odd rows, and a transpose swaps
    the axes; so the codes of all eight variants need no re-decoding.
    """
    bits = unpack_bits(codes)
    out = []
    for t, fy, fx in DIHEDRAL:
        b = np.swapaxes(bits, -1, -2) if t else bits
        if fy:
            b = b ^ _ODD[:, None]
        if fx:
            b = b ^ _ODD[None, :]
        b = b.copy()
        b[..., 0, 0] = False
        flat = b.reshape(b.shape[:-2] + (BITS,))
        out.append(np.packbits(flat, axis=-1, bitorder="little").view("<u8")[..., 0])
    return np.stack(out, axis=-1).astype(np.uint64)


def to_hex(code: int | np.uint64) -> str:
    return f"{int(code):016x}"


@dataclass(frozen=True)
class Match:
    """Two images judged near-duplicates: hash distance and verified similarity."""

    a: int  # row index into the codes passed to find_duplicates
    b: int
    hamming: int
    similarity: float  # 1.0 for identical pictures; ≥ threshold for a match
    dihedral: int = 0  # the turn/flip (index into DIHEDRAL) of picture a that matched b


def _check(radius: int, similarity: float | None = None) -> None:
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or not 0 <= radius <= 32:
        raise ConfigError(f"--radius must be a whole number of bits from 0 to 32, not {radius!r}")
    if similarity is not None and not (0.5 <= similarity <= 1.0):
        raise ConfigError(f"--similarity must be between 0.5 and 1.0, not {similarity!r}")


class PHash:
    """Dihedral-invariant whole-picture DCT hash; the baseline, no verification."""

    windows = WINDOWS[:1]

    def __init__(self, radius: int = 10, backend: str | Backend = Backend.AUTO):
        _check(radius)
        self.radius = radius
        self.backend = backend

    def encode(self, thumb: np.ndarray) -> np.ndarray:
        """uint64 codes, one per window (window 0: the whole picture)."""
        return pack_bits(window_dct(thumb, self.windows, HASH_K))

    def candidates(self, codes: np.ndarray, new: np.ndarray | None = None):
        """(a, b, dihedral, hamming) arrays, a < b, for every pair within the radius.

        `codes` is (n, windows); each picture's whole-picture code in its eight
        orientations is searched against every stored window. With `new` (a
        boolean mask), only pairs touching a new picture are searched for.
        """
        n, nw = codes.shape
        flat = codes.reshape(-1)
        owner = np.repeat(np.arange(n), nw)
        queries = dihedral_codes(codes[:, 0])  # (n, 8)
        qowner = np.repeat(np.arange(n), 8)
        qdih = np.tile(np.arange(8), n)
        parts = []
        if new is None:
            idx = make_index(self.backend, len(flat), self.radius, hamming).build(flat)
            parts.append(idx.search(queries.reshape(-1), self.radius))
            owners = [(qowner, owner, qdih)]
        else:
            new = np.asarray(new, bool)
            newq = np.repeat(new, 8)
            newc = np.repeat(new, nw)
            owners = []
            # new pictures against everything stored …
            if newq.any():
                idx = make_index(self.backend, len(flat), self.radius, hamming).build(flat)
                parts.append(idx.search(queries.reshape(-1)[newq], self.radius))
                owners.append((qowner[newq], owner, qdih[newq]))
            # … and every picture against the new pictures' windows.
            if newc.any():
                idx = make_index(self.backend, int(newc.sum()), self.radius, hamming).build(flat[newc])
                parts.append(idx.search(queries.reshape(-1), self.radius))
                owners.append((qowner, owner[newc], qdih))
        aa, bb, dd, hh = [], [], [], []
        for (qi, ci, dist), (qo, co, qd) in zip(parts, owners, strict=False):
            a, b = qo[qi], co[ci]
            keep = a != b
            aa.append(a[keep])
            bb.append(b[keep])
            dd.append(qd[qi][keep])
            hh.append(dist[keep])
        if not aa:
            e = np.empty(0, np.int64)
            return e, e, e, e
        a, b, d, h = (np.concatenate(x) for x in (aa, bb, dd, hh))
        # the dihedral is relative to `a` (the query); keep it with the pair's best distance
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((h, hi, lo))
        lo, hi, d, h, a = lo[order], hi[order], d[order], h[order], a[order]
        first = np.ones(len(lo), bool)
        first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        # express the dihedral as "applied to lo": if the query was hi, invert it
        dq = d[first]
        qa = a[first]
        inv = np.array([inverse_dihedral(k) for k in range(8)])
        dq = np.where(qa == lo[first], dq, inv[dq])
        return lo[first], hi[first], dq, h[first].astype(np.int64)

    def find_duplicates(self, codes: np.ndarray, thumbs=None, new: np.ndarray | None = None) -> list[Match]:
        a, b, d, h = self.candidates(codes[:, : len(self.windows)], new)
        return [
            Match(int(x), int(y), int(z), 1.0 - int(z) / 63, int(t)) for x, y, t, z in zip(a, b, d, h, strict=False)
        ]


class RegionPHash(PHash):
    """11 windows; candidates proposed by nearest neighbours (`curate.dedupe.propose`), then
    checked by DCT correlation over a finer grid of windows."""

    windows = WINDOWS

    def __init__(self, neighbours: int = NEIGHBOURS, similarity: float = 0.90, nn: NearestNeighbours | None = None):
        _check(0, similarity)
        if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or not 1 <= neighbours <= 50:
            raise ConfigError(f"--neighbours must be a whole number from 1 to 50, not {neighbours!r}")
        super().__init__(0)
        self.neighbours = int(neighbours)
        self.similarity = similarity
        self.nn = nn

    def candidates(self, codes: np.ndarray, new: np.ndarray | None = None, thumbs=None):
        """(a, b, dihedral, hamming) arrays, a < b: every pair in which one picture is among the
        other's `neighbours` nearest (`propose.nearest_pairs`, on the thumbnails). `hamming` is the
        pair's best window distance in that orientation (for the record; it decides nothing)."""
        if thumbs is None:
            raise ValueError("RegionPHash.candidates needs the thumbnails")
        a, b, d, _ = nearest_pairs(thumbs, self.neighbours, new, self.nn)
        if not len(a):
            return a, b, d, a
        inv = np.array([inverse_dihedral(k) for k in range(8)])
        turns = dihedral_codes(codes[:, 0])  # (n, 8)
        there = hamming(turns[a, d][:, None], codes[b]).min(1)  # a turned onto b's windows
        back = hamming(turns[b, inv[d]][:, None], codes[a]).min(1)  # b turned back onto a's windows
        return a, b, d, np.minimum(there, back).astype(np.int64)

    @staticmethod
    def vectors(thumb: np.ndarray) -> np.ndarray:
        """Unit vectors of 12x12 DCT coefficients (DC dropped), one per VERIFY_WINDOWS entry."""
        c = window_dct(thumb, VERIFY_WINDOWS, VERIFY_K).reshape(len(VERIFY_WINDOWS), -1)[:, 1:]
        return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6)

    @staticmethod
    def turned_vectors(thumb: np.ndarray) -> np.ndarray:
        """The same for the 80 % centre of the picture turned by each VERIFY_TURNS angle."""
        img = PILImage.fromarray(thumb)
        turned = [thumb] + [np.asarray(img.rotate(a, resample=PILImage.BILINEAR)) for a in VERIFY_TURNS[1:]]
        c = np.concatenate([window_dct(t, CENTRE, VERIFY_K) for t in turned]).reshape(len(turned), -1)[:, 1:]
        return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6)

    def verify(self, thumb_a: np.ndarray, thumb_b: np.ndarray, dihedral: int, _cache=None) -> float:
        """Best correlation between one picture whole and the other's shifted and scaled
        windows, both ways (`thumb_a` first turned by `dihedral`); small rotations are
        tried only when that falls just short of the threshold."""
        ta = apply_dihedral(thumb_a, dihedral)
        get = _cache or (lambda key, fn, t: fn(t))
        wa, wb = get(("w", 0), self.vectors, ta), get(("w", 1), self.vectors, thumb_b)
        sim = float(max((wb @ wa[0]).max(), (wa @ wb[0]).max()))
        if self.similarity - 0.1 <= sim < self.similarity:
            ra, rb = get(("r", 0), self.turned_vectors, ta), get(("r", 1), self.turned_vectors, thumb_b)
            sim = max(sim, float(max((rb @ ra[0]).max(), (ra @ rb[0]).max())))
        return sim

    def find_duplicates(self, codes: np.ndarray, thumbs=None, new: np.ndarray | None = None) -> list[Match]:
        """Verified pairs; `thumbs[i]` is the (THUMB, THUMB) uint8 thumbnail of row i."""
        if thumbs is None:
            raise ValueError("RegionPHash.find_duplicates needs the thumbnails to verify candidates")
        a, b, d, h = self.candidates(codes, new, thumbs)
        out = []
        cache: dict[tuple, np.ndarray] = {}
        for x, y, z, dist in zip(a.tolist(), b.tolist(), d.tolist(), h.tolist(), strict=False):
            keys = {0: (x, z), 1: (y, 0)}

            def get(key, fn, t, keys=keys):
                k = (key[0],) + keys[key[1]]
                if k not in cache:
                    cache[k] = fn(t)
                return cache[k]

            sim = self.verify(thumbs[x], thumbs[y], z, get)
            if sim >= self.similarity:
                out.append(Match(x, y, dist, round(sim, 4), z))
        return out


METHODS = {"phash": PHash, "region-phash": RegionPHash}

__all__ = [
    "PHash",
    "RegionPHash",
    "Match",
    "METHODS",
    "NEIGHBOURS",
    "THUMB",
    "apply_dihedral",
    "dihedral_codes",
    "is_mirror",
    "to_hex",
]
