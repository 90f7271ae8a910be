"""Read one Label Studio annotation `result` list into diagnosis, boxes, flags, comment (pure).

Rectangles arrive in percent of the displayed image; browsers display the
EXIF-oriented image, so percent * the catalogue's oriented width/height gives
pixels of the original as the export stage expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from curate.errors import LabelError
from curate.label.diagnoses import (
    BOX_CONTROL,
    COMMENT_CONTROL,
    DIAGNOSIS_CONTROL,
    FLAG_BY_CHOICE,
    FLAGS_CONTROL,
    KEEP,
    KEEP_CHOICE,
    NEITHER,
    NEITHER_CHOICE,
    RATER_BOXES_CONTROL,
    SETTINGS_TABLE,
    DiagnosisList,
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ParsedResult:
    diagnosis: str | None
    boxes: list[Box] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    comment: str | None = None


def rect_to_pixels(value: dict, width: int, height: int) -> Box:
    """Percent rectangle (x, y, width, height, rotation about the top-left) -> pixel [x0, y0, x1, y1]."""
    x, y = float(value["x"]) * width / 100, float(value["y"]) * height / 100
    w, h = float(value["width"]) * width / 100, float(value["height"]) * height / 100
    rot = math.radians(float(value.get("rotation") or 0))
    if rot:
        c, s = math.cos(rot), math.sin(rot)
        pts = [(x + dx * c - dy * s, y + dx * s + dy * c) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    else:  # a negative width or height (posted through the API) is the same box drawn the other way
        x0, y0, x1, y1 = min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)
    clamp = lambda v, hi: round(min(max(v, 0.0), float(hi)), 2)  # noqa: E731
    return (clamp(x0, width), clamp(y0, height), clamp(x1, width), clamp(y1, height))


def has_area(box: Box) -> bool:
    """Whether a box, clamped to the picture, covers any of it. One without (drawn as a click, width 0, or wholly
    outside the picture) locates nothing, so it is no box: before, it was kept, never matched another (IoU over
    no union is 0), and two raters' identical such boxes both went into consensus and the export."""
    return box[2] > box[0] and box[3] > box[1]


SPECIAL = {"review": {NEITHER_CHOICE: NEITHER}, "audit": {KEEP_CHOICE: KEEP}}  # choices a round kind adds


def parse_result(
    result: list[dict], width: int, height: int, diagnoses: DiagnosisList, kind: str | None = None
) -> ParsedResult:
    """Raise LabelError on a choice the workspace's diagnosis list does not declare (e.g. an edited config), or on
    an answer of the wrong shape (a rater can post any JSON through Label Studio's API: before, a list where an
    object goes, or a box's "x" as text, stopped every pull with an unexpected TypeError naming nothing).

    A review round's "Neither (discard this image)" is read as NEITHER (consensus discards the image), an audit's
    "Keep the current consensus" as KEEP; in a round of another `kind` they are not choices (before, two raters
    posting "Keep" made an image "agreed" on a diagnosis named keep). `kind` None: either is read."""
    special = SPECIAL.get(kind, {}) if kind is not None else {k: v for x in SPECIAL.values() for k, v in x.items()}
    by_choice = {**diagnoses.by_choice, **special}
    try:
        return _parse(result, width, height, by_choice, kind)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise LabelError(f"an answer of the wrong shape ({type(exc).__name__}: {str(exc)[:80]})") from None


def _parse(result: list[dict], width: int, height: int, by_choice: dict[str, str], kind: str | None) -> ParsedResult:
    diagnosis, boxes, flags, comment = None, [], [], None
    if not isinstance(result, list | None):
        raise TypeError("result is not a list")
    seen = set()
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if item.get("type") == "relation":
            continue  # a link the editor draws between two boxes (Alt+R): part of no answer, and it stopped every pull
        if name in (DIAGNOSIS_CONTROL, FLAGS_CONTROL, COMMENT_CONTROL) and name in seen:
            # two "diagnosis" items (posted through the API): before, the last one was recorded, the other dropped
            raise LabelError(f"an answer of the wrong shape ({name!r} answered twice; the config asks once)")
        seen.add(name)
        if name == DIAGNOSIS_CONTROL:
            choices = _strings(value, "choices", name)
            unknown = [c for c in choices if c not in by_choice]
            if unknown and (other := next((k for k, x in SPECIAL.items() if unknown[0] in x), None)):
                raise LabelError(f"{unknown[0]!r} is not an answer in a {kind} round (only in {other} rounds)")
            if unknown:
                raise LabelError(
                    f"diagnosis {unknown[0]!r} is not declared in the workspace settings "
                    f"({SETTINGS_TABLE}.diagnoses in curate.toml)"
                )
            if len(choices) > 1:
                raise LabelError(f"annotation has {len(choices)} diagnoses; the config allows one")
            diagnosis = by_choice[choices[0]] if choices else None
        elif name == FLAGS_CONTROL:
            for c in _strings(value, "choices", name):
                if c not in FLAG_BY_CHOICE:
                    raise LabelError(f"flag {c!r} is not in the toolkit's label config")
                flags.append(FLAG_BY_CHOICE[c])
        elif name == BOX_CONTROL:
            box = rect_to_pixels(value, width, height)
            if not all(math.isfinite(v) for v in box):  # "x": "nan" parses; before, the box was kept as NaN
                raise ValueError(f"a box coordinate is not a number ({value.get('x')!r}, {value.get('y')!r})")
            if has_area(box):
                boxes.append(box)
        elif name == RATER_BOXES_CONTROL:
            continue  # the raters' boxes, shown read-only to the reviewer: not the reviewer's answer
        elif name == COMMENT_CONTROL:
            text = "\n".join(_strings(value, "text", name)).strip()
            comment = text or None
        else:
            raise LabelError(f"control {name!r} is not in the toolkit's label config")
    return ParsedResult(diagnosis=diagnosis, boxes=sorted(boxes), flags=sorted(set(flags)), comment=comment)


def _strings(value: dict, key: str, control: str) -> list[str]:
    """`value[key]` as the list of strings Label Studio posts. A bare string (posted through the API) was read
    letter by letter: "Mpox" stopped the pull as "diagnosis 'M' is not declared", with the wrong advice."""
    got = value.get(key) or []
    if not isinstance(got, list) or not all(isinstance(c, str) for c in got):
        raise LabelError(f"an answer of the wrong shape ({control!r}: {key} is not a list of strings)")
    return got
