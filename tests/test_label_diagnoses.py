"""The study's diagnosis list in the workspace settings, and label_config.xml checked and rendered from it."""

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import ConfigError, LabelError
from curate.label.config import render, template
from curate.label.diagnoses import NOT_ASSESSABLE, OTHER, PAPER, DiagnosisList
from curate.workspace import Workspace

STUDY = """
[labels]
positive = ["mpox"]
diagnoses = [
  { slug = "mpox", name = "Mpox" },
  { slug = "genital_herpes", name = "Genital herpes" },
  { slug = "chickenpox", name = "Chickenpox" },
  { slug = "measles", name = "Measles" },
]
"""


def study_ws(tmp_path, body: str = STUDY) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "curate.toml").write_text("# mpox-curate workspace\n" + body)
    return Workspace.open(ws.root)


def choices(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    dx = next(e for e in root.iter("Choices") if e.get("name") == "diagnosis")
    return [c.get("value") for c in dx.iter("Choice")]


def test_default_is_the_papers_eight_and_two_outcomes(sqlite_ws):
    d = sqlite_ws.diagnoses
    assert d == PAPER and len(d.declared) == 8 and d.positive == ("mpox",)
    assert d.codes[-2:] == [OTHER, NOT_ASSESSABLE]
    assert (
        d.binary_label("mpox"),
        d.binary_label("dermatosis"),
        d.binary_label(OTHER),
        d.binary_label(NOT_ASSESSABLE),
    ) == ("mpox", "non_mpox", "non_mpox", None)
    assert d.name("genital_herpes") == "Genital herpes" and d.name(OTHER) == "Other diagnosis"
    # older Label Studio projects still offer the retired combined choice: it means "not assessable"
    assert d.by_choice["Other / not assessable"] == NOT_ASSESSABLE


def test_a_study_declares_chickenpox_and_measles(tmp_path):
    d = study_ws(tmp_path).diagnoses
    assert d.codes == ["mpox", "genital_herpes", "chickenpox", "measles", OTHER, NOT_ASSESSABLE]
    assert d.binary_label("measles") == "non_mpox" and d.name("chickenpox") == "Chickenpox"
    with pytest.raises(ConfigError, match="'dermatosis' is not declared"):
        d.binary_label("dermatosis")
    xml = render(d)
    assert choices(xml) == ["Mpox", "Genital herpes", "Chickenpox", "Measles", "Other diagnosis", "Not assessable"]
    assert (
        'name="flags"' in xml and 'name="lesion"' in xml and 'choice="single-radio"' in xml
    )  # the rest of the layout untouched


def test_two_positive_diagnoses_and_renamed_outcomes(tmp_path):
    d = study_ws(
        tmp_path,
        """
[labels]
positive = ["mpox_clade_i", "mpox_clade_ii"]
other = "Andere Diagnose"
not_assessable = "Nicht beurteilbar"
diagnoses = [{ slug = "mpox_clade_i", name = "Mpox clade I" }, { slug = "mpox_clade_ii", name = "Mpox clade II" },
             { slug = "herpes", name = "Herpes" }]
""",
    ).diagnoses
    assert [d.binary_label(c) for c in d.codes] == ["mpox", "mpox", "non_mpox", "non_mpox", None]
    assert choices(render(d))[-2:] == ["Andere Diagnose", "Nicht beurteilbar"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("[labels]\ndiagnoses = []", "labels.diagnoses is empty"),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, { slug = "mpox", name = "Monkeypox" }]',
            r"labels.diagnoses\[1\].slug 'mpox' is declared twice \(also diagnoses\[0\]\)",
        ),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, { slug = "mpx", name = "mpox" }]',
            r"labels.diagnoses\[1\].name 'mpox' is used twice",
        ),
        ('[labels]\npositive = ["smallpox"]', "labels.positive names 'smallpox', which is not a declared diagnosis"),
        ("[labels]\npositive = []", "labels.positive is empty"),
        ('[labels]\npositive = "mpox"', "labels.positive must be a list"),
        ('[labels]\ndiagnoses = [{ slug = "herpes", name = "Herpes" }]', "labels.positive is missing"),
        (
            '[labels]\ndiagnoses = [{ slug = "Chicken pox", name = "Chickenpox" }]',
            r"labels.diagnoses\[0\].slug 'Chicken pox' must be lower-case",
        ),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, { slug = "not_assessable", name = "N/A" }]',
            "is reserved",
        ),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, { slug = "neither", name = "Neither" }]',
            "'neither' is the reviewer's discard",
        ),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }, '
            '{ slug = "none", name = "Neither (discard this image)" }]',
            r"labels.diagnoses\[1\].name 'Neither \(discard this image\)' is reserved",
        ),
        ('[labels]\ndiagnoses = [{ slug = "mpox" }]', r"labels.diagnoses\[0\] must be \{ slug"),
        (
            '[labels]\ndiagnoses = [{ slug = "mpox", name = "" }]',
            r"labels.diagnoses\[0\].name must be a non-empty display name",
        ),
        ('[labels]\nother = "Mpox"', r"labels.other 'Mpox' is used twice \(also diagnoses\[0\].name 'Mpox'"),
        ('[labels]\npositives = ["mpox"]', "labels.positives is not a setting"),
        ('labels = "mpox"', "labels must be a table"),
    ],
)
def test_settings_errors_name_the_field(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as err:
        study_ws(tmp_path, body)
    assert "curate.toml: " in str(err.value) and "\n" not in str(err.value)


MPOX = '{ slug = "mpox", name = "Mpox" }'


@pytest.mark.parametrize(
    "entries, extra, message",
    [
        # TOML decodes the escapes; the message shows the value escaped, as repr() does
        (['{ slug = "measles\\n", name = "Measles" }'], "", "labels.diagnoses[1].slug 'measles\\n' must be lower-case"),
        (
            ['{ slug = "cafe", name = "Caf\\u00e9" }', '{ slug = "cafe2", name = "Cafe\\u0301" }'],
            "",
            "labels.diagnoses[2].name 'Caf\u00e9' is used twice (also diagnoses[1].name 'Caf\u00e9'",
        ),
        (
            ['{ slug = "measles", name = "Measles" }', '{ slug = "fw", name = "\\uff2d\\uff45asles" }'],
            "",
            "labels.diagnoses[2].name '\uff2d\uff45asles' is used twice (also diagnoses[1].name 'Measles'",
        ),
        (
            ['{ slug = "measles", name = "Measles" }', '{ slug = "measles2", name = "Measles\\u200b" }'],
            "",
            "labels.diagnoses[2].name 'Measles\\u200b' contains U+200B, an invisible or control character",
        ),
        (
            ['{ slug = "herpes", name = "Genital herpes" }', '{ slug = "herpes2", name = "Genital\\u00a0herpes" }'],
            "",
            "labels.diagnoses[2].name 'Genital\\xa0herpes' must separate words with single plain spaces",
        ),
        (
            ['{ slug = "herpes", name = "Genital herpes" }', '{ slug = "herpes2", name = "Genital  herpes" }'],
            "",
            "labels.diagnoses[2].name 'Genital  herpes' must separate words with single plain spaces",
        ),
        (['{ slug = "measles", name = "Measles " }'], "", "labels.diagnoses[1].name 'Measles ' must separate words"),
        (
            ['{ slug = "measles", name = "Meas\\u001b[31mles" }'],
            "",
            "labels.diagnoses[1].name 'Meas\\x1b[31mles' contains U+001B",
        ),
        (
            ['{ slug = "measles", name = "\\u202eselsaeM" }'],
            "",
            "labels.diagnoses[1].name '\\u202eselsaeM' contains U+202E",
        ),
        (
            ['{ slug = "na", name = "Other / not assessable" }'],
            "",
            "labels.diagnoses[1].name 'Other / not assessable' is reserved: 'Other / not assessable' is the retired",
        ),
        (
            ['{ slug = "na", name = "other / NOT assessable" }'],
            "",
            "labels.diagnoses[1].name 'other / NOT assessable' is reserved: 'Other / not assessable' is the retired",
        ),
        ([], 'other = "Keep the current consensus"', "labels.other 'Keep the current consensus' is reserved"),
        ([], 'not_assessable = "Other diagnosis"', "labels.not_assessable 'Other diagnosis' is used twice (also other"),
        # Cyrillic М, р, о, х: "Mpox" on a radio button, all of it or one letter
        (
            ['{ slug = "mpox2", name = "\u041c\u0440\u043e\u0445" }'],
            "",
            "labels.diagnoses[1].name 'Мрох' is used twice (also diagnoses[0].name 'Mpox'",
        ),
        (
            ['{ slug = "mpox2", name = "\u041cpox" }'],
            "",
            "labels.diagnoses[1].name 'Мpox' is used twice (also diagnoses[0].name 'Mpox'; names differing "
            "only in case, width, spacing or letters of another script",
        ),
        # Greek capital omicron
        ([], 'other = "\u039fther / not assessable"', "labels.other 'Οther / not assessable' is reserved"),
    ],
)
def test_names_raters_could_not_tell_apart_are_refused(tmp_path, entries, extra, message):
    body = f"[labels]\n{extra}\ndiagnoses = [{', '.join([MPOX, *entries])}]\n"
    with pytest.raises(ConfigError) as err:
        study_ws(tmp_path, body)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_name_in_another_script_that_looks_like_no_other_is_kept(tmp_path):
    """Cyrillic "Корь" (measles) shares letters with Latin ones but reads as no declared name."""
    body = f'[labels]\ndiagnoses = [{MPOX}, {{ slug = "measles", name = "\u041a\u043e\u0440\u044c" }}]\n'
    ws = study_ws(tmp_path, body)
    assert "\u041a\u043e\u0440\u044c" in [name for _, name in ws.diagnoses.declared]


def test_a_decomposed_name_is_stored_composed(tmp_path):
    d = study_ws(
        tmp_path, f'[labels]\ndiagnoses = [{MPOX}, {{ slug = "cafe", name = "Cafe\\u0301 au lait" }}]\n'
    ).diagnoses
    assert d.name("cafe") == "Caf\u00e9 au lait" and "Caf\u00e9 au lait" in choices(render(d))


def test_cli_reports_a_bad_list_in_one_line(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "curate.toml").write_text('[labels]\npositive = ["smallpox"]\n')
    out = CliRunner().invoke(app, ["status", "-w", str(ws.root)])
    assert out.exit_code == 1 and "labels.positive names 'smallpox'" in out.output and "Traceback" not in out.output


def test_cli_shows_a_control_character_in_a_name_escaped(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "curate.toml").write_text(
        f'[labels]\ndiagnoses = [{MPOX}, {{ slug = "m", name = "Meas\\u001b[2Jles" }}]\n'
    )
    out = CliRunner().invoke(app, ["status", "-w", str(ws.root)])
    assert out.exit_code == 1 and "\x1b" not in out.output
    assert "labels.diagnoses[1].name 'Meas\\x1b[2Jles' contains U+001B" in " ".join(out.output.split())


def test_config_choice_not_in_the_settings_is_a_mismatch():
    xml = template().replace(
        '<Choice value="Healthy skin" hotkey="8"/>', '<Choice value="Healthy skin"/><Choice value="Scabies"/>'
    )
    with pytest.raises(LabelError, match="diagnosis choice 'Scabies' is not declared in the workspace settings"):
        render(PAPER, xml)
    declared = DiagnosisList(declared=PAPER.declared + (("scabies", "Scabies"),))
    assert choices(render(declared, xml))[-3:] == ["Scabies", "Other diagnosis", "Not assessable"]


def test_choice_attributes_survive_and_the_retired_choice_is_dropped():
    xml = (
        template()
        .replace('<Choice value="Mpox" hotkey="1"/>', '<Choice value="Mpox" hint="umbilicated" hotkey="m"/>')
        .replace(
            '<Choice value="Not assessable" hotkey="a"/>',
            '<Choice value="Not assessable"/><Choice value="Other / not assessable"/>',
        )
    )
    out = render(PAPER, xml)
    # the hint stays; the hotkey is the renderer's (display order), so keys stay unique whatever the XML says
    assert '<Choice value="Mpox" hint="umbilicated" hotkey="1" />' in out and "Other / not assessable" not in out
    assert choices(out) == list(PAPER.names.values())


@pytest.mark.parametrize(
    "edit, message",
    [
        (('name="diagnosis"', 'name="dx"'), "control 'dx' is not read by the toolkit"),
        (('<TextArea name="comment"', '<TextArea name="comment2"'), "control 'comment2' is not read"),
        (('choice="single-radio"', 'choice="multiple"'), "must allow one choice"),
        (('<Choice value="Image quality too low" hotkey="q"/>', ""), "the flags control must offer exactly"),
        (('<Image name="image"', '<Image name="photo"'), 'no <Image name="image">'),
        (("</View>", ""), "not valid XML"),
        (
            ("<!-- diagnoses: end -->", ""),
            "need one <!-- diagnoses: begin --> and, after it, one <!-- diagnoses: end -->",
        ),
        (
            (
                '<!-- diagnoses: begin -->\n        <Choice value="Mpox" hotkey="1"/>',
                '<Choice value="Mpox"/><!-- diagnoses: begin -->',
            ),
            "every diagnosis choice must sit between",
        ),
        (('hotkey="q"', 'hotkey="i"'), "hotkey 'i' is used by both"),
    ],
)
def test_broken_configs_are_one_line_errors(edit, message):
    with pytest.raises(LabelError, match=message) as err:
        render(PAPER, template().replace(*edit))
    assert "\n" not in str(err.value)


def hotkeys_of(xml: str) -> dict[str, str | None]:
    return {e.get("value"): e.get("hotkey") for e in ET.fromstring(xml).iter() if e.tag in ("Choice", "Label")}


def keys_line(xml: str) -> str:
    return next(e.get("value") for e in ET.fromstring(xml).iter("Text") if e.get("name") == "keys")


def test_the_papers_config_is_the_template_with_its_keys_listed():
    out = render(PAPER)
    assert choices(out) == choices(template()) and hotkeys_of(out) == hotkeys_of(
        template()
    )  # the file shows what is pushed
    assert [hotkeys_of(out)[n] for n in PAPER.names.values()] == [*"123456789", "a"]
    assert keys_line(out) == keys_line(template()) == "Keys: 1-9, A diagnosis · B box · I, Q flags · Ctrl+Enter submit"


@pytest.mark.parametrize("extra", [2, 40])
def test_hotkeys_stay_unique_past_nine_choices(extra):
    """The paper's eight + chickenpox + measles + the two outcomes = 12 choices; a long list runs out of keys."""
    added = (
        (("chickenpox", "Chickenpox"), ("measles", "Measles"))
        if extra == 2
        else tuple((f"dx{i}", f"Diagnosis {i}") for i in range(extra))
    )
    d = DiagnosisList(declared=PAPER.declared + added)
    out = render(d)
    keys = hotkeys_of(out)
    given = [keys[n] for n in d.names.values()]
    used = [k for k in keys.values() if k]
    assert len(used) == len(set(used))  # no key selects two things
    assert not {"b", "i", "q"} & set(given) and not set("ehkmopruvw") & set(given)  # box, flags, Label Studio's tools
    assert given[:9] == list("123456789")
    if extra == 2:
        assert given[9:] == ["a", "c", "d"] and keys_line(out).startswith("Keys: 1-9, A, C, D diagnosis · B box")
    else:
        assert all(given[:22]) and given[22:] == [None] * (len(given) - 22)  # past the free keys: none, never a clash


@pytest.mark.parametrize(
    "body, said",
    [
        (
            '[lables]\npositive = ["mpox"]\ndiagnoses = [{ slug = "mpox", name = "Mpox" }]\n',
            "'lables' is not a setting",
        ),
        ("foo = 1\n", "'foo' is not a setting"),
        ('backend = "mysql"\n', 'backend must be "sqlite" or "postgresql", not \'mysql\''),
    ],
)
def test_a_misspelled_table_or_unknown_key_in_curate_toml_is_refused(tmp_path, body, said):
    """Before: `[lables]` (or any unknown key) was ignored, and the study's declared list silently became the
    paper's eight: its chickenpox images could not be labelled, and its export listed eight diagnoses."""
    from curate.errors import WorkspaceError

    ws = Workspace.init(tmp_path / "ws")
    marker = ws.root / "curate.toml"
    marker.write_text(marker.read_text().replace('backend = "sqlite"\n', "") + body)
    with pytest.raises(WorkspaceError, match=f"{marker}: {said}"):
        Workspace.open(ws.root)
