"""label_config.xml, the editable default interface, checked and completed from the workspace settings.

The file ships inside the package (curate/label/label_config.xml, read through importlib.resources so a
wheel install finds it); the repository's top-level label_config.xml is a symlink to it, the copy a
steward edits (tests/test_packaging.py fails if the two ever differ).

The file holds the layout and the default diagnosis choices (the paper's eight and the two outcomes);
the choices Label Studio gets are the workspace's declared list (curate.toml `[labels]`), rendered
into the `diagnosis` control between the `<!-- diagnoses: begin -->` and `<!-- diagnoses: end -->`
markers, so a study adds chickenpox and measles in its settings, not in code or XML. A default the
study does not declare is left out. A choice written in the XML that is neither a default nor declared
is a mismatch and stops the push (the steward edited the wrong place), as is a missing control the
toolkit reads or a control it does not. So are edits Label Studio would obey but that lose or bias
answers: a control not pointed at the task's photo, a diagnosis that is not required, choices taken from
task data or asked per box, a choice's alias (stored instead of its value), a pre-selected choice.

Hotkeys of the diagnosis choices are assigned here, in the order clinicians see them: 1-9, then the
letters no other control and no Label Studio tool uses (a study with chickenpox and measles has 12
choices); past those a choice has none. The `keys` line above the choices is written from the
hotkeys the config ends up with, so it never lists a key that does nothing.
"""

from __future__ import annotations

import string
import unicodedata
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
    PAPER,
    SETTINGS_TABLE,
    DiagnosisList,
)

LABEL_CONFIG: Traversable = files("curate.label") / "label_config.xml"
# name -> tag of every element the toolkit reads; a control (an element with toName) outside it is refused.
CONTROLS = {
    DIAGNOSIS_CONTROL: "Choices",
    FLAGS_CONTROL: "Choices",
    BOX_CONTROL: "RectangleLabels",
    COMMENT_CONTROL: "TextArea",
}
SINGLE = ("single", "single-radio")  # Label Studio's one-answer modes (checkbox-style, radio buttons)
BEGIN, END = "diagnoses: begin", "diagnoses: end"  # the comments around the rendered diagnosis choices
KEYS_TEXT = "keys"  # <Text name="keys">: the line listing the hotkeys, written by render()
DIGIT_KEYS = "123456789"
# One-key shortcuts of Label Studio's own (image tools, region unselect): never given to a diagnosis.
STUDIO_KEYS = frozenset("behkmopruvw")
PHOTO = "$image"  # the task data key the toolkit puts each photo's link under
# Attributes of the Choices controls (diagnosis, flags) and of their Choice elements that Label Studio obeys
# but that break pulling the answers back or bias raters; a flag attribute is allowed when "false".
REFUSED_ON_CHOICES = {
    "value": "takes the choices from each task's data instead of this file",
    "perRegion": "asks once per box instead of once per photo",
    "perItem": "asks once per item instead of once per photo",
    "visibleWhen": "hides the question until something else is done",
}
REFUSED_ON_CHOICE = {
    "alias": "makes Label Studio store the alias, which the toolkit does not read",
    "selected": "pre-selects it for every rater (a bias)",
    "html": "shows raters other text than the value stored",
}
FALSE_IS_FINE = ("perRegion", "perItem", "selected")


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
    if len(images) > 1:
        raise LabelError(f'{where}: <Image name="{IMAGE_OBJECT}"> must be one element, not {len(images)}')
    if images[0].get("value") != PHOTO:
        raise LabelError(
            f'{where}: <Image name="{IMAGE_OBJECT}"> value={images[0].get("value")!r} must be {PHOTO!r} '
            "(the task's photo)"
        )
    for e in root.iter():
        if e.get("toName") is None:
            continue
        name = e.get("name")
        if name not in CONTROLS:
            raise LabelError(f"{where}: control {name!r} is not read by the toolkit (known: {', '.join(CONTROLS)})")
        if e.tag != CONTROLS[name] or name in found:
            raise LabelError(f"{where}: control {name!r} must be one <{CONTROLS[name]}>")
        if e.get("toName") != IMAGE_OBJECT:
            raise LabelError(
                f'{where}: <{e.tag} name="{name}"> toName={e.get("toName")!r} must be {IMAGE_OBJECT!r} '
                "(the task's photo)"
            )
        found[name] = e
    for name, tag in CONTROLS.items():
        if name not in found:
            raise LabelError(f'{where}: no <{tag} name="{name}"> (the toolkit reads it)')
    return found


