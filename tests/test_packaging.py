"""What the wheel promises: every third-party import declared in pyproject.toml, nothing declared unused,
and the label config the package ships identical to the top-level one stewards edit.

The wheel itself is built, installed in a fresh venv and run by scripts/wheel-smoke.sh (test-all.sh).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from curate.label.config import LABEL_CONFIG

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"curate", "db", "train"}
# Declared but never imported, on purpose: installed for what names them by string.
RUNTIME_ONLY = {
    "lxml": "BeautifulSoup(..., 'lxml') in curate/intake",
    "psycopg": "SQLAlchemy's postgresql+psycopg:// driver",
}
# curate modules that run only with an extra installed, and which extra: nothing imports them before checking.
EXTRA_ONLY = {
    "curate/lite0.py": "train",  # EfficientNet-Lite0 for the CNN dedupe stage, imported once torch is found
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project.get("optional-dependencies", {})}
    return {g: {_norm(Requirement(r).name) for r in reqs} for g, reqs in groups.items()}


def _imports(package: str) -> dict[str, list[str]]:
    """Top-level third-party module -> files importing it (function-level and guarded imports included)."""
    found: dict[str, list[str]] = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, []).append(str(f.relative_to(ROOT)))
    return found


@cache
def _installed() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    # An import that is not installed here maps to its own name (e.g. torch on a machine without [train]).
    return {_norm(d) for d in _installed().get(module, [module])}


# curate/ and db/ run from a plain `pip install mpox-curate`; train/ also gets the [train] extra.
@pytest.mark.parametrize(
    ("package", "groups"), [("curate", ["core"]), ("db", ["core"]), ("train", ["core", "train", "serve", "export"])]
)
def test_every_third_party_import_is_declared(package, groups):
    declared = _declared()
    allowed = set().union(*(declared[g] for g in groups))
    missing = {
        m: f
        for m, files in _imports(package).items()
        for f in files
        if not _distributions(m) & (allowed | declared.get(EXTRA_ONLY.get(f, ""), set()))
    }
    assert not missing, f"imported by {package}/ but not declared in pyproject.toml {groups}: {missing}"


def test_every_declared_dependency_is_imported():
    declared = _declared()
    used = set()
    for package in FIRST_PARTY:
        for module in _imports(package):
            used |= _distributions(module)
    unused = (declared["core"] | declared["train"]) - used - set(RUNTIME_ONLY)
    assert not unused, f"declared in pyproject.toml but imported nowhere in curate/, db/, train/: {sorted(unused)}"


def test_numpy_2_is_required():
    """np.bitwise_count (dedupe search) exists from NumPy 2.0 on."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = next(Requirement(r).specifier for r in project["dependencies"] if _norm(Requirement(r).name) == "numpy")
    assert not SpecifierSet(str(spec)).contains("1.26.4")


def test_packaged_label_config_is_the_top_level_one():
    """The top-level label_config.xml (a symlink) and the packaged copy must never drift apart:
    an editor that replaces the symlink with a file, or a copy edited on one side, fails here."""
    top = ROOT / "label_config.xml"
    assert LABEL_CONFIG.name == "label_config.xml"
    assert top.read_bytes() == LABEL_CONFIG.read_bytes(), (
        "label_config.xml differs from curate/label/label_config.xml: make the top-level file a symlink to it again"
    )
