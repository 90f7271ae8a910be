"""label_config.xml, the editable default interface, checked and completed from the workspace settings.

The file ships inside the package (curate/label/label_config.xml, read through importlib.resources so a
wheel install finds it); the repository's top-level label_config.xml is a symlink to it, the copy a
steward edits (tests/test_packaging.py fails if the two ever differ).

The file holds the layout and the default diagnosis choices (the paper's eight and the two outcomes);
the choices Label Studio gets are the workspace's declared list (curate.toml `[labels]`), rendered
into the `diagnosis` control, so a study adds chickenpox and measles in its settings, not in code or
XML. A default the study does not declare is left out. A choice written in the XML that is neither a
default nor declared is a mismatch and stops the push (the steward edited the wrong place), as is a
missing control the toolkit reads or a control it does not.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib.resources import files
from importlib.resources.abc import Traversable

from curate.errors import LabelError
from curate.label.diagnoses import (
    BOX_CONTROL,
    COMMENT_CONTROL,
    DIAGNOSIS_CONTROL,
    FLAGS,
    FLAGS_CONTROL,
    IMAGE_OBJECT,
    LEGACY_CHOICES,
    PAPER,
    SETTINGS_TABLE,
    DiagnosisList,
)

LABEL_CONFIG: Traversable = files("curate.label") / "label_config.xml"
# name -> tag of every element the toolkit reads; a control (an element with toName) outside it is refused.
CONTROLS = {DIAGNOSIS_CONTROL: "Choices", FLAGS_CONTROL: "Choices", BOX_CONTROL: "RectangleLabels", COMMENT_CONTROL: "TextArea"}


def template(path: Traversable = LABEL_CONFIG) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelError(f"cannot read {path}: {exc.strerror}") from exc


def _parse(text: str, where: str) -> ET.Element:
    try:
        return ET.fromstring(text, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except ET.ParseError as exc:
        raise LabelError(f"{where}: not valid XML ({exc})") from None


def _controls(root: ET.Element, where: str) -> dict[str, ET.Element]:
    found: dict[str, ET.Element] = {}
    images = [e for e in root.iter("Image") if e.get("name") == IMAGE_OBJECT]
    if not images:
        raise LabelError(f'{where}: no <Image name="{IMAGE_OBJECT}"> (the toolkit puts the photo there)')
    for e in root.iter():
        if e.get("toName") is None:
            continue
        name = e.get("name")
        if name not in CONTROLS:
            raise LabelError(f"{where}: control {name!r} is not read by the toolkit (known: {', '.join(CONTROLS)})")
        if e.tag != CONTROLS[name] or name in found:
            raise LabelError(f"{where}: control {name!r} must be one <{CONTROLS[name]}>")
        found[name] = e
    for name, tag in CONTROLS.items():
        if name not in found:
            raise LabelError(f'{where}: no <{tag} name="{name}"> (the toolkit reads it)')
    return found


def check(text: str, diagnoses: DiagnosisList, where: str = "label_config.xml") -> dict[str, ET.Element]:
    """Raise LabelError (one line, naming the file) when the config does not fit the toolkit or the settings."""
    root = _parse(text, where)
    controls = _controls(root, where)
    dx = controls[DIAGNOSIS_CONTROL]
    if dx.get("choice", "single") != "single":
        raise LabelError(f'{where}: the diagnosis control must allow one choice (choice="single")')
    known = {**PAPER.by_choice, **diagnoses.by_choice}
    for c in dx.iter("Choice"):
        value = c.get("value")
        if value not in known:
            raise LabelError(f"{where}: diagnosis choice {value!r} is not declared in the workspace settings "
                             f"({SETTINGS_TABLE}.diagnoses in curate.toml); declare it there")
    flags = [c.get("value") for c in controls[FLAGS_CONTROL].iter("Choice")]
    if sorted(flags) != sorted(FLAGS.values()):
        raise LabelError(f"{where}: the flags control must offer exactly {', '.join(map(repr, FLAGS.values()))}")
    return controls


def render(diagnoses: DiagnosisList, text: str | None = None, where: str | None = None) -> str:
    """The config Label Studio gets: `text` (default label_config.xml) with the declared diagnosis choices.

    A choice already in the XML keeps its attributes (e.g. a hotkey); the others are added plainly,
    in the declared order; defaults the study does not declare and the retired "Other / not assessable" are dropped.
    """
    where = where or (LABEL_CONFIG.name if text is None else "label config")
    text = template() if text is None else text
    check(text, diagnoses, where)
    root = _parse(text, where)
    dx = next(e for e in root.iter("Choices") if e.get("name") == DIAGNOSIS_CONTROL)
    children = list(dx)
    old = {c.get("value"): c for c in children if c.tag == "Choice" and c.get("value") not in LEGACY_CHOICES}
    sep = children[0].tail if children and children[0].tail else None
    last = children[-1].tail if children else None
    for c in children:
        dx.remove(c)
    for name in diagnoses.names.values():
        c = old.get(name)
        if c is None:
            c = ET.Element("Choice", {"value": name})
        c.tail = sep
        dx.append(c)
    if len(dx):
        dx[-1].tail = last
    return ET.tostring(root, encoding="unicode")
