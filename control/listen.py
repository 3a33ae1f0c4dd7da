"""`mittr listen`: a server's webhooks on a developer's machine, with no inbound port. A poll-mode
endpoint is long-polled and each event is POSTed to the local URL signed exactly as the engine
signs a push (engine.sender.delivery_headers); a 2xx acknowledges it, anything else leaves it to be
offered again once its visibility timeout runs out."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from control.remote import add_arguments, config_dir, resolve

if TYPE_CHECKING:
    import httpx

    from mittr_client import Endpoint, PolledEvent
    from mittr_client.sync import Client

# A poll-mode endpoint is never pushed to, but the API still asks for a url: this one can never
# resolve (RFC 6761 .invalid) and only tells a reader of the endpoint what it is for.
PLACEHOLDER_URL = "https://mittr-listen.invalid/"
DESCRIPTION_PREFIX = "mittr listen: "
POLL_TIMEOUT_S = 25
FORWARD_TIMEOUT_S = 30.0


def description_for(forward_to: str, events: list[str]) -> str:
    """How an endpoint made by `mittr listen` is recognised, and reused, by the next run."""
    return f"{DESCRIPTION_PREFIX}{','.join(events)} -> {forward_to}"[:2000]


def parse_events(raw: str | None) -> list[str]:
    names = [p.strip() for p in (raw or "*").split(",") if p.strip()]
    return names or ["*"]


class SecretStore:
    """Signing secrets of the endpoints `mittr listen` made, keyed by server and endpoint id (the
    API shows a secret only when it makes one). A 0600 JSON file in the user's config directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def get(self, server: str, endpoint_id: str) -> str | None:
        return self._load().get(f"{server}|{endpoint_id}")

    def put(self, server: str, endpoint_id: str, secret: str | None) -> None:
        data = self._load()
        key = f"{server}|{endpoint_id}"
        if secret is None:
            data.pop(key, None)
        else:
            data[key] = secret
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)


