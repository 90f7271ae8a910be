"""Which Label Studio server each clinician works on, and the check that keeps raters blind.

By default every clinician has a server of their own, run by `curate studio`
(curate.studio.fleet). `--url` overrides it: `--url email=URL` (repeatable) maps one
clinician, a bare `--url URL` is the server for everyone not mapped. One steward key
($LABEL_STUDIO_API_KEY) must open every server. A rating round is refused when a rater's
server also holds an account of anyone else in the round: such an account could read
that rater's labels, whatever the project description asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from curate.errors import ConfigError, LabelError, StudioError
from curate.label.client import StudioClient, add_user, api_key_from_env
from curate.studio.fleet import Fleet, check_email


@dataclass
class Servers:
    api_key: str
    by_clinician: dict[str, str] = field(default_factory=dict)  # email -> URL
    default: str | None = None  # the server for clinicians not mapped
    explicit: bool = False  # given with --url: overrides the server a project recorded
    named: frozenset[str] | None = None  # those --url email=URL maps (the others keep their own); None: all mapped
    _clients: dict[str, StudioClient] = field(default_factory=dict, repr=False)

    @classmethod
    def single(cls, client: StudioClient) -> Servers:
        """Everyone on one server (an external Label Studio, or a catalogue from before per-clinician servers)."""
        return cls(client._api_key, {}, client.url, True, _clients={client.url: client})

    def url_for(self, email: str) -> str:
        url = self.by_clinician.get(email) or self.default
        if url is None:
            raise LabelError(
                f"{email} has no Label Studio server in this workspace (curate studio start, then "
                f"curate studio add-user {email}; or --url {email}=URL)"
            )
        return url.rstrip("/")

    def client(self, url: str) -> StudioClient:
        url = url.rstrip("/")
        if url not in self._clients:
            self._clients[url] = StudioClient(url, self.api_key)
        return self._clients[url]

    def client_for(self, email: str) -> StudioClient:
        return self.client(self.url_for(email))

    def project_url(self, rater: str, recorded: str) -> str:
        """Where to fetch a project from: an explicit --url wins over the URL recorded at push time."""
        named = self.by_clinician if self.named is None else self.named
        if self.explicit and (rater in named or self.default):
            return self.url_for(rater)
        return recorded

    def key(self, people: list[str]) -> str:
        """What a round records as its server(s): one URL, or a JSON map when people are on different servers."""
        urls = {p: self.url_for(p) for p in people}
        if len(set(urls.values())) == 1:
            return next(iter(urls.values()))
        return json.dumps(urls, sort_keys=True)


def as_servers(target: Servers | StudioClient) -> Servers:
    return Servers.single(target) if isinstance(target, StudioClient) else target


def parse_urls(values: list[str] | None) -> tuple[dict[str, str], str | None]:
    """`email=URL` pairs and at most one bare URL, as given to --url."""
    mapping, default = {}, None
    for v in values or []:
        who, sep, url = v.partition("=")
        if sep and "@" in who and not who.startswith(("http://", "https://")):
            mapping[who.strip().lower()] = url.strip()
        elif default is None:
            default = v.strip()
        else:
            raise ConfigError(f"--url {v!r}: only one URL may be given without an email (use email=URL for the others)")
    for url in [*mapping.values(), *([default] if default else [])]:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url {url!r} is not an http(s) URL")
    return mapping, default


def resolve(ws, urls: list[str] | None = None) -> Servers:
    """The servers named by --url, else the workspace's per-clinician servers. A bare URL is the server of every
    clinician `email=URL` does not map; without one, a clinician --url does not name keeps their own server
    (before: `--url b@…=URL` alone left a and c "no Label Studio server in this workspace")."""
    mapping, default = parse_urls(urls)
    try:
        key = api_key_from_env()
    except StudioError as exc:
        fleet = Fleet(ws.root)
        if mapping or default or fleet.initialised or fleet.shared() is not None or _any_project(ws):
            raise
        raise StudioError(  # before: only "set $LABEL_STUDIO_API_KEY", in a workspace with no server to hold one
            f"{exc}; Label Studio is not set up in this workspace yet: `curate studio start` starts it and prints "
            "the key (or name a server of your own with --url)"
        ) from None
    if mapping or default:
        own = {} if default else Fleet(ws.root).urls()
        return Servers(key, own | mapping, default, explicit=True, named=frozenset(mapping))
    return Servers(key, Fleet(ws.root).urls())  # pull also finds every project at the URL it recorded


def _any_project(ws) -> bool:
    """Whether any round was pushed (to an external server too: pull reads it at the URL it recorded)."""
    from sqlmodel import select

    from db.models.label import LabelProject

    with ws.session() as s:
        return s.exec(select(LabelProject.id).limit(1)).first() is not None


REVIEW_SHOWS = " and the raters' diagnoses each dispute shows there"  # what a reviewer's or auditor's tasks show


def sharing(client: StudioClient, others: list[str]) -> list[str]:
    """Those of `others` with an account on `client`'s server: they can read every project there."""
    known = set(client.user_emails(fresh=True).values())
    return [o for o in others if o in known]


