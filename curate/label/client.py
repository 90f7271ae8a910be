"""A small verb-shaped client over label-studio-sdk 2.x; consensus never sees it.

Every failure becomes a one-line `StudioError`: server down, key refused,
project gone, config rejected. The API key is held in memory only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from curate.errors import StudioError

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
KEY_AGAIN = "; `curate studio key` shows the steward's key again"  # a refused key: where the right one is


@dataclass(frozen=True)
class RemoteProject:
    id: int
    storage_id: int | None


@dataclass(frozen=True)
class RemoteAnnotation:
    id: int
    task_id: int
    completed_by: str  # email
    result: list[dict]
    was_cancelled: bool
    created_at: str | None
    updated_at: str | None
    raw: dict[str, Any]
    image_id: int | None = None  # the task's data.image_id, as push wrote it: a mark, never which image it shows
    picture: str | None = None  # the task's data.image: the link to the photo its rater was shown
    shown: list[str | None] | None = None  # a review task's data.disputed: the two diagnoses its reviewer was shown


def api_key_from_env() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise StudioError(f"set {API_KEY_ENV} to a Label Studio API key (legacy token or personal access token)")
    if not key.isascii() or not key.isprintable():  # a key pasted with a no-break space: httpx cannot send it
        raise StudioError(f"${API_KEY_ENV} holds a character no API key has (a pasted space?): set it again")
    return key


# what reading an answer of the wrong shape raises: int("x") on an id, a JSON or pydantic error (all ValueErrors),
# a field read off a str; a local UnicodeError, a ValueError too, is not the server's doing (re-raised)
UNLIKE = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def _says_unlike(method):
    """A public method whose server answered JSON of a shape Label Studio never sends (another service at that
    port, a proxy's page) raises StudioError naming the server, not "unexpected AttributeError: 'str' object has
    no attribute 'id'". The SDK parses leniently, so such an answer surfaces only where a field is read."""

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNLIKE as exc:
            if isinstance(exc, UnicodeError):  # a local encoding fault (a key or name), not the server's answer
                raise
            raise StudioError(
                f"{self.url} does not answer like Label Studio ({method.__name__.replace('_', ' ')}: "
                f"{type(exc).__name__}); is that URL a Label Studio server?"
            ) from exc

    return checked


def _checked_answers(cls):
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, _says_unlike(value))
    return cls