def _refused(e: ET.Element, refused: dict[str, str], what: str, where: str) -> None:
    for attr, why in refused.items():
        v = e.get(attr)
        if v is not None and not (attr in FALSE_IS_FINE and v.strip().lower() == "false"):
            raise LabelError(f"{where}: {what} {attr}={v!r} {why}: remove it")


def _wiring(controls: dict[str, ET.Element], where: str) -> None:
    """Refuse attributes that make Label Studio store what pull cannot read, or show raters a biased form."""
    dx = controls[DIAGNOSIS_CONTROL]
    if dx.get("required") != "true":
        has = "no required" if dx.get("required") is None else f"required={dx.get('required')!r}"
        raise LabelError(
            f'{where}: <Choices name="{DIAGNOSIS_CONTROL}"> has {has}; it must be required="true" '
            "(else a photo can be submitted without a diagnosis)"
        )
    for name in (DIAGNOSIS_CONTROL, FLAGS_CONTROL):
        _refused(controls[name], REFUSED_ON_CHOICES, f'<Choices name="{name}">', where)
        for c in controls[name].iter("Choice"):
            _refused(c, REFUSED_ON_CHOICE, f'<Choice value={c.get("value")!r}> of <Choices name="{name}">', where)


def check(text: str, diagnoses: DiagnosisList, where: str = "label_config.xml") -> dict[str, ET.Element]:
    """Raise LabelError (one line, naming the file) when the config does not fit the toolkit or the settings."""
    return _check(_parse(text, where), diagnoses, where)


def _check(root: ET.Element, diagnoses: DiagnosisList, where: str) -> dict[str, ET.Element]:
    controls = _controls(root, where)
    dx = controls[DIAGNOSIS_CONTROL]
    if dx.get("choice", "single") not in SINGLE:
        raise LabelError(f'{where}: the diagnosis control must allow one choice (choice="single-radio" or "single")')
    _wiring(controls, where)
    _block(dx, where)
    own = {id(c) for c in dx.iter("Choice")}
    seen: dict[str, str] = {}
    for e in root.iter():
        key = (e.get("hotkey") or "").lower()
        if key and id(e) not in own:
            if key in seen:
                raise LabelError(f"{where}: hotkey {key!r} is used by both {seen[key]!r} and {e.get('value')!r}")
            seen[key] = e.get("value") or e.tag
    known = {**PAPER.by_choice, **diagnoses.by_choice}
    for c in dx.iter("Choice"):
        value = c.get("value")
        if value is None or unicodedata.normalize("NFC", value) not in known:
            raise LabelError(
                f"{where}: diagnosis choice {value!r} is not declared in the workspace settings "
                f"({SETTINGS_TABLE}.diagnoses in curate.toml); declare it there"
            )
    flags = [c.get("value") for c in controls[FLAGS_CONTROL].iter("Choice")]
    if sorted(flags) != sorted(FLAGS.values()):
        raise LabelError(f"{where}: the flags control must offer exactly {', '.join(map(repr, FLAGS.values()))}")
    return controls


