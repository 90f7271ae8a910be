"""Layers only point down: every import in curate/, train/ and db/ (module level or inside a function) is
checked against the graph below; an upward import fails with the module, the line and the import.

    db            shared (no catalogue)        <- train (and its own modules)
      ^               ^
      core (lock, audit)
      ^
    intake -> dedupe -> label -> export        studio (servers) <- label
      ^
    app (workspace, status)  <-  cli

HACKING.md shows the same picture; a new module needs a line in MODULE_LAYER before it passes.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("curate", "train", "db")

# Which layer each module belongs to (longest matching prefix wins).
MODULE_LAYER = {
    "db": "db",
    # shared: no catalogue, no stage; train may import these
    "curate": "shared",  # the package itself (its version)
    "curate.errors": "shared",
    "curate.redact": "shared",
    "curate.privacy": "shared",
    "curate.files": "shared",
    "curate.regular": "shared",
    "curate.numbers": "shared",
    "curate.imaging": "shared",
    "curate.jpeg_damage": "shared",
    "curate.parallel": "shared",
    "curate.output": "shared",
    "curate.net": "shared",
    "curate.plots": "shared",
    "curate.lite0": "shared",
    "curate.dataset": "shared",  # the export's reader contract: what train reads
    "curate.demo": "shared",
    # core: catalogue-aware mechanics every writing command uses
    "curate.lock": "core",
    "curate.audit": "core",
    # the stages, and the Label Studio servers the label stage drives
    "curate.intake": "intake",
    "curate.dedupe": "dedupe",
    "curate.studio": "studio",
    "curate.label": "label",
    "curate.export": "export",
    # app: what puts the stages together for a command
    "curate.workspace": "app",
    "curate.status": "app",
    "curate.cli": "cli",
    "curate.__main__": "cli",
    "train": "train",
}

# The layers each layer may import, besides its own.
MAY_IMPORT = {
    "db": set(),
    "shared": set(),
    "core": {"shared", "db"},
    "intake": {"core", "shared", "db"},
    "dedupe": {"intake", "core", "shared", "db"},
    "studio": {"core", "shared", "db"},
    "label": {"studio", "dedupe", "intake", "core", "shared", "db"},
    "export": {"label", "dedupe", "intake", "core", "shared", "db"},
    "app": {"export", "label", "studio", "dedupe", "intake", "core", "shared", "db"},
    "cli": {"app", "export", "label", "studio", "dedupe", "intake", "core", "shared", "db"},
    "train": {"shared"},  # train reads the export (curate.dataset) and the shared core, never the catalogue
}

# A stage's tables belong to the stage: a stage that imports a later stage's tables reaches up as surely
# as one that imports its code.
STAGES = ("intake", "dedupe", "studio", "label", "export")
TABLES = {
    "db.models.intake": "intake",
    "db.models.dedupe": "dedupe",
    "db.models.label": "label",
    "db.models.export": "export",
}

# Upward imports that must remain for now, each with its reason. An entry no import matches any more
# fails the test, so it is deleted when its reason ends.
ALLOWED_UPWARD = {
    # The representative rule reads which images are already in labelling / have a final consensus, so
    # that a re-run never moves a cluster's label to an unlabelled copy. Passing that in from the CLI
    # would let every library caller (tests, benchmarks, the pipeline) silently re-pick representatives.
    ("curate.dedupe.run", "curate.label.diagnoses"): "representatives stay the images already labelled",
    ("curate.dedupe.run", "db.models.label"): "representatives stay the images already labelled",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module it imports
    line: int
    nested: bool  # inside a function or class


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import of our own packages in one file, at any depth, relative ones resolved."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nested_lines = {
        n.lineno
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for n in ast.walk(fn)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg
            targets = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}", root) else base for a in node.names]
        else:
            continue
        for t in dict.fromkeys(targets):
            if t.split(".")[0] in PACKAGES:
                out.append(Import(module, t, node.lineno, node.lineno in nested_lines))
    return out


def layer_of(module: str) -> str | None:
    """The layer of `module`: its own entry, else its nearest listed package's (never the bare `curate`
    entry: that is the package file alone, so an unlisted curate module has no layer)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in MODULE_LAYER and (n == len(parts) or prefix != "curate"):
            return MODULE_LAYER[prefix]
    return None


