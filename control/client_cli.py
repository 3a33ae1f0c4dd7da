"""Everyday operations from the command line against any Mittr (`mittr events|endpoints|deliveries
...`): each is one or two mittr_client calls and a way to print the answer, readable by default,
JSON with --json. Server and key as control/remote.py finds them."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, TextIO

from control.remote import add_arguments, client

if TYPE_CHECKING:
    from mittr_client import DeliveryAttempt, Endpoint, Event
    from mittr_client.models import Model
    from mittr_client.sync import Client

Command = Callable[["Client", argparse.Namespace, TextIO], None]


# --- how things are shown (pure) ----------------------------------------------------------------

def event_row(e: Event) -> str:
    return (f"{e.id}  {e.event_type or e.destination or '-':<28} {e.status:<10} "
            f"{e.attempts}/{e.max_attempts} attempts  {e.created_at}")


def event_detail(e: Event) -> str:
    lines = [event_row(e), f"payload: {json.dumps(e.payload, ensure_ascii=False)}"]
    if e.headers:
        lines.append(f"headers: {json.dumps(e.headers, ensure_ascii=False)}")
    lines += ["attempts:"] + [f"  {delivery_row(a)}" for a in e.delivery_attempts] if e.delivery_attempts else []
    return "\n".join(lines)


def endpoint_row(ep: Endpoint) -> str:
    return (f"{ep.id}  {ep.status:<8} {ep.delivery_mode:<7} {','.join(ep.event_types or []):<24} "
            f"{ep.url or '-'}  {ep.description}").rstrip()


def delivery_row(a: DeliveryAttempt) -> str:
    code = "-" if a.status_code is None else str(a.status_code)
    tail = f"  {a.error}" if a.error else ""
    return (f"{a.attempted_at}  {a.outcome:<8} {code:>4}  {a.duration_ms:>6} ms  event {a.event_id}  "
            f"endpoint {a.endpoint_id or '-'}  #{a.attempt_number}{tail}")


def unseen(page: list[DeliveryAttempt], seen: set[str]) -> list[DeliveryAttempt]:
    """The attempts of a newest-first page not shown yet, oldest first (the order a tail reads)."""
    return [a for a in reversed(page) if a.id not in seen]


class Seen:
    """Ids already shown, forgetting the oldest past `size` (a tail may run for days)."""

    def __init__(self, size: int = 10_000) -> None:
        self.ids: set[str] = set()
        self.order: deque[str] = deque()
        self.size = size

    def add(self, item_id: str) -> None:
        if item_id in self.ids:
            return
        self.ids.add(item_id)
        self.order.append(item_id)
        if len(self.order) > self.size:
            self.ids.discard(self.order.popleft())


def payload_from(text: str, stdin: TextIO) -> Any:
    """`--data` as JSON given inline, `@file`, or `-` for standard input."""
    if text == "-":
        text = stdin.read()
    elif text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise SystemExit(f"mittr: --data: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"mittr: --data: not JSON ({exc})") from exc


def _json(model: Model | list[Any] | dict[str, Any]) -> str:
    if isinstance(model, list):
        return json.dumps([getattr(m, "raw", m) for m in model], ensure_ascii=False)
    return json.dumps(getattr(model, "raw", model), ensure_ascii=False)


def _show(args: argparse.Namespace, out: TextIO, value: Any, human: str) -> None:
    print(_json(value) if args.json else human, file=out, flush=True)


# --- the commands -------------------------------------------------------------------------------

def events_send(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    if not args.type and not args.destination:
        raise SystemExit("mittr: events send: give --type (fan-out to endpoints) or --destination URL")
    e = c.events.create(payload_from(args.data, sys.stdin), event_type=args.type, destination=args.destination,
                        idempotency_key=args.idempotency_key)
    _show(args, out, e, event_row(e))


def events_get(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    e = c.events.get(args.id)
    _show(args, out, e, event_detail(e))


def events_list(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    rows = list(islice(c.events.list(status=args.status, limit=min(args.limit, 100)), args.limit))
    _show(args, out, rows, "\n".join(event_row(e) for e in rows) or "(no events)")


def events_replay(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    answer = c.events.replay(args.id)
    _show(args, out, answer, f"replayed {args.id}: {answer.get('status', 'queued')}")


def endpoints_list(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    rows = list(c.endpoints.list(limit=100))
    _show(args, out, rows, "\n".join(endpoint_row(ep) for ep in rows) or "(no endpoints)")


def endpoints_create(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    types = [t.strip() for t in args.events.split(",") if t.strip()]
    ep = c.endpoints.create(args.url, event_types=types, delivery_mode=args.mode, description=args.description)
    human = endpoint_row(ep) + (f"\nsigning secret (shown once): {ep.signing_secret}" if ep.signing_secret else "")
    _show(args, out, ep, human)


def endpoints_pause(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    ep = c.endpoints.pause(args.id)
    _show(args, out, ep, endpoint_row(ep))


def endpoints_resume(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    ep = c.endpoints.resume(args.id)
    _show(args, out, ep, endpoint_row(ep))


def tail_rounds(c: Client, args: argparse.Namespace) -> Iterator[list[DeliveryAttempt]]:
    """Each check's new attempts, oldest first; the first shows the last --lines."""
    seen = Seen()
    first = True
    while True:
        page = c.deliveries.page(range="1h", endpoint_id=args.endpoint, event_type=args.event_type,
                                 outcome=args.outcome, limit=200)
        new = unseen(page.items, seen.ids)
        for a in new:
            seen.add(a.id)
        yield new[max(0, len(new) - args.lines):] if first else new
        first = False
        if not args.follow:
            return
        time.sleep(args.interval)


