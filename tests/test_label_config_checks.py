"""label_config.xml edits Label Studio would obey but that lose answers at pull or bias raters: refused in one line."""

import xml.etree.ElementTree as ET

import pytest

from curate.errors import LabelError
from curate.label.adjudication import adjudication_config
from curate.label.audit_push import audit_config
from curate.label.config import check, render, template
from curate.label.diagnoses import PAPER, DiagnosisList

MPOX = '<Choice value="Mpox" hotkey="1"/>'
DX = '<Choices name="diagnosis" toName="image" choice="single-radio" required="true"'
IMAGE = '<Image name="image" value="$image"'


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            (MPOX, '<Choice value="Mpox" alias="MPX" hotkey="1"/>'),
            """<Choice value='Mpox'> of <Choices name="diagnosis"> alias='MPX' makes Label Studio store the alias""",
        ),
        (
            (MPOX, '<Choice value="Mpox" selected="true" hotkey="1"/>'),
            """<Choice value='Mpox'> of <Choices name="diagnosis"> selected='true' pre-selects it""",
        ),
        (
            (MPOX, '<Choice value="Mpox" html="&lt;b&gt;Measles&lt;/b&gt;" hotkey="1"/>'),
            "html='<b>Measles</b>' shows raters other text than the value stored",
        ),
        (
            (
                '<Choice value="Image quality too low" hotkey="q"/>',
                '<Choice value="Image quality too low" selected="1"/>',
            ),
            """<Choice value='Image quality too low'> of <Choices name="flags"> selected='1' pre-selects it""",
        ),
        (
            (DX, DX + ' value="$options"'),
            """<Choices name="diagnosis"> value='$options' takes the choices from each task's data""",
        ),
        ((DX, DX + ' perRegion="true"'), """<Choices name="diagnosis"> perRegion='true' asks once per box"""),
        (
            (DX, DX + ' visibleWhen="region-selected"'),
            """<Choices name="diagnosis"> visibleWhen='region-selected' hides the question""",
        ),
        (
            ('<Choices name="flags" toName="image"', '<Choices name="flags" toName="image" perRegion="true"'),
            """<Choices name="flags"> perRegion='true'""",
        ),
        (
            ('required="true"', 'required="false"'),
            """<Choices name="diagnosis"> has required='false'; it must be required="true\"""",
        ),
        ((' required="true"', ""), """<Choices name="diagnosis"> has no required; it must be required="true\""""),
        (
            ('<Choices name="diagnosis" toName="image"', '<Choices name="diagnosis" toName="photo2"'),
            """<Choices name="diagnosis"> toName='photo2' must be 'image' (the task's photo)""",
        ),
        (
            ('<RectangleLabels name="lesion" toName="image"', '<RectangleLabels name="lesion" toName="image,photo2"'),
            """<RectangleLabels name="lesion"> toName='image,photo2' must be 'image'""",
        ),
        ((IMAGE, '<Image name="image" value="$photo"'), """<Image name="image"> value='$photo' must be '$image'"""),
        ((IMAGE, IMAGE + "/>" + IMAGE), """<Image name="image"> must be one element, not 2"""),
        (
            (
                "<!-- diagnoses: end -->\n",
                '<!-- diagnoses: end -->\n<View><Choice value="Other / not assessable"/></View>',
            ),
            "every diagnosis choice must sit between",
        ),
    ],
)
def test_edits_that_lose_or_bias_answers_are_refused(edit, message):
    xml = template().replace(*edit)
    assert xml != template()
    xml = xml.replace("</View>\n    <View", '<Image name="photo2" value="$image2"/></View>\n    <View', 1)
    assert "photo2" in xml  # a second picture: the one a wrong toName points at
    with pytest.raises(LabelError) as err:
        render(PAPER, xml, where="label_config.xml")
    assert str(err.value).startswith("label_config.xml: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("attr", ['perRegion="false"', 'selected="false"'])
def test_false_flags_are_harmless(attr):
    xml = template().replace(DX, DX + ' perRegion="false"') if attr.startswith("per") else template()
    xml = xml.replace(MPOX, f'<Choice value="Mpox" {attr} hotkey="1"/>')
    assert "Mpox" in render(PAPER, xml)


def test_the_packaged_config_and_what_render_writes_pass():
    check(template(), PAPER)
    check(
        template().replace("</View>\n    <View", '<Image name="photo2" value="$image2"/></View>\n    <View', 1), PAPER
    )
    check(render(PAPER), PAPER)
    study = DiagnosisList(declared=PAPER.declared + (("measles", "Measles"),))
    check(render(study), study)


def test_a_decomposed_choice_in_the_file_keeps_its_hint_and_is_pushed_composed():
    d = DiagnosisList(declared=(("mpox", "Mpox"), ("cafe", "Caf\u00e9 au lait")))
    xml = template().replace(MPOX, MPOX + '<Choice value="Cafe\u0301 au lait" hint="spots"/>')
    out = render(d, xml)
    assert '<Choice value="Caf\u00e9 au lait" hint="spots" hotkey="2" />' in out


@pytest.mark.parametrize("config", [adjudication_config, audit_config])
def test_generated_review_views_are_wired_to_the_photo(config):
    """Review views take their choices from the task by design ($options); the rest follows the same rules."""
    root = ET.fromstring(config())
    assert [e.get("value") for e in root.iter("Image")] == ["$image"]
    controls = [e for e in root.iter() if e.get("toName") is not None]
    assert controls and all(e.get("toName") == "image" for e in controls)
    dx = next(e for e in controls if e.get("name") == "diagnosis")
    assert dx.get("required") == "true" and dx.get("value") == "$options" and dx.get("perRegion") is None
    assert not [c for c in root.iter("Choice") if {"alias", "selected", "html"} & set(c.attrib)]