def table_modules(imp: Import, path: Path) -> list[str]:
    """`from db.models import X, Y`: the table modules that define X and Y."""
    if imp.target != "db.models":
        return [imp.target]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "db.models" and n.lineno == imp.line
        for a in n.names
    ]
    models = importlib.import_module("db.models")
    return sorted({getattr(getattr(models, name, None), "__module__", "db.models") for name in names}) or [imp.target]


def violations(root: Path, allowed: dict[tuple[str, str], str] | None = None) -> tuple[list[str], set[tuple[str, str]]]:
    """(one line per upward import, the allow-list entries that matched)."""
    allowed = ALLOWED_UPWARD if allowed is None else allowed
    bad, used = [], set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic revisions import only db and sqlalchemy, and run outside the package graph
            mod = module_name(path, root)
            mine = layer_of(mod)
            if mine is None:
                bad.append(f"{mod}: no layer; add it to MODULE_LAYER in tests/test_layers.py")
                continue
            for imp in imports_of(path, root):
                targets = table_modules(imp, path) if mine in STAGES else [imp.target]
                for target in targets:
                    theirs = TABLES.get(target) if mine in STAGES and target in TABLES else layer_of(target)
                    if theirs is None or theirs == mine or theirs in MAY_IMPORT[mine]:
                        continue
                    if (mod, target) in allowed:
                        used.add((mod, target))
                        continue
                    where = "inside a function" if imp.nested else "at module level"
                    bad.append(f"{mod}:{imp.line} ({mine}) imports {target} ({theirs}) {where}")
    return bad, used


def test_no_upward_import():
    bad, used = violations(ROOT)
    assert not bad, "upward imports (see the graph in tests/test_layers.py and HACKING.md):\n" + "\n".join(bad)
    stale = set(ALLOWED_UPWARD) - used
    assert not stale, f"allow-list entries no import needs any more; delete them: {sorted(stale)}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {
        "curate/__init__.py": "",
        "curate/intake/__init__.py": "",
        "curate/label/__init__.py": "",
        "train/__init__.py": "",
        "db/__init__.py": "",
        **files,
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_an_upward_import_is_named_even_inside_a_function(tmp_path):
    root = _tree(
        tmp_path,
        {
            "curate/label/rounds.py": "from curate.intake import walk\n",  # down: fine
            "curate/intake/walk.py": "def f():\n    from curate.label.rounds import push\n",  # up, dodging a cycle
            "curate/intake/relative.py": "from ..label import rounds\n",  # up, spelled relatively
            "curate/files.py": "import train.models\n",  # the shared core reaching into train
            "train/models.py": "from curate import files\nfrom curate.intake import walk\n",  # train: shared only
        },
    )
    bad, _ = violations(root, allowed={})
    assert bad == [
        "curate.files:1 (shared) imports train.models (train) at module level",
        "curate.intake.relative:1 (intake) imports curate.label.rounds (label) at module level",
        "curate.intake.walk:2 (intake) imports curate.label.rounds (label) inside a function",
        "train.models:2 (train) imports curate.intake.walk (intake) at module level",
    ]


def test_allow_list_entries_are_reported_as_used(tmp_path):
    root = _tree(tmp_path, {"curate/intake/walk.py": "from curate.label import rounds\n", "curate/label/rounds.py": ""})
    bad, used = violations(root, allowed={("curate.intake.walk", "curate.label.rounds"): "why"})
    assert bad == [] and used == {("curate.intake.walk", "curate.label.rounds")}


def test_a_module_without_a_layer_is_named(tmp_path):
    root = _tree(tmp_path, {"curate/newthing.py": ""})
    assert violations(root, allowed={})[0] == [
        "curate.newthing: no layer; add it to MODULE_LAYER in tests/test_layers.py"
    ]


def test_each_scrape_module_imports_on_its_own():
    """A module imported first in a fresh interpreter must load: before, `curate.intake.scrape.fetch` alone failed
    with "cannot import name 'printable' from partially initialized module" (fetch -> engines -> urls -> fetch),
    and only worked because every caller happened to import another scrape module first."""
    import subprocess
    import sys

    names = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in sorted((ROOT / "curate" / "intake" / "scrape").rglob("*.py"))
        if p.name != "__init__.py"
    ]
    failed = [
        n
        for n in names
        if subprocess.run([sys.executable, "-c", f"import {n}"], cwd=ROOT, capture_output=True).returncode != 0
    ]
    assert len(names) > 10 and failed == []