def signed_request(event: PolledEvent, secret: str, attempt: int, now_s: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers the engine would have pushed for this event."""
    import uuid

    from engine.sender import delivery_headers

    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = dict(event.headers or {})
    return body, delivery_headers(headers, secret, body, uuid.UUID(event.id), attempt, now_s)


@dataclass(frozen=True)
class Outcome:
    status: int | None      # None: no answer (the error says why)
    ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def event_line(at: datetime, event: PolledEvent, attempt: int, outcome: Outcome, acked: bool) -> str:
    what = str(outcome.status) if outcome.status is not None else f"ERR {outcome.error}"
    after = "acked" if acked else "not acked, offered again later"
    retry = f" (attempt {attempt})" if attempt > 1 else ""
    return (f"{at:%H:%M:%S}  {event.event_type or '-':<24} {event.id}  -> {what}  {outcome.ms} ms  "
            f"{after}{retry}")


@dataclass
class Session:
    endpoint: Endpoint
    secret: str
    created: bool


class Listener:
    def __init__(self, client: Client, forward: httpx.Client, forward_to: str, events: list[str],
                 store: SecretStore, out: TextIO = sys.stdout, clock: Callable[[], float] = time.time) -> None:
        self.client, self.forward, self.forward_to, self.events = client, forward, forward_to, events
        self.store, self.out, self.clock = store, out, clock
        self.server = client.base_url
        self.tries: dict[str, int] = {}     # this run's forwards per event not yet acked

    def open(self) -> Session:
        """The endpoint an earlier run made for the same events and URL, else a new one."""
        description = description_for(self.forward_to, self.events)
        for ep in self.client.endpoints.list(limit=100):
            if ep.delivery_mode == "poll" and ep.description == description:
                secret = self.store.get(self.server, ep.id)
                if secret is None:          # made elsewhere: rotate, the API shows only a secret it makes
                    secret = self.client.endpoints.update(ep.id, signingSecret=None).signing_secret or ""
                    self.store.put(self.server, ep.id, secret)
                if ep.status == "paused":
                    self.client.endpoints.resume(ep.id)
                return Session(ep, secret, created=False)
        ep = self.client.endpoints.create(PLACEHOLDER_URL, event_types=self.events, delivery_mode="poll",
                                          description=description)
        secret = ep.signing_secret or ""
        self.store.put(self.server, ep.id, secret)
        return Session(ep, secret, created=True)

    def close(self, session: Session, keep: bool) -> None:
        if session.created and not keep:
            from mittr_client import NotFound

            try:
                self.client.endpoints.delete(session.endpoint.id)
            except NotFound:
                pass
            self.store.put(self.server, session.endpoint.id, None)

    def deliver(self, event: PolledEvent, secret: str) -> tuple[int, Outcome]:
        import httpx

        attempt = max(event.attempts, self.tries.get(event.id, 0)) + 1
        self.tries[event.id] = attempt
        body, headers = signed_request(event, secret, attempt, int(self.clock()))
        started = time.monotonic()
        try:
            resp = self.forward.post(self.forward_to, content=body, headers=headers)
            outcome = Outcome(resp.status_code, _ms(started))
        except httpx.HTTPError as exc:
            outcome = Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:200])
        return attempt, outcome

    def step(self, session: Session) -> int:
        """One long poll and everything it returned: forwarded, acked when the receiver took it."""
        polled = self.client.polling.poll(session.endpoint.id, limit=10, timeout=POLL_TIMEOUT_S)
        for event in polled:
            attempt, outcome = self.deliver(event, session.secret)
            if outcome.ok:
                self.client.polling.ack(session.endpoint.id, [event.id])
                self.tries.pop(event.id, None)
            print(event_line(datetime.now(), event, attempt, outcome, outcome.ok), file=self.out, flush=True)
        return len(polled)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _interrupt(_sig: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_listen(args: argparse.Namespace) -> int:
    import httpx

    from mittr_client import MittrError
    from mittr_client.sync import Client

    remote = resolve(args.server, args.api_key)
    events = parse_events(args.events)
    store = SecretStore(config_dir() / "listen.json")
    signal.signal(signal.SIGTERM, _interrupt)
    with Client(remote.url, remote.api_key or "") as client, httpx.Client(timeout=FORWARD_TIMEOUT_S) as forward:
        listener = Listener(client, forward, args.forward_to, events, store)
        try:
            session = listener.open()
        except MittrError as exc:
            raise SystemExit(f"mittr listen: {remote.url}: {exc.status} {exc.code}: {exc.message}") from exc
        ep = session.endpoint
        print(f"Forwarding {', '.join(events)} from {remote.url} to {args.forward_to}", flush=True)
        print(f"  endpoint {ep.id} ({'new' if session.created else 'reused'}; poll mode)", flush=True)
        print(f"  signing secret: {session.secret}", flush=True)
        print("Ready. Ctrl-C to stop.", flush=True)
        try:
            while True:
                try:
                    listener.step(session)
                except MittrError as exc:   # the server went away or refused: say so, wait, go on
                    print(f"mittr listen: {exc.status} {exc.code}: {exc.message}; retrying in 2 s",
                          file=sys.stderr, flush=True)
                    time.sleep(2)
        except KeyboardInterrupt:
            pass
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):       # a second Ctrl-C must not cut the clean-up short
                signal.signal(sig, signal.SIG_IGN)
            listener.close(session, args.keep)
        gone = "kept" if args.keep or not session.created else "deleted"
        print(f"Stopped; endpoint {ep.id} {gone}.", flush=True)
    return 0


def register(sub: Any) -> None:
    lp = sub.add_parser(
        "listen", help="forward a Mittr's events to a local URL (long-polls a poll-mode endpoint; no inbound port)",
        description="Creates (or reuses) a poll-mode endpoint for --events, long-polls it, POSTs each event to "
                    "--forward-to with the X-Mittr-* headers signed as a push delivery would be, and "
                    "acknowledges it on a 2xx; anything else is offered again after the server's "
                    "poll.visibility_timeout_s. Ctrl-C deletes the endpoint it created unless --keep.")
    lp.add_argument("--forward-to", required=True, metavar="URL", help="local receiver, e.g. http://localhost:3000/webhooks")
    lp.add_argument("--events", metavar="TYPES", help="comma-separated event types, wildcards allowed (default: *)")
    lp.add_argument("--keep", action="store_true", help="keep the endpoint on exit (the next run reuses it)")
    add_arguments(lp)
    lp.set_defaults(func=cmd_listen)
