"""0007: a catalogue whose projects lived on one server migrates without losing a row (0004 -> 0006 -> 0007)."""

from __future__ import annotations

import sqlalchemy as sa

from db.engine import make_engine
from db.migrate import upgrade


def test_projects_inherit_their_rounds_server(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0004_export")
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO label_rounds (id, kind, name, raters, server_url, created_at) VALUES "
                "(1, 'rating', 'Round 1', '[\"a@x.test\", \"b@x.test\"]', 'http://127.0.0.1:8080', CURRENT_TIMESTAMP)"
            )
        )
        c.execute(
            sa.text(
                "INSERT INTO label_projects (id, round_id, rater, ls_project_id, created_at) VALUES "
                "(1, 1, 'a@x.test', 7, CURRENT_TIMESTAMP), (2, 1, 'b@x.test', 8, CURRENT_TIMESTAMP)"
            )
        )
    upgrade(engine)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT id, rater, ls_project_id, server_url FROM label_projects ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (1, "a@x.test", 7, "http://127.0.0.1:8080"),
        (2, "b@x.test", 8, "http://127.0.0.1:8080"),
    ]
    engine.dispose()
