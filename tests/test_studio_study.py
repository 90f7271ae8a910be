"""A real Label Studio round for a study that declares chickenpox and measles in its settings."""

import pytest
from label_studio_sdk import LabelStudio
from sqlmodel import select
from studio_server import RATERS
from test_label_diagnoses import STUDY
from test_studio_round import add_images, annotate, result

from curate.label.consensus import LowQuality, ThirdOpinion
from curate.label.diagnoses import NEITHER_CHOICE
from curate.label.pull import pull
from curate.label.rounds import adjudicate, push
from curate.workspace import Workspace
from db.models.label import Consensus

pytestmark = pytest.mark.studio
A, B, C = RATERS
LQ = "Image quality too low"


def outcomes(ws) -> dict[int, tuple]:
    with ws.session() as s:
        return {c.image_id: (c.status, c.diagnosis or c.exclusion) for c in s.exec(select(Consensus)).all()}


def study(studio_workspace) -> Workspace:
    marker = studio_workspace.root / "curate.toml"
    marker.write_text(marker.read_text() + STUDY)
    return Workspace.open(studio_workspace.root)


def test_a_study_labels_chickenpox_and_measles(studio_server, studio_workspace):
    fx = studio_server
    ws = study(studio_workspace)
    client = fx.servers()  # each rater on their own server
    ids = add_images(ws, 6)
    r = push(ws, client, [A, B])
    config = LabelStudio(base_url=fx.urls[A], api_key=fx.admin_token).projects.get(id=r.projects[A]).label_config
    for name in ("Chickenpox", "Measles", "Other diagnosis", "Not assessable"):
        assert f'value="{name}"' in config
    assert "Keys: 1-6 diagnosis" in config  # six choices, six hotkeys, listed
    assert "Genital warts" not in config and "Other / not assessable" not in config  # not declared by this study

    chick, measles, other, na, lq, mpox = ids
    for image, a, b in (
        (chick, ["Chickenpox"], ["Chickenpox"]),
        (measles, ["Measles"], ["Measles"]),
        (other, ["Other diagnosis"], ["Other diagnosis"]),
        (na, ["Not assessable"], ["Not assessable"]),
        (lq, ["Mpox", LQ], ["Mpox"]),
        (mpox, ["Mpox"], ["Mpox"]),
    ):
        annotate(fx, ws, A, image, result(a[0], flags=a[1:]))
        annotate(fx, ws, B, image, result(b[0], flags=b[1:]))
    res = pull(ws, client)
    assert res.rules == {"low_quality": "both", "third_opinion": "discard"} and not res.rules_changed
    got = outcomes(ws)
    assert [got[i] for i in (chick, measles, other, na, lq)] == [
        ("agreed", "chickenpox"),
        ("agreed", "measles"),
        ("agreed", "other_diagnosis"),
        ("agreed", "not_assessable"),
        ("agreed", "mpox"),
    ]

    # --low-quality any: one rater's flag now excludes; the rule is recorded and every later recomputation keeps it
    res = pull(ws, client, low_quality=LowQuality.any)
    assert res.rules_changed and res.rules["low_quality"] == "any" and outcomes(ws)[lq] == ("excluded", "low_quality")
    again = pull(ws, client)
    assert not again.rules_changed and again.rules["low_quality"] == "any" and not again.changed
    assert push(ws, client, [A, B]).pushed == 0  # push recomputes consensus too
    assert outcomes(ws)[lq] == ("excluded", "low_quality") and outcomes(ws)[mpox] == ("agreed", "mpox")


def test_the_recorded_reviewer_rule_offers_the_reviewer_every_declared_diagnosis(studio_server, studio_workspace):
    """`label pull --third-opinion reviewer` records the rule; adjudicate then offers the study's whole list."""
    fx = studio_server
    ws = study(studio_workspace)
    servers = fx.servers()
    (image,) = add_images(ws, 1)
    push(ws, servers, [A, B])
    annotate(fx, ws, A, image, result("Chickenpox"))
    annotate(fx, ws, B, image, result("Mpox"))
    assert pull(ws, servers, third_opinion=ThirdOpinion.reviewer).rules_changed
    adj = adjudicate(ws, servers, C)  # no rule given: the recorded one
    (task,) = LabelStudio(base_url=fx.urls[C], api_key=fx.admin_token).tasks.list(project=adj.projects[C])
    assert [o["value"] for o in task.data["options"]] == [
        "Mpox",
        "Genital herpes",
        "Chickenpox",
        "Measles",
        "Other diagnosis",
        "Not assessable",
        NEITHER_CHOICE,
    ]
    assert "even if neither rater chose it" in task.data["rule"]
    assert "Rater 1: Chickenpox" in task.data["summary"] and "Rater 2: Mpox" in task.data["summary"]
    annotate(fx, ws, C, image, result("Measles"))  # a third diagnosis: under this rule it stands
    pull(ws, servers)
    assert outcomes(ws)[image] == ("adjudicated", "measles")
