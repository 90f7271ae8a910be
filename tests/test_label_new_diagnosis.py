"""A diagnosis declared while a round is running reaches that round's raters.

The same rater pair keeps its round, so before, the projects of round 1 kept offering the choices of the day
they were made: a study that added measles mid-way could never have a photo labelled measles.
"""

from __future__ import annotations

import pytest
from sqlmodel import select
from studio_server import RATERS
from test_label_diagnoses import STUDY, choices
from test_studio_round import add_images, annotate, result

from curate.errors import LabelError
from curate.label.pull import pull
from curate.label.rounds import push
from curate.workspace import Workspace
from db.models.label import Consensus, LabelAnnotation

pytestmark = [pytest.mark.studio, pytest.mark.slow]
A, B, _ = RATERS


def test_a_diagnosis_declared_mid_round_is_offered_and_pulled(studio_server, studio_workspace):
    fx, ws = studio_server, studio_workspace
    _, second = add_images(ws, 2)
    res = push(ws, fx.servers(), [A, B], limit=1)
    for rater in (A, B):
        assert "Measles" not in choices(fx.client(rater)._ls.projects.get(res.projects[rater]).label_config)
    (ws.root / "curate.toml").write_text((ws.root / "curate.toml").read_text() + STUDY)
    ws = Workspace.open(ws.root)
    again = push(ws, fx.servers(), [A, B])
    assert again.round_id == res.round_id and again.projects == res.projects  # the same round, the same projects
    for rater in (A, B):
        offered = choices(fx.client(rater)._ls.projects.get(res.projects[rater]).label_config)
        assert "Measles" in offered and "Chickenpox" in offered
        annotate(fx, ws, rater, second, result("Measles"))
    pull(ws, fx.servers())
    with ws.session() as s:
        agreed = s.exec(select(Consensus).where(Consensus.image_id == second)).one()
    assert agreed.diagnosis == "measles"


def test_a_renamed_diagnosis_stops_the_pull_in_one_line_recording_nothing(studio_server, studio_workspace):
    """Rounds pushed before a rename offer the old name: every annotation using it is counted, and what
    to do is said; nothing of the pull is recorded."""
    fx, ws = studio_server, studio_workspace
    (ws.root / "curate.toml").write_text((ws.root / "curate.toml").read_text() + STUDY)
    ws = Workspace.open(ws.root)
    (image,) = add_images(ws, 1)
    push(ws, fx.servers(), [A, B])
    for rater in (A, B):
        annotate(fx, ws, rater, image, result("Chickenpox"))
    toml = ws.root / "curate.toml"
    toml.write_text(toml.read_text().replace('name = "Chickenpox"', 'name = "Varicella"'))
    with pytest.raises(
        LabelError,
        # whose project on which server (every server numbers its projects from 1), and both causes
        match=r"2 annotation\(s\) could not be read, so nothing was recorded: [ab]@clinic\.test's project \d+ on "
        r"http://127\.0\.0\.1:\d+, task \d+ annotation \d+: diagnosis 'Chickenpox' is not declared.*\(and 1 more\); "
        r"that project's label config may have been edited in Label Studio.*declare that name again",
    ):
        pull(Workspace.open(ws.root), fx.servers())
    with ws.session() as s:
        assert not s.exec(select(LabelAnnotation)).all()
