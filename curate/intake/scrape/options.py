"""What `curate scrape` is asked to do: the options and their choices, checked before anything runs.

Kept free of icrawler, requests and the catalogue: the command line imports it to build `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from curate.errors import ConfigError
from curate.intake.limits import MAX_BYTES, MAX_PIXELS

BASE_URL_ENV = "CURATE_SCRAPE_BASE_URL"  # tests point every engine at a local server
FLICKR_KEY_ENV = "FLICKR_API_KEY"
DEFAULT_MAX = 100
MAX_THREADS = 16
MAX_TIMEOUT = 600.0  # seconds per network read (a download or result page gets 6 x this)


class EngineName(StrEnum):
    BING = "bing"
    BAIDU = "baidu"
    FLICKR = "flickr"
    GOOGLE = "google"  # refused with the reason (see engines/google.py)
    URLS = "urls"  # files of image URLs instead of a search

    @classmethod
    def parse(cls, value: str) -> EngineName:
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"--engine must be one of {', '.join(cls)}, not {value!r}") from None


class Licence(StrEnum):
    """Licence filters asked of an engine; recorded as requested, never as verified."""

    ANY = "any"
    PUBLIC_DOMAIN = "public-domain"
    CC = "cc"
    CC_COMMERCIAL = "cc-commercial"
    CC_MODIFY = "cc-modify"
    CC_COMMERCIAL_MODIFY = "cc-commercial-modify"

    @classmethod
    def parse(cls, value: str | None) -> Licence | None:
        """None for no filter ("any" or nothing)."""
        if value in (None, "", cls.ANY):
            return None
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"--license must be one of {', '.join(cls)}, not {value!r}") from None


@dataclass(frozen=True)
class ScrapeOptions:
    engine: EngineName | str
    queries: tuple[str, ...]  # search terms; for --engine urls, paths of URL-list files
    max_num: int = DEFAULT_MAX  # images each query should have in total (across runs); 0: no limit
    licence: Licence | str | None = None  # recorded as requested, never as verified
    source: str | None = None  # default: web-<engine>
    threads: int = 4
    min_side: int = 0  # reject images whose shorter side is below this (0: off)
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    timeout: float = 10.0
    max_results: int | None = None  # how deep to page into the engine (default: its own limit)
    base_url: str | None = None  # default: $CURATE_SCRAPE_BASE_URL, else the engine's real host
    allow_private_hosts: bool = False  # fetch from loopback/private/link-local addresses too

    @property
    def licence_requested(self) -> str | None:
        return str(self.licence) if self.licence else None

    @property
    def source_name(self) -> str:
        """--source, or web-<engine> when it was not given (an empty --source '' is refused by `check_name`, as
        ingest's is; before, it silently became web-<engine>)."""
        return f"web-{self.engine}" if self.source is None else self.source

    def check(self) -> None:
        """The checks that need no engine; the CLI's types already make most of them (exit 2)."""
        if not self.queries or any(not q.strip() for q in self.queries):
            raise ConfigError("give at least one non-empty QUERY")
        for q in self.queries:  # a byte the terminal's encoding could not decode arrives as a lone surrogate
            try:
                q.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ConfigError(
                    f"QUERY {q.encode('utf-8', 'backslashreplace').decode()[:80]!r} is not UTF-8 text (at character "
                    f"{exc.start + 1}): type it in a UTF-8 terminal"
                ) from None
        if self.source is not None:
            from curate.intake.catalogue import check_name  # the catalogue stack: not at `curate --help`

            check_name(self.source)  # before any engine is asked
        if self.max_num < 0:
            raise ConfigError("--max must be 0 (no limit) or more")
        if not 0 < self.timeout <= MAX_TIMEOUT:  # inf overflowed the socket's timeout in every thread, exit 0
            raise ConfigError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be between 1 and {MAX_THREADS}")
