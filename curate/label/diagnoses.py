"""The study's diagnosis list, declared once in the workspace settings (curate.toml, `[labels]`).

Every stage reads the list from here: the Label Studio choices (rendered into label_config.xml by
curate/label/config.py), parsing annotations, agreement, consensus, export and the dataset card. The
binary target is derived from the declared positive set here and nowhere else.

Two outcomes are always present, whatever a study declares:
- "other diagnosis" (`other_diagnosis`): a diagnosis outside the declared list. It is kept: non_mpox
  in the binary task, its own class in the diagnosis task.
- "not assessable" (`not_assessable`): the photo cannot be diagnosed. It is excluded from every
  export, and the export counts it under that reason.

Before migration 0006 both shared one choice "Other / not assessable" (code `other`) that every export
dropped; catalogues are migrated to `not_assessable` (what it meant when used for quality), and
annotations still carrying that choice in older Label Studio projects are read the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

from curate.errors import ConfigError
from curate.output import first_control

OTHER = "other_diagnosis"
NOT_ASSESSABLE = "not_assessable"
LEGACY_OTHER = "other"  # the code of "Other / not assessable" before migration 0006
LEGACY_CHOICES = {"Other / not assessable": NOT_ASSESSABLE}
# Adjudication (curate/label/adjudication.py): the reviewer's "neither" and the raters' read-only boxes.
NEITHER = "neither"  # recorded as the review's diagnosis; consensus discards the image
NEITHER_CHOICE = "Neither (discard this image)"
KEEP = "keep"  # recorded as an audit's diagnosis: the consensus stands (curate/label/audit_apply.py)
KEEP_CHOICE = "Keep the current consensus"
RATER_BOXES_CONTROL = "rater_boxes"
RESERVED = (OTHER, NOT_ASSESSABLE, LEGACY_OTHER, NEITHER, KEEP)
BINARY_CLASSES = ("mpox", "non_mpox")

# The paper's eight diagnoses (Soe et al. 2024): the default when the settings declare none.
PAPER_DIAGNOSES: tuple[tuple[str, str], ...] = (
    ("mpox", "Mpox"),
    ("genital_herpes", "Genital herpes"),
    ("genital_warts", "Genital warts"),
    ("primary_syphilis", "Primary syphilis"),
    ("secondary_syphilis", "Secondary syphilis"),
    ("molluscum_contagiosum", "Molluscum contagiosum"),
    ("dermatosis", "Dermatosis"),
    ("healthy_skin", "Healthy skin"),
)
SETTINGS_TABLE = "labels"
SETTINGS_KEYS = ("diagnoses", "positive", "other", "not_assessable")
SLUG = re.compile(r"[a-z][a-z0-9_]{0,49}")  # a manifest value and a class folder name (fullmatch: no "\n" after)
MAX_NAME = 100
# Names a declared diagnosis or outcome may not look like: what each one already means in Label Studio.
RESERVED_NAMES = {
    NEITHER_CHOICE: "the reviewer's discard",
    KEEP_CHOICE: "the audit's keep choice",
    **dict.fromkeys(LEGACY_CHOICES, "the retired choice older projects still offer (read as not assessable)"),
}

# Consensus outcomes (db.models.label.Consensus.status); FINAL ones carry a diagnosis.
STATUSES = ("pending", "agreed", "adjudicated", "discarded", "excluded")
FINAL = ("agreed", "adjudicated")

# Exclusion flags: slug -> choice value in the "flags" control of label_config.xml.
IDENTIFIABLE = "identifiable_features"
LOW_QUALITY = "low_quality"
FLAGS: dict[str, str] = {
    IDENTIFIABLE: "Identifiable features (face, tattoo, birthmark)",
    LOW_QUALITY: "Image quality too low",
}
FLAG_BY_CHOICE: dict[str, str] = {v: k for k, v in FLAGS.items()}

# Control names in label_config.xml.
DIAGNOSIS_CONTROL = "diagnosis"
FLAGS_CONTROL = "flags"
BOX_CONTROL = "lesion"
COMMENT_CONTROL = "comment"
IMAGE_OBJECT = "image"


@dataclass(frozen=True)
class DiagnosisList:
    """The declared diagnoses (slug, display name) in the order clinicians see them, and the binary task's positives."""

    declared: tuple[tuple[str, str], ...] = PAPER_DIAGNOSES
    positive: tuple[str, ...] = ("mpox",)
    other_name: str = "Other diagnosis"
    not_assessable_name: str = "Not assessable"

    @property
    def names(self) -> dict[str, str]:
        """slug -> display name: the declared list, then "other diagnosis", then "not assessable"."""
        return {**dict(self.declared), OTHER: self.other_name, NOT_ASSESSABLE: self.not_assessable_name}

    @property
    def codes(self) -> list[str]:
        return list(self.names)

    @property
    def by_choice(self) -> dict[str, str]:
        """Label Studio choice value -> slug (older projects' "Other / not assessable" included)."""
        return {**LEGACY_CHOICES, **{v: k for k, v in self.names.items()}}

    def name(self, slug: str | None) -> str:
        """What clinicians read; an undeclared code is shown as it is."""
        return "—" if slug is None else self.names.get(slug, slug)

    def binary_label(self, slug: str | None) -> str | None:
        """mpox for a positive diagnosis, non_mpox for any other (other diagnosis included),
        None when not assessable."""
        if slug is None or slug == NOT_ASSESSABLE:
            return None
        if slug not in self.names:
            raise ConfigError(
                f"diagnosis {slug!r} is not declared in the workspace settings ({SETTINGS_TABLE}.diagnoses)"
            )
        return BINARY_CLASSES[0] if slug in self.positive else BINARY_CLASSES[1]

    def as_meta(self) -> list[dict[str, Any]]:
        """For dataset.json: every code with its name and binary class (null: excluded), in order."""
        return [{"slug": k, "name": v, "binary": self.binary_label(k)} for k, v in self.names.items()]

    @classmethod
    def from_settings(cls, settings: dict[str, Any], where: str = "curate.toml") -> DiagnosisList:
        """Read and validate the `[labels]` table; raise ConfigError naming the field."""
        table = settings.get(SETTINGS_TABLE, {})

        def bad(field: str, why: str) -> ConfigError:
            return ConfigError(f"{where}: {SETTINGS_TABLE}.{field} {why}")

        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {SETTINGS_TABLE} must be a table ([{SETTINGS_TABLE}])")
        for key in table:
            if key not in SETTINGS_KEYS:
                raise bad(key, f"is not a setting (known: {', '.join(SETTINGS_KEYS)})")
        declared = PAPER_DIAGNOSES if "diagnoses" not in table else _declared(table["diagnoses"], bad)
        names = {}
        for key, default in (("other", cls.other_name), ("not_assessable", cls.not_assessable_name)):
            names[key] = _name(table.get(key, default), key, bad)
        _distinct([(f"diagnoses[{i}].name", n) for i, (_, n) in enumerate(declared)] + list(names.items()), bad)
        slugs = [s for s, _ in declared]
        positive = table.get("positive", ["mpox"] if "mpox" in slugs else None)
        if positive is None:
            raise bad("positive", "is missing: name the declared diagnoses that are 'mpox' in the binary task")
        if not isinstance(positive, list) or not all(isinstance(p, str) for p in positive):
            raise bad("positive", 'must be a list of diagnosis slugs, e.g. ["mpox"]')
        if not positive:
            raise bad("positive", 'is empty: name at least one declared diagnosis (e.g. "mpox")')
        for p in positive:
            if p not in slugs:
                raise bad("positive", f"names {p!r}, which is not a declared diagnosis ({', '.join(slugs)})")
        return cls(
            declared=declared,
            positive=tuple(dict.fromkeys(positive)),
            other_name=names["other"],
            not_assessable_name=names["not_assessable"],
        )