@_checked_answers
class StudioClient:
    """Talks to one Label Studio server with one API key."""

    def __init__(self, url: str, api_key: str, timeout: float = 120.0):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._ls = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout)
        self._users: dict[int, str] | None = None

    # --- plumbing -------------------------------------------------------------------
    def _unreachable(self, exc: httpx.TransportError) -> StudioError:
        """One line for a request that got no answer: a server that took the connection and then said nothing
        (stopped, stuck) is not "not running"."""
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return StudioError(
                f"Label Studio at {self.url} took the request but did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}): it is busy or stuck; `curate studio stop` and `start` restart a local one"
            )
        return StudioError(f"Label Studio at {self.url} is not reachable ({type(exc).__name__}); is it running?")

    def _call(self, what: str, fn, *args, not_found: str | None = None, **kwargs):
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise StudioError(
                    f"Label Studio at {self.url} refused the API key in ${API_KEY_ENV} ({exc.status_code}){KEY_AGAIN}"
                ) from exc
            if exc.status_code == 404 and not_found:
                raise StudioError(not_found) from exc
            detail = exc.body if isinstance(exc.body, (str, dict)) else ""
            if isinstance(detail, dict):
                detail = detail.get("validation_errors") or detail.get("detail") or detail
            raise StudioError(f"Label Studio refused to {what}: HTTP {exc.status_code} {detail}") from exc

    def whoami(self) -> str:
        return self._call("identify the API key", self._ls.users.whoami).email

    def user_emails(self, fresh: bool = False) -> dict[int, str]:
        """Account id → email on this server; `fresh` reads it again (a blinding check: accounts come and go)."""
        if self._users is None or fresh:
            users = self._call("list users", self._ls.users.list)
            self._users = {u.id: (u.email or "").lower() for u in users}
        return self._users

    # --- verbs ----------------------------------------------------------------------
    def create_round(
        self, title: str, label_config: str, files_root: Path | None, description: str = "", prelabel: bool = False
    ) -> RemoteProject:
        """Create one project (validating the config first) and its local-files storage.

        prelabel: open each task with its predictions drawn (the review view shows the raters' boxes so).
        """
        self._validate(label_config)
        p = self._call(
            "create a project",
            self._ls.projects.create,
            title=title[:50],
            label_config=label_config,
            description=description,
            show_skip_button=True,
            maximum_annotations=1,
            show_collab_predictions=prelabel,
        )
        storage_id = None
        if files_root is not None:
            s = self._call(
                "add local-files storage",
                self._ls.import_storage.local.create,
                project=p.id,
                path=str(files_root),
                use_blob_urls=False,
                title="mpox-curate images",
            )
            storage_id = s.id
        return RemoteProject(p.id, storage_id)

    def _validate(self, label_config: str) -> None:
        try:
            resp = self._ls._client_wrapper.httpx_client.request(
                "api/projects/validate/",
                method="POST",
                json={"label_config": label_config},
                headers=self._ls._client_wrapper.get_headers(),
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code in (401, 403):
            raise StudioError(
                f"Label Studio at {self.url} refused the API key in ${API_KEY_ENV} ({resp.status_code}){KEY_AGAIN}"
            )
        if resp.status_code >= 300:
            try:
                detail = resp.json().get("label_config") or resp.text
            except ValueError:
                detail = resp.text[:200]
            raise StudioError(f"Label Studio rejected label_config.xml: {detail}")

    def project_config(self, project_id: int) -> str | None:
        """The project's label config as the server holds it; None when the project was deleted."""
        from label_studio_sdk.core.api_error import ApiError

        try:
            return self._ls.projects.get(project_id).label_config
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            return self._call("read a project", self._ls.projects.get, project_id).label_config
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def set_config(self, project_id: int, label_config: str) -> None:
        """Give an existing project `label_config` (validated first; the server refuses one that drops a
        choice its annotations use)."""
        self._validate(label_config)
        self._call("update the label config", self._ls.projects.update, id=project_id, label_config=label_config)

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Import task data dicts; returns Label Studio task ids in the same order."""
        if not tasks:
            return []
        r = self._call(
            "import tasks",
            self._ls.projects.import_tasks,
            project_id,
            request=tasks,
            return_task_ids=True,
            not_found=f"Label Studio project {project_id} no longer exists",
        )
        ids = list(r.task_ids or [])
        if len(ids) != len(tasks):
            raise StudioError(f"Label Studio created {len(ids)} of {len(tasks)} tasks in project {project_id}")
        return ids

    def task_ids(self, project_id: int) -> set[int]:
        """The ids of the project's tasks (one paged listing). Before, only their number was read: a task deleted
        in Label Studio beside one added by hand left the count equal, and the deleted one was never made again."""

        def listed():
            return {int(t.id) for t in self._ls.tasks.list(project=project_id, include="id", page_size=500)}

        return self._call(
            "list tasks",
            listed,
            not_found=f"Label Studio project {project_id} no longer exists (deleted in Label Studio?)",
        )

    def task_data(self, project_id: int) -> dict[int, dict]:
        """Each task of the project (id → its data), oldest first."""

        def listed():
            pages = self._ls.tasks.list(project=project_id, include="id,data", page_size=500, resolve_uri=False)
            return {int(t.id): t.data if isinstance(t.data, dict) else {} for t in pages}

        tasks = self._call("list tasks", listed, not_found=f"Label Studio project {project_id} no longer exists")
        return dict(sorted(tasks.items()))

    def unanswered_tasks(self, project_id: int) -> set[int]:
        """Ids of the project's tasks nobody has answered or skipped yet (one listing)."""

        def listed():
            pages = self._ls.tasks.list(
                project=project_id, include="id,total_annotations,cancelled_annotations", page_size=500
            )
            return {int(t.id) for t in pages if not (t.total_annotations or t.cancelled_annotations)}

        return self._call("list tasks", listed, not_found=f"Label Studio project {project_id} no longer exists")

    def task_pictures(self, project_id: int) -> dict[int, tuple[int | None, str | None]]:
        """Each task of the project (id → (its data.image_id, its data.image)), oldest first: what an import the
        command did not see finish left there. Which image a task shows is its picture's (`rounds.pictured`)."""
        return {task: (_image_id(data), _picture(data)) for task, data in self.task_data(project_id).items()}

    def delete_task(self, task_id: int) -> None:
        self._call("delete a task", self._ls.tasks.delete, id=task_id, not_found=f"task {task_id} no longer exists")

    def fetch_annotations(
        self, project_id: int, on_task: Callable[[int], None] | None = None
    ) -> list[RemoteAnnotation]:
        """Every annotation of a project: its tasks listed with their annotations, 500 a request. Not the export
        API: Label Studio keeps each export as a file in the server's data folder (`export/project-N-at-…json`),
        every answer of the project in it, one more on every pull and none deleted with the annotations.
        `on_task(task_id)` hears each task read (a pull's progress: 1,580 tasks take 30-50 s)."""

        def listed():
            pages = self._ls.tasks.list(project=project_id, fields="all", page_size=500, resolve_uri=False)
            out = []
            for t in pages:
                out.append(
                    {"id": t.id, "data": t.data, "annotations": [a for a in t.annotations or () if isinstance(a, dict)]}
                )
                if on_task is not None:
                    on_task(t.id)
            return out

        data = self._call(
            "list annotations",
            listed,
            not_found=f"Label Studio project {project_id} no longer exists (deleted in Label Studio?)",
        )
        emails = None
        out = []
        for task in data:
            for a in task.get("annotations") or []:
                who = a.get("completed_by")
                if isinstance(who, dict):
                    email = (who.get("email") or "").lower()
                else:
                    emails = emails or self.user_emails()
                    email = emails.get(who, "")
                    if not email:
                        self._users = None
                        email = self.user_emails().get(who, f"user-{who}")
                out.append(
                    RemoteAnnotation(
                        id=int(a["id"]),
                        task_id=int(task["id"]),
                        completed_by=email,
                        result=a.get("result") or [],
                        was_cancelled=bool(a.get("was_cancelled")),
                        created_at=a.get("created_at"),
                        updated_at=a.get("updated_at"),
                        raw=a,
                        image_id=_image_id(task.get("data")),
                        picture=_picture(task.get("data")),
                        shown=_disputed(task.get("data")),
                    )
                )
        return out

    def invite_url(self) -> str:
        r = self._call("make an invite link", self._ls.organizations.invites.get_invite_link)
        return r.invite_url


def _disputed(data) -> list[str | None] | None:
    """A review task's `disputed` (adjudicate writes the two raters' diagnoses it shows), None elsewhere and on
    review tasks made before it did."""
    value = data.get("disputed") if isinstance(data, dict) else None
    if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
        return value
    return None


def _image_id(data) -> int | None:
    """A task's `image_id` (push writes it beside the image's link), None on a task added by hand. A rater can
    edit it (`PATCH /api/tasks/<id>`): it marks a task as push's, and never says which image the task shows."""
    value = data.get("image_id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _picture(data) -> str | None:
    """A task's `image`: the link to the photo its rater sees (push links the image's rater copy)."""
    value = data.get("image") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def add_user(url: str, api_key: str, email: str, password: str) -> str:
    """Create a Label Studio account through the organisation invite link; return the user's own API token.

    The open-source server has no admin API that sets a password, so this signs up
    with the invite link (the same page a clinician would use) and reads the token
    from the new session. Nothing is stored.
    """
    client = StudioClient(url, api_key)

    def refused(r: httpx.Response) -> StudioError:
        msg = "account exists or password rejected by Label Studio's password rules"
        if "already exists" in r.text:
            msg = "a Label Studio user with this email already exists"
        return StudioError(f"could not create {email}: {msg}")

    return _session_token(client.url, client.invite_url(), email, password, refused, f"created {email} but")


def steward_token(url: str, email: str, password: str) -> str:
    """The API token of the account `email` on `url`, read from a session its password opens (Label Studio's
    login page, then `/api/current-user/token`): the steward's key is shown once and not stored, so a key
    lost is read back this way rather than by a new server."""
    base = url.rstrip("/")

    def refused(_r: httpx.Response) -> StudioError:
        return StudioError(f"Label Studio at {base} refused the email or password of {email}")

    return _session_token(base, "/user/login/", email, password, refused, f"logged in as {email} but")


def _session_token(base: str, page: str, email: str, password: str, refused, then: str) -> str:
    """Post `email` and `password` to the form at `page` (with its CSRF cookie), then read the session's token."""
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as s:
            s.get(page)
            csrf = s.cookies.get("csrftoken")
            r = s.post(
                page,
                data={"email": email, "password": password, "csrfmiddlewaretoken": csrf or ""},
                headers={"Referer": base + page},
            )
            if r.status_code != 302:
                raise refused(r)
            tok = s.get("/api/current-user/token")
            if tok.status_code != 200:
                raise StudioError(f"{then} could not read its API token (HTTP {tok.status_code})")
            return tok.json()["token"]
    except httpx.TransportError as exc:
        raise StudioError(f"Label Studio at {base} is not reachable ({type(exc).__name__})") from exc
