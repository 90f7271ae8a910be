"""The `incoming/` folder `curate pipeline` reads: every sub-folder is a source, and an optional
`source.toml` inside it holds that source's ingest settings (kind, licence, label_from_folders,
label_map, case_id_pattern; see README). `--demo` fills an empty `incoming/` with synthetic photos, whole.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from curate.demo import write_demo_folder
from curate.errors import ConfigError
from curate.intake.catalogue import SOURCE_KINDS, check_name
from curate.intake.ingest import IngestOptions, compile_case_pattern, load_label_map
from curate.intake.walk import refuse_own, system_folder
from db.models import Source

INCOMING = "incoming"  # `curate pipeline`'s default sources folder, in the workspace
SETTINGS_FILE = "source.toml"
SOURCE_KEYS = {"kind": str, "licence": str, "label_from_folders": bool, "label_map": str, "case_id_pattern": str}
DEMO_SOURCE = "demo-clinic"


@dataclass(frozen=True)
class Incoming:
    sources: list[Path]  # one folder per source, by name
    demo_photos: int = 0  # synthetic photos this call wrote into incoming/<DEMO_SOURCE>/
    loose: list[str] = field(default_factory=list)  # files directly in incoming/: in no source, so not ingested
    hidden: list[str] = field(default_factory=list)  # dot-folders (.Trashes, .git), trash and system ones: no sources


def _hidden(path: Path) -> bool:
    """A dot-file or dot-folder: the OS's own (.DS_Store, .Trashes with a Mac's deleted photos) or a tool's, or a
    trash or system folder (`walk.system_folder`: a NAS share as incoming/ had its $RECYCLE.BIN, #recycle and
    @eaDir thumbnails ingested as sources)."""
    return path.name.startswith(".") or system_folder(path.name) is not None


def find_sources(
    incoming: Path,
    demo: bool = False,
    tmp_dir: Path | None = None,
    own: tuple[Path, ...] = (),
    whose: Callable[[Path], str | None] = lambda folder: None,
) -> Incoming:
    """The source folders under `incoming` (first filled with demo photos when `demo` and it holds nothing but
    dot-files). `own`: the workspace's own folders, where no demo is written (it was, before the refusal);
    `whose`: `Workspace.whose`, which refuses another workspace, or a folder in one's store, as `incoming`.

    The demo folder is built in `tmp_dir` (the workspace's tmp/; beside `incoming` when that is on another
    filesystem) and renamed in whole, so a killed run leaves `incoming` empty and the re-run writes it all."""
    written = 0
    refuse_own(incoming, own, "choose another --incoming", whose)
    if demo and not (incoming.is_dir() and any(not _hidden(p) for p in incoming.iterdir())):
        incoming.mkdir(parents=True, exist_ok=True)
        if tmp_dir is None or os.stat(tmp_dir).st_dev != os.stat(incoming).st_dev:
            tmp_dir = incoming.parent
        written = write_demo_folder(incoming / DEMO_SOURCE, tmp_dir=tmp_dir)
    if not incoming.is_dir():
        raise ConfigError(
            f"no {incoming}/ folder: put each source's photos in {incoming}/<source-name>/ (or use --demo)"
        )
    entries = sorted(incoming.iterdir())
    loose = [p.name for p in entries if not p.is_dir() and not _hidden(p)]
    hidden = [p.name for p in entries if p.is_dir() and _hidden(p)]  # before: ingested as sources
    return Incoming([p for p in entries if p.is_dir() and not _hidden(p)], written, loose, hidden)


def source_options(folder: Path, diagnoses: tuple[str, ...] | None = None) -> IngestOptions:
    """Ingest options for one incoming source folder, from its optional source.toml; every error names
    the folder or the file and field, so a steward with ten sources knows which to fix. `diagnoses`: the
    workspace's declared diagnoses, the only folder names that give a prior label (IngestOptions.diagnoses)."""
    check_name(folder.name, f"{folder}: the source name (this folder's name)")
    settings: dict = {"label_from_folders": True}
    own = []
    cfg = folder / SETTINGS_FILE
    if cfg.is_file():
        own.append(SETTINGS_FILE)
        data = _read(cfg)
        settings.update(data)
    if settings.get("label_map"):
        own.append(_inside(folder, settings["label_map"]))
        settings["label_map"] = load_label_map(folder / settings["label_map"])
    compile_case_pattern(settings.get("case_id_pattern"), f"{cfg}: case_id_pattern")
    if settings.get("licence") is not None:
        check_name(settings["licence"], f"{cfg}: licence")
    return IngestOptions(
        source=folder.name,
        settings_files=tuple(p for p in own if p),
        diagnoses=diagnoses,
        label_map_hint=f"a label_map file named in {folder.name}/{SETTINGS_FILE}",  # the pipeline has no --label-map
        **settings,
    )


def check_kinds(ws, folders: list[Path], options: list[IngestOptions]) -> None:
    """A source.toml `kind` that contradicts the kind its source is registered with, named before any source is
    ingested (before: `curate ingest`'s error came after the sources before it, and dedupe never ran)."""
    with ws.session() as s:
        registered = dict(s.exec(select(Source.name, Source.kind)).all())
    for folder, opts in zip(folders, options, strict=True):
        was = registered.get(opts.source)
        if opts.kind is not None and was is not None and opts.kind != was:
            raise ConfigError(
                f"{folder / SETTINGS_FILE}: kind {opts.kind!r} contradicts source {opts.source!r}, registered as "
                f"{was!r}; a source keeps its kind (set kind = {was!r}, or rename the folder for a new source)"
            )


def _read(cfg: Path) -> dict:
    """source.toml's settings, each key known and of its type, kind one of SOURCE_KINDS."""
    try:
        data = tomllib.loads(cfg.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{cfg}: {exc}") from exc
    unknown = set(data) - set(SOURCE_KEYS)
    if unknown:
        raise ConfigError(
            f"{cfg}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SOURCE_KEYS))}"
        )
    for key, value in data.items():
        if not isinstance(value, SOURCE_KEYS[key]):
            wanted = "true or false" if SOURCE_KEYS[key] is bool else "text in quotes"
            raise ConfigError(f"{cfg}: {key} must be {wanted}, not {value!r}")
    if "kind" in data and data["kind"] not in SOURCE_KINDS:
        raise ConfigError(f"{cfg}: kind must be one of {', '.join(SOURCE_KINDS)}, not {data['kind']!r}")
    return data


def _inside(folder: Path, name: str) -> str | None:
    """The label map's path relative to its source folder (so ingest does not list it as a skipped file)."""
    try:
        return (folder / name).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:  # a map kept outside the folder is not walked anyway
        return None