def _look(name: str) -> str:
    """What a name looks like on a radio button: NFKC (fullwidth letters, ligatures), letters of other scripts
    that look like Latin ones as those (`_latin`), case folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", _latin(unicodedata.normalize("NFKC", name)).casefold())
    return " ".join(_latin(folded).split())


def _latin(text: str) -> str:
    """`text` with each letter of another script that Unicode lists as confusable with a Latin one (Cyrillic
    "М", "р", "о", "х"; Greek "Ο") replaced by it: "Мрох" in Cyrillic is "Mpox" on a radio button. The table is
    Unicode's (`confusable_homoglyphs`, from confusables.txt), not a hand-kept list."""
    from confusable_homoglyphs import confusables  # its table takes 50 ms to load: only when a list is checked

    found = confusables.is_confusable(text, preferred_aliases=["latin"], greedy=True) or []
    swap = {f["character"]: f["homoglyphs"][0]["c"] for f in found if f["homoglyphs"]}
    return "".join(swap.get(c, c) for c in text)


@cache
def _reserved_looks() -> dict[str, tuple[str, str]]:
    """What each reserved name looks like (`_look`), once, when a list is first checked."""
    return {_look(n): (n, why) for n, why in RESERVED_NAMES.items()}


def _name(value: Any, field: str, bad) -> str:
    """The name in NFC; refused when a rater could not tell it from another or the terminal would obey it."""
    if not isinstance(value, str) or not value.strip():
        raise bad(field, "must be a non-empty display name")
    c = first_control(value)
    if c is not None:
        raise bad(field, f"{value!r} contains U+{ord(c):04X}, an invisible or control character: write plain text")
    if " ".join(value.split()) != value:
        raise bad(field, f"{value!r} must separate words with single plain spaces and have none around it")
    if len(value) > MAX_NAME:
        raise bad(field, f"{value!r} is longer than {MAX_NAME} characters")
    return unicodedata.normalize("NFC", value)