def deliveries_tail(c: Client, args: argparse.Namespace, out: TextIO) -> None:
    for new in tail_rounds(c, args):
        for a in new:
            print(_json(a) if args.json else delivery_row(a), file=out, flush=True)


def run(command: Command) -> Callable[[argparse.Namespace], int]:
    """A command with its client; an API error is one line on stderr and exit 1, Ctrl-C exit 0."""
    def main(args: argparse.Namespace) -> int:
        from mittr_client import MittrError

        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            with client(args) as c:
                command(c, args, sys.stdout)
        except MittrError as exc:
            print(f"mittr: {exc.status} {exc.code}: {exc.message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        return 0
    return main


def register(sub: Any) -> None:
    def leaf(parent: Any, name: str, command: Command, help: str, args: Iterable[tuple[tuple[str, ...],
             dict[str, Any]]] = ()) -> None:
        p = parent.add_parser(name, help=help, description=help)
        for flags, kw in args:
            p.add_argument(*flags, **kw)
        p.add_argument("--json", action="store_true", help="print the API's JSON (a list as one array; "
                                                            "`deliveries tail`: one object per line)")
        add_arguments(p)
        p.set_defaults(func=run(command))

    ev = sub.add_parser("events", help="send, read, list and replay events (any Mittr, by API)")
    evs = ev.add_subparsers(dest="events_command", required=True)
    leaf(evs, "send", events_send, "send an event (a fresh idempotency key unless --idempotency-key)", [
        (("--type",), {"metavar": "EVENT_TYPE", "help": "event type: delivered to the endpoints subscribed to it"}),
        (("--destination",), {"metavar": "URL", "help": "a direct event to this URL instead of --type"}),
        (("--data",), {"required": True, "metavar": "JSON", "help": "the payload: JSON, @file or - (stdin)"}),
        (("--idempotency-key",), {"metavar": "KEY", "help": "a repeat with the same key answers 409"})])
    leaf(evs, "get", events_get, "one event with its payload and attempts", [(("id",), {})])
    leaf(evs, "list", events_list, "the newest events", [
        (("--status",), {"help": "queued, delivering, delivered, failed or dead"}),
        (("--limit",), {"type": int, "default": 20, "help": "how many (default 20)"})])
    leaf(evs, "replay", events_replay, "re-queue a failed or dead event", [(("id",), {})])

    en = sub.add_parser("endpoints", help="list, create, pause and resume endpoints (any Mittr, by API)")
    ens = en.add_subparsers(dest="endpoints_command", required=True)
    leaf(ens, "list", endpoints_list, "every endpoint")
    leaf(ens, "create", endpoints_create, "create an endpoint (prints its signing secret once)", [
        (("--url",), {"help": "where deliveries go (push mode)"}),
        (("--events",), {"required": True, "metavar": "TYPES",
                         "help": "comma-separated event types, wildcards allowed"}),
        (("--description",), {}),
        (("--mode",), {"choices": ["push", "poll"], "help": "delivery mode (default push)"})])
    leaf(ens, "pause", endpoints_pause, "stop deliveries to an endpoint (they wait)", [(("id",), {})])
    leaf(ens, "resume", endpoints_resume, "deliver to a paused endpoint again", [(("id",), {})])

    de = sub.add_parser("deliveries", help="follow delivery attempts (any Mittr, by API)")
    des = de.add_subparsers(dest="deliveries_command", required=True)
    leaf(des, "tail", deliveries_tail, "the latest delivery attempts, then new ones as they happen (Ctrl-C stops)", [
        (("--endpoint",), {"metavar": "ID", "help": "only this endpoint's attempts"}),
        (("--event-type",), {"metavar": "TYPE", "help": "only this event type's attempts"}),
        (("--outcome",), {"choices": ["success", "failure", "timeout"]}),
        (("-n", "--lines"), {"type": int, "default": 10, "help": "attempts shown at start (default 10)"}),
        (("--interval",), {"type": float, "default": 1.0, "help": "seconds between checks (default 1)"}),
        (("--no-follow",), {"dest": "follow", "action": "store_false", "help": "print and exit"})])
