"""`--workers`: bounded in the CLI's type, and never more processes than items (a probe's finding: `curate export
--workers 1000000` started processes until the kernel killed one for want of memory; `--workers 30` ran 30
processes for 70 images on two cores)."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from curate.cli import app
from curate.parallel import run_parallel


def test_a_huge_worker_count_is_a_usage_error(tmp_path):
    for command in (["ingest", str(tmp_path), "--source", "x"], ["dedupe"], ["audit", "leakage", "mpox@1.0.0"]):
        res = CliRunner().invoke(app, [*command, "--workers", "1000000", "-w", str(tmp_path)])
        assert res.exit_code == 2, (command, res.output)
        assert "less than or equal to 64" in " ".join(res.output.replace("│", "").split()), res.output


def _pid(_item):
    return os.getpid()


def test_no_more_worker_processes_than_items(monkeypatch):
    """A clean-started pool (forkserver, the leakage audit's) starts every worker it is given at once."""
    import curate.parallel as parallel

    sizes = []

    class Counted(parallel.ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Counted)
    answers: list[tuple[int, int]] = []
    run_parallel(_pid, list(range(3)), answers.extend, workers=30, serial_below=1, start="forkserver")
    assert sizes == [3]
    assert sorted(i for i, _ in answers) == [0, 1, 2] and os.getpid() not in {pid for _, pid in answers}