def _distinct(named: list[tuple[str, str]], bad) -> None:
    """Refuse a name that looks like another one or like a reserved choice: raters would see one button twice."""
    seen: dict[str, tuple[str, str]] = {}
    for field, name in named:
        key = _look(name)
        if key in _reserved_looks():
            reserved, why = _reserved_looks()[key]
            raise bad(field, f"{name!r} is reserved: {reserved!r} is {why}")
        if key in seen:
            other, was = seen[key]
            raise bad(
                field,
                f"{name!r} is used twice (also {other} {was!r}; names differing only in case, width, "
                "spacing or letters of another script that look alike look the same)",
            )
        seen[key] = (field, name)


def _declared(items: Any, bad) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise bad("diagnoses", 'must be a list like [{ slug = "mpox", name = "Mpox" }, …]')
    if not items:
        raise bad("diagnoses", "is empty: declare at least one diagnosis (or remove it for the paper's eight)")
    out: list[tuple[str, str]] = []
    seen_slug: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"slug", "name"}:
            raise bad(f"diagnoses[{i}]", 'must be { slug = "…", name = "…" } (exactly those two keys)')
        slug, name = item["slug"], _name(item["name"], f"diagnoses[{i}].name", bad)
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            raise bad(
                f"diagnoses[{i}].slug",
                f"{slug!r} must be lower-case letters, digits or '_', starting with a letter (at most 50)",
            )
        if slug in RESERVED:
            raise bad(
                f"diagnoses[{i}].slug",
                f"{slug!r} is reserved: 'other diagnosis' and 'not assessable' are always present, 'neither' is the "
                "reviewer's discard, 'keep' the audit's",
            )
        if slug in seen_slug:
            raise bad(f"diagnoses[{i}].slug", f"{slug!r} is declared twice (also diagnoses[{seen_slug[slug]}])")
        seen_slug[slug] = i
        out.append((slug, name))
    return tuple(out)


PAPER = DiagnosisList()