def require_blind(servers: Servers, owner: str, others: list[str], readable: str = "") -> None:
    """`owner` must have an account on their server, and nobody in `others` may have one there. `readable`: what
    else that server's tasks show (a reviewer's: both raters' diagnoses), said in the refusal."""
    client = servers.client_for(owner)
    known = set(client.user_emails(fresh=True).values())
    if owner not in known:
        raise LabelError(f"{owner} has no Label Studio account on {client.url} (curate studio add-user {owner})")
    seen = [o for o in others if o in known]
    if seen:
        raise LabelError(
            f"{seen[0]} has an account on {owner}'s Label Studio server {client.url}, so could read "
            f"{owner}'s labels{readable}; give each clinician their own server (curate studio add-user)"
        )


def add_clinician(ws, email: str, password: str, port: int | None = None) -> str:
    """Give `email` a Label Studio server of their own and an account on it; returns its URL.

    The server keeps running. The organisation's invite link is renewed after the signup,
    so the link the account was made with opens nothing afterwards.
    """
    fleet = Fleet(ws.root)
    new = fleet.find(email) is None
    c = fleet.add(email, port)
    try:
        info = fleet.start_one(c)
        add_own_account(info.url, api_key_from_env(), c.email, password)
    except BaseException:
        if new:  # before: the clinician stayed registered with a server running and no account on it
            fleet.remove(c)
        raise
    return info.url


def add_own_account(url: str, key: str, email: str, password: str) -> None:
    """An account for `email` on `url`, which must hold no other clinician's (the key's owner, the steward,
    aside), with the invite link renewed after. `curate studio add-user --url` once made one on another rater's
    server, where the new account read that rater's projects and labels; only a later push noticed."""
    client = StudioClient(url, key)
    email = check_email(email)  # as the fleet's path and every round store it
    if email == client.whoami():
        raise StudioError(f"{email} is the steward's own account: a clinician needs an address of their own")
    emails = set(client.user_emails().values())
    if email in emails:
        reset_invite(url, key)  # a signup interrupted before the link was renewed
        raise StudioError(f"{email} already has an account on {url}")
    others = sorted(emails - {client.whoami()})
    if others:
        raise StudioError(
            f"{url} already holds {len(others)} account(s) besides the steward's; on it, {email} and they could "
            "read each other's projects and labels: give each clinician a server of their own (curate studio "
            "add-user without --url)"
        )
    add_user(url, key, email, password)
    reset_invite(url, key)


def reset_invite(url: str, api_key: str) -> None:
    try:
        r = httpx.post(
            url.rstrip("/") + "/api/invite/reset-token", headers={"Authorization": f"Token {api_key}"}, timeout=30
        )
    except httpx.TransportError as exc:
        raise StudioError(f"Label Studio at {url} is not reachable ({type(exc).__name__})") from exc
    if r.status_code >= 300:
        raise StudioError(f"Label Studio at {url} refused to renew its invite link (HTTP {r.status_code})")