def _block(dx: ET.Element, where: str) -> tuple[int, int]:
    """The children of the diagnosis control that render() replaces: between the markers, else all of them."""
    children = list(dx)
    marks = [
        (i, c.text.strip())
        for i, c in enumerate(children)
        if c.tag is ET.Comment and (c.text or "").strip() in (BEGIN, END)
    ]
    if not marks:
        return 0, len(children)
    if [m for _, m in marks] != [BEGIN, END]:
        raise LabelError(f"{where}: the diagnosis choices need one <!-- {BEGIN} --> and, after it, one <!-- {END} -->")
    start, stop = marks[0][0] + 1, marks[1][0]
    if any(next(c.iter("Choice"), None) is not None for c in children[:start] + children[stop:]):
        raise LabelError(f"{where}: every diagnosis choice must sit between <!-- {BEGIN} --> and <!-- {END} -->")
    return start, stop


def hotkeys(n: int, taken: set[str]) -> list[str | None]:
    """Keys for `n` diagnosis choices in display order: 1-9, then letters free of `taken` and of Label Studio's own."""
    pool = [k for k in DIGIT_KEYS + string.ascii_lowercase if k not in taken and k not in STUDIO_KEYS]
    return [pool[i] if i < len(pool) else None for i in range(n)]


def _span(keys: list[str]) -> str:
    """ "1-9, A, C" for people: the digit run, then the letters."""
    digits, letters = [k for k in keys if k.isdigit()], [k.upper() for k in keys if not k.isdigit()]
    run = [f"{digits[0]}-{digits[-1]}" if len(digits) > 1 else digits[0]] if digits else []
    return ", ".join(run + letters)


def _keys_line(controls: dict[str, ET.Element]) -> str:
    parts = []
    for name, what, tag in (
        (DIAGNOSIS_CONTROL, "diagnosis", "Choice"),
        (BOX_CONTROL, "box", "Label"),
        (FLAGS_CONTROL, "flags", "Choice"),
    ):
        keys = [e.get("hotkey").lower() for e in controls[name].iter(tag) if e.get("hotkey")]
        if keys:
            parts.append(f"{_span(keys)} {what}")
    return "Keys: " + " · ".join(parts + ["Ctrl+Enter submit"])


def render(diagnoses: DiagnosisList, text: str | None = None, where: str | None = None) -> str:
    """The config Label Studio gets: `text` (default label_config.xml) with the declared diagnosis choices.

    The choices between the markers (every choice, in a config without them) are replaced by the
    declared list in its order; a choice already there keeps its other attributes (e.g. a hint), its
    hotkey is assigned anew; defaults the study does not declare and the retired "Other / not
    assessable" are dropped.
    """
    where = where or (LABEL_CONFIG.name if text is None else "label config")
    text = template() if text is None else text
    root = _parse(text, where)
    controls = _check(root, diagnoses, where)
    dx = controls[DIAGNOSIS_CONTROL]
    start, stop = _block(dx, where)
    children = list(dx)
    block = children[start:stop]
    old = {unicodedata.normalize("NFC", c.get("value")): c for c in block if c.tag == "Choice"}
    if block:
        sep, last = block[0].tail, block[-1].tail
    else:
        sep = last = children[start - 1].tail if start else None
    for c in block:
        dx.remove(c)
    own = {id(c) for c in dx.iter("Choice")} | {id(c) for c in block}
    taken = {e.get("hotkey").lower() for e in root.iter() if e.get("hotkey") and id(e) not in own}
    names = list(diagnoses.names.values())
    for k, (name, key) in enumerate(zip(names, hotkeys(len(names), taken), strict=True)):
        c = old.get(name)
        if c is None:
            c = ET.Element("Choice", {"value": name})
        c.set("value", name)  # the settings' spelling (NFC), whatever normalisation the file used
        c.attrib.pop("hotkey", None)
        if key is not None:
            c.set("hotkey", key)
        c.tail = sep
        dx.insert(start + k, c)
    if names:
        dx[start + len(names) - 1].tail = last
    for t in root.iter("Text"):
        if t.get("name") == KEYS_TEXT:
            t.set("value", _keys_line(controls))
    return ET.tostring(root, encoding="unicode")
