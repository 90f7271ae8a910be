"""A catalogue made before the declared diagnosis list (revision 0004) upgrades without losing a row.

The old combined choice "Other / not assessable" (code `other`) becomes `not_assessable`, which the
export still leaves out, now under that reason (SQLite and PostgreSQL).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from sqlmodel import select

from curate.export.exclusions import catalogue_exclusions
from curate.label.consensus import PAPER
from curate.label.recompute import write_consensus
from curate.label.rules import recorded_rules
from curate.workspace import Workspace
from db.engine import make_engine
from db.migrate import alembic_config, current_revision, head_revision, upgrade
from db.models.label import Consensus, LabelAnnotation

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# image id -> (consensus status, consensus diagnosis, rater A's diagnosis, rater B's diagnosis)
OLD = {
    1: ("agreed", "other", "other", "other"),
    2: ("agreed", "mpox", "mpox", "mpox"),
    3: ("adjudicated", "other", "other", "dermatosis"),
    4: ("pending", None, "other", None),
}


def insert(c, table: str, rows: list[dict]) -> None:
    cols = list(rows[0])
    c.execute(sa.text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + k for k in cols)})"), rows)


def old_catalogue(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0004_export")
    assert current_revision(engine) == "0004_export"
    with engine.begin() as c:
        insert(
            c,
            "images",
            [
                dict(
                    id=i,
                    sha256=f"{i:064x}",
                    size_bytes=10,
                    format="JPEG",
                    width=20,
                    height=10,
                    mode="RGB",
                    frames=1,
                    has_exif=False,
                    has_gps=False,
                    has_camera_serial=False,
                    created_at=NOW,
                )
                for i in OLD
            ],
        )
        insert(
            c,
            "consensus",
            [
                dict(image_id=i, status=st, diagnosis=dx, method="m", n_raters=2, boxes="[]", updated_at=NOW)
                for i, (st, dx, _, _) in OLD.items()
            ],
        )
        insert(
            c,
            "label_rounds",
            [
                dict(
                    id=1,
                    kind="rating",
                    name="Round 1",
                    raters='["a@x.org", "b@x.org"]',
                    server_url="http://127.0.0.1:1",
                    created_at=NOW,
                )
            ],
        )
        insert(
            c,
            "label_projects",
            [
                dict(id=k, round_id=1, rater=r, ls_project_id=k, created_at=NOW)
                for k, r in ((1, "a@x.org"), (2, "b@x.org"))
            ],
        )
        tasks, anns = [], []
        for i, (_, _, da, db) in OLD.items():
            for project, dx in ((1, da), (2, db)):
                tid = 10 * i + project
                tasks.append(dict(id=tid, project_id=project, image_id=i, ls_task_id=tid, created_at=NOW))
                if dx is not None:
                    anns.append(
                        dict(
                            task_id=tid,
                            ls_annotation_id=tid,
                            revision=1,
                            rater=("a@x.org", "b@x.org")[project - 1],
                            diagnosis=dx,
                            boxes="[]",
                            flags="[]",
                            cancelled=False,
                            withdrawn=False,
                            content_sha256="0" * 64,
                            raw="{}",
                            fetched_at=NOW,
                        )
                    )
        insert(c, "label_tasks", tasks)
        insert(c, "label_annotations", anns)
    engine.dispose()


def test_old_other_becomes_not_assessable_and_nothing_is_lost(db_url, tmp_path):
    old_catalogue(db_url)
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    assert current_revision(ws.engine) == head_revision()
    with ws.session() as s:
        cons = {c.image_id: (c.status, c.diagnosis) for c in s.exec(select(Consensus)).all()}
        anns = sorted((a.task_id, a.diagnosis) for a in s.exec(select(LabelAnnotation)).all())
        assert recorded_rules(s) == PAPER  # no rule recorded yet: the paper's
    assert cons == {
        1: ("agreed", "not_assessable"),
        2: ("agreed", "mpox"),
        3: ("adjudicated", "not_assessable"),
        4: ("pending", None),
    }
    assert anns == [
        (11, "not_assessable"),
        (12, "not_assessable"),
        (21, "mpox"),
        (22, "mpox"),
        (31, "not_assessable"),
        (32, "dermatosis"),
        (41, "not_assessable"),
    ]
    with ws.session() as s:
        assert catalogue_exclusions(s, {2}, {}) == {"not_assessable": 2, "pending": 1}
        counts = write_consensus(s)  # recomputing from the migrated annotations agrees with the migrated consensus
        assert counts == {"agreed": 2, "pending": 2}
        assert s.get(Consensus, 1).diagnosis == "not_assessable"


def test_downgrade_folds_both_outcomes_back_into_other(tmp_path):
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    old_catalogue(url)
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE consensus SET diagnosis = 'other_diagnosis' WHERE image_id = 2"))
    command.downgrade(alembic_config(engine), "0004_export")
    with engine.connect() as c:
        rows = dict(c.execute(sa.text("SELECT image_id, diagnosis FROM consensus")).all())
        assert "label_rules" not in sa.inspect(c).get_table_names()
    assert rows == {1: "other", 2: "other", 3: "other", 4: None}
