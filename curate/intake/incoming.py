"""The `incoming/` folder `curate pipeline` reads: every sub-folder is a source, and an optional
`source.toml` inside it holds that source's ingest settings (kind, licence, label_from_folders,
label_map, case_id_pattern; see README). `--demo` fills an empty `incoming/` with synthetic photos.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from curate.demo import write_demo_folder
from curate.errors import ConfigError
from curate.intake.ingest import IngestOptions, load_label_map

SOURCE_KEYS = {"kind", "licence", "label_from_folders", "label_map", "case_id_pattern"}
DEMO_SOURCE = "demo-clinic"


@dataclass(frozen=True)
class Incoming:
    sources: list[Path]  # one folder per source, by name
    demo_photos: int = 0  # synthetic photos this call wrote into incoming/<DEMO_SOURCE>/


def find_sources(incoming: Path, demo: bool = False) -> Incoming:
    """The source folders under `incoming` (first filled with demo photos when `demo` and it is empty)."""
    written = 0
    if demo and not (incoming.is_dir() and any(incoming.iterdir())):
        written = write_demo_folder(incoming / DEMO_SOURCE)
    if not incoming.is_dir():
        raise ConfigError(
            f"no {incoming}/ folder: put each source's photos in {incoming}/<source-name>/ (or use --demo)"
        )
    return Incoming(sorted(p for p in incoming.iterdir() if p.is_dir()), written)


def source_options(folder: Path) -> IngestOptions:
    """Ingest options for one incoming source folder, from its optional source.toml."""
    settings: dict = {"label_from_folders": True}
    cfg = folder / "source.toml"
    if cfg.is_file():
        try:
            data = tomllib.loads(cfg.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{cfg}: {exc}") from exc
        unknown = set(data) - SOURCE_KEYS
        if unknown:
            raise ConfigError(
                f"{cfg}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SOURCE_KEYS))}"
            )
        settings.update(data)
    if settings.get("label_map"):
        settings["label_map"] = load_label_map(folder / settings["label_map"])
    return IngestOptions(source=folder.name, **settings)
