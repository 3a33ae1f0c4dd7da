"""`mittr`: the command line and the composition root that wires API, engine and store together."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from control.crypto import KEY_ENV, box_for, resolve_key
from control.errors import ApiError
from control.logs import setup_logging
from control.runtime import Database, open_database
from control.services.account import check_settings as check_account_settings
from control.services.api_keys import create_api_key
from control.services.keys import create_client, create_key
from control.services.principal import Principal
from control.services.retention import PruneReport, RetentionPolicy, prune
from control.services.sso import check_settings as check_sso_settings
from control.settings import Settings, SettingsError, load_settings
from control.store.db import connect, migrate
from control.store.queries import q

if TYPE_CHECKING:
    from engine.listen import Reservation
    from engine.supervisor import ApiStart, Supervisor

log = logging.getLogger("mittr.cli")
T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(getattr(args, "config", None))
        check_account_settings(settings)    # the plan catalogue and egress addresses, before anything starts
        check_sso_settings(settings)        # the [sso] providers
        return settings
    except (SettingsError, OSError) as exc:
        raise SystemExit(f"mittr: configuration error: {exc}") from exc


async def _prepare(settings: Settings, url: str) -> dict[str, Any] | None:
    """Migrate; on the very first start make the default tenant and its admin key."""
    conn = await connect(url)
    try:
        await migrate(conn, int(settings.database["partitions"]))
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('mittr_first_client'))")
            if await conn.fetchval(q("count_clients")):
                return None
            client = await create_client(conn, "default", box_for(settings.security["encryption_key"]))
            key = await create_key(conn, client["id"], "admin")
            return {"key": key.key, "clientId": str(client["id"]), "signingSecret": client["signing_secret"]}
    finally:
        await conn.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.supervisor import ApiStart, Supervisor, api_argv, child_env, shard_argv

    settings = _settings(args)
    setup_logging(settings.log["level"], role="supervisor")
    host, port = _address(args, settings)
    listen = _reserve(host, port)   # before the database starts: a port in use costs nothing
    shards = args.shards or int(settings.engine["shards"]) or (os.cpu_count() or 1)
    workers = args.workers or int(settings.server["workers"]) or min(4, os.cpu_count() or 1)
    db = open_database(settings)
    try:
        first = asyncio.run(_prepare(settings, db.url))
        sup = Supervisor(child_env(db.url, args.config, _metrics_dir(settings)))
        sup.env[KEY_ENV] = resolve_key(settings.security["encryption_key"])
        sup.env["MITTR_SERVER__WORKERS"] = str(workers)   # the API divides per-key rate limits by it
        member = EngineMember.join(db.url, shards, settings)
        api = sup.add("api", api_argv(host, port, workers, _drain_s(settings)))
        for i in range(shards):
            sup.add(f"shard-{i}", shard_argv(i, shards, member.id, member=member.id))

        def announce() -> None:
            if first is not None:
                print("First start: created the default client.")
                print(f"  Admin API key (shown once, keep it safe): {first['key']}")
                print(f"  Signing secret for direct deliveries:      {first['signingSecret']}")
            print(f"Mittr listening on http://{host}:{port} "
                  f"({shards} shard{'s' if shards != 1 else ''}, {workers} API worker{'s' if workers != 1 else ''}, "
                  f"database: {db.describe()})", flush=True)

        try:
            return _supervise(sup, settings, announce, ApiStart(api, host, port, listen), on_stopping=member.leave)
        finally:
            member.leave()
    finally:
        listen.release()
        db.stop_if_started()


def cmd_api(args: argparse.Namespace) -> int:
    from engine.supervisor import ApiStart, Supervisor, api_argv, child_env

    settings = _settings(args)
    setup_logging(settings.log["level"], role="supervisor")
    host, port = _address(args, settings)
    listen = _reserve(host, port)
    try:
        db = _external_db(settings)
        asyncio.run(_prepare(settings, db.url))
        workers = args.workers or int(settings.server["workers"]) or 1
        sup = Supervisor(child_env(db.url, args.config, _metrics_dir(settings)))
        sup.env[KEY_ENV] = resolve_key(settings.security["encryption_key"])
        api = sup.add("api", api_argv(host, port, workers, _drain_s(settings)))

        def announce() -> None:
            print(f"Mittr API listening on http://{host}:{port} "
                  f"({workers} worker{'s' if workers != 1 else ''}, database: {db.describe()})", flush=True)

        return _supervise(sup, settings, announce, ApiStart(api, host, port, listen))
    finally:
        listen.release()


def cmd_engine(args: argparse.Namespace) -> int:
    from engine.supervisor import Supervisor, child_env, shard_argv

    settings = _settings(args)
    setup_logging(settings.log["level"], role="supervisor")
    db = _external_db(settings)
    asyncio.run(_prepare(settings, db.url))
    shards = args.shards or int(settings.engine["shards"]) or (os.cpu_count() or 1)
    if args.first and not args.total:
        raise SystemExit("mittr: --first needs --total (fixed slots); leave both out to share partitions by membership")
    if args.total and args.first + shards > args.total:
        raise SystemExit("mittr: --first + --shards must not exceed --total")
    sup = Supervisor(child_env(db.url, args.config, _metrics_dir(settings)))
    sup.env[KEY_ENV] = resolve_key(settings.security["encryption_key"])
    if args.total:
        # The explicit override: fixed slots, no membership (every host must be told its slots).
        owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        for i in range(args.first, args.first + shards):
            sup.add(f"shard-{i}", shard_argv(i, args.total, owner))
        return _supervise(sup, settings)
    member = EngineMember.join(db.url, shards, settings)
    for i in range(shards):
        sup.add(f"shard-{i}", shard_argv(i, shards, member.id, member=member.id))
    try:
        return _supervise(sup, settings, on_stopping=member.leave)
    finally:
        member.leave()


class EngineMember:
    """This process as an engine member (engine/membership.py): registered by its first shard
    ready to work, kept alive by a heartbeat thread here, deregistered when it stops."""

    def __init__(self, url: str, member_id: str, heartbeat: Any) -> None:
        self.url, self.id, self.heartbeat = url, member_id, heartbeat
        self.left = False

    @classmethod
    def join(cls, url: str, shards: int, settings: Settings) -> EngineMember:
        from engine.membership import Heartbeat, new_member_id

        member = new_member_id()
        beat = Heartbeat(url, member, shards, float(settings.engine["lease_renew_s"]))
        beat.start()
        return cls(url, member, beat)

    def leave(self) -> None:
        """On a clean stop, before the shards drain: the others recompute at once and take each
        range as soon as its shard has released it, instead of after the expiry. A failure here
        only delays that to the expiry. Called again once the shards are gone: a shard still
        starting when the stop came may have registered the member after the first call."""
        from engine.membership import leave

        if not self.left:
            self.left = True
            self.heartbeat.stop()

        async def run() -> None:
            conn = await connect(self.url)
            try:
                await leave(conn, self.id)
            finally:
                await conn.close()
        try:
            asyncio.run(run())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("could not deregister the engine member; it expires by itself", extra={"error": str(exc)})


def _metrics_dir(settings: Settings) -> str:
    """The Prometheus multiprocess directory all children share; a temporary one goes at exit."""
    from control.metrics import prepare_multiproc_dir, remove_multiproc_dir

    path, made = prepare_multiproc_dir(str(settings.section("metrics")["multiproc_dir"]))
    if made:
        atexit.register(remove_multiproc_dir, path)
    return path


def _external_db(settings: Settings) -> Database:
    if not settings.database_url:
        raise SystemExit("mittr: running roles apart needs a shared database: set DATABASE_URL")
    return Database(settings.database_url)


def _supervise(sup: Supervisor, settings: Settings, announce: Callable[[], None] | None = None,
               api: ApiStart | None = None, on_stopping: Callable[[], None] | None = None) -> int:
    """Start the children; with an API, announce only once it answers and fail (1, everything
    stopped) if it cannot. Then restart what dies until SIGTERM / Ctrl-C, and drain."""
    from engine.supervisor import wait_http_ok

    signal.signal(signal.SIGTERM, sup.request_stop)
    signal.signal(signal.SIGINT, sup.request_stop)
    sup.start_all()
    if api is not None and not wait_http_ok(api.health_url, 60, api.child, stop=lambda: sup.stopping) \
            and not sup.stopping:
        print(api.failure(), file=sys.stderr, flush=True)
        sup.stop_all(10)
        return 1
    if not sup.stopping and announce is not None:
        announce()
    while not sup.stopping:
        sup.watch_once()
        time.sleep(0.2)
    print("mittr: stopping (draining in-flight deliveries)...", flush=True)
    if on_stopping is not None:
        on_stopping()
    sup.stop_all(_drain_s(settings) + 10)
    return 0


def _drain_s(settings: Settings) -> float:
    return float(settings.engine["drain_timeout_s"])


def _address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    return str(args.host or settings.server["host"]), int(args.port or settings.server["port"])


def _reserve(host: str, port: int) -> Reservation:
    """Hold the API's address, or stop here with the reason (nothing has been started yet)."""
    from engine.listen import ListenError, reserve

    try:
        return reserve(host, port)
    except ListenError as exc:
        raise SystemExit(f"mittr: {exc}") from exc


def on_migrated_database(settings: Settings, work: Callable[[asyncpg.Connection, list[str]], Awaitable[T]]) -> T:
    """Run one-shot `work` on a connection to the (embedded, started if need be) database after
    applying migrations, and stop an embedded server this started. Gets the migrations applied."""
    db = open_database(settings)
    try:
        async def run() -> T:
            conn = await connect(db.url)
            try:
                applied = await migrate(conn, int(settings.database["partitions"]))
                return await work(conn, applied)
            finally:
                await conn.close()
        return asyncio.run(run())
    finally:
        db.stop_if_started()


def cmd_migrate(args: argparse.Namespace) -> int:
    async def applied_names(_conn: asyncpg.Connection, applied: list[str]) -> list[str]:
        return applied

    applied = on_migrated_database(_settings(args), applied_names)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _key_body(args: argparse.Namespace) -> dict[str, Any]:
    """`keys create` flags as the body of POST /api/v1/api-keys, so both are checked alike."""
    scopes = [s.strip() for raw in [*(args.scope or []), *(args.scopes or [])] for s in raw.split(",") if s.strip()]
    body: dict[str, Any] = {"name": args.name, "rateLimit": args.rate_limit, "projectId": args.project}
    if scopes:
        body["scopes"] = scopes
    if args.expires_in_days is not None:
        if args.expires_in_days <= 0:
            raise ApiError("--expires-in-days: must be more than 0")
        body["expiresAt"] = (datetime.now(UTC) + timedelta(days=args.expires_in_days)).isoformat()
    return body


def cmd_keys_create(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run(conn: asyncpg.Connection, _applied: list[str]) -> dict[str, Any]:
        box = box_for(settings.security["encryption_key"])
        async with conn.transaction():
            secret = None
            if args.new_client:
                client = await create_client(conn, args.new_client, box)
                client_id, secret = client["id"], client["signing_secret"]
            else:
                row = await conn.fetchrow(q("first_client"))
                if row is None:
                    client = await create_client(conn, "default", box)
                    client_id, secret = client["id"], client["signing_secret"]
                else:
                    client_id = row["id"]
            who = Principal(client_id, None, frozenset(), None, label="cli")
            out = {**await create_api_key(conn, who, _key_body(args)), "clientId": str(client_id)}
            if secret is not None:
                out["signingSecret"] = secret
            return out

    try:
        out = on_migrated_database(settings, run)
    except ApiError as exc:          # the API's own checks: unknown scope, project, past expiry ...
        raise SystemExit(f"mittr: {exc.message}") from exc
    if args.json:
        print(json.dumps(out))
    else:
        print(f"API key for client {out['clientId']} (shown once): {out['key']}")
        if "signingSecret" in out:
            print(f"Signing secret for the new client's direct deliveries: {out['signingSecret']}")
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from api.csrf import origin_of
    from control.errors import ApiError
    from control.services.accounts import provision_member

    settings = _settings(args)
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    try:
        workspace = uuid.UUID(args.workspace) if args.workspace else None
    except ValueError as exc:
        raise SystemExit("mittr: --workspace: a workspace id (UUID)") from exc
    public = str(settings.section("auth")["public_url"]).strip()
    base = (origin_of(public) if public else None) or _local_url(settings)   # as the API's mails do

    async def run(conn: asyncpg.Connection, _applied: list[str]) -> dict[str, Any]:
        return await provision_member(conn, settings, args.email, args.role, workspace, password, base)

    try:
        out = on_migrated_database(settings, run)
    except ApiError as exc:          # the API's own checks: e-mail, role, password rule, workspace
        raise SystemExit(f"mittr: {exc.message}") from exc
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['user']['email']} is {out['role']} of workspace {out['workspace']['name']!r} "
          f"({out['workspace']['id']})")
    if out["resetLink"]:
        print(f"Link to choose a password (works once, for {out['resetLinkExpiresInHours']:g} hours; "
              f"or POST its token to /auth/reset-password):\n  {out['resetLink']}")
    return 0


def _local_url(settings: Settings) -> str:
    """This server's address when auth.public_url is not set (links printed by the CLI)."""
    host = str(settings.server["host"])
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{'[' + host + ']' if ':' in host else host}:{settings.server['port']}"


def cmd_prune(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        policy = RetentionPolicy.from_settings(settings)
    except SettingsError as exc:
        raise SystemExit(f"mittr: configuration error: {exc}") from exc
    verb = "would remove" if args.dry_run else "removed"

    def progress(step: str, r: PruneReport) -> None:
        done = {"events": f"{r.events:,} events ({r.tasks:,} deliveries)",
                "attempts": f"{len(r.partitions)} attempt partitions, {r.default_attempts:,} default-partition rows",
                "rollups": f"{r.rollups:,} rollup rows"}[step]
        print(f"  {step}: {verb} {done} so far", flush=True)

    print(f"Retention{' (dry run)' if args.dry_run else ''}: events {_days(policy.events_days)}, "
          f"attempts {_days(policy.attempts_days)}, rollups {_days(policy.rollups_days)}", flush=True)
    async def run(conn: asyncpg.Connection, _applied: list[str]) -> PruneReport:
        return await prune(conn, policy, dry_run=args.dry_run, progress=progress)

    report = on_migrated_database(settings, run)
    if report.skipped:
        print(f"mittr: nothing done: {report.skipped}; try again later", file=sys.stderr)
        return 1
    rows = f" ({report.partition_rows:,} rows)" if report.partition_rows is not None else ""
    print(f"Summary ({verb}):")
    print(f"  events:             {report.events:,} ({report.tasks:,} deliveries)")
    print(f"  attempt partitions: {len(report.partitions)}{rows}"
          + (f": {', '.join(report.partitions)}" if report.partitions else ""))
    if report.partitions_skipped:
        print(f"  busy, left for the next run: {', '.join(report.partitions_skipped)}")
    print(f"  default partition:  {report.default_attempts:,} attempts")
    print(f"  rollup rows:        {report.rollups:,}")
    return 0


def _days(days: int) -> str:
    return f"{days} days" if days else "kept forever"


def cmd_status(args: argparse.Namespace) -> int:
    from control.services.engine_status import engine_status, render

    settings = _settings(args)

    async def run(conn: asyncpg.Connection, _applied: list[str]) -> dict[str, Any] | str:
        status = await engine_status(conn, float(settings.engine["lease_ttl_s"]))
        return status.json() if args.json else render(status)

    out = on_migrated_database(settings, run)
    print(json.dumps(out) if args.json else out)
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = open_database(settings)
    print(db.url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mittr", description="Mittr: self-hosted webhook delivery engine.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="TOML file overriding config/default.toml")

    s = sub.add_parser("serve", help="run the API and the engine on this machine (embedded Postgres by default)")
    common(s)
    s.add_argument("--host", help="address to listen on (default: server.host)")
    s.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    s.add_argument("--shards", type=int, help="engine shard processes (default: one per CPU core)")
    s.add_argument("--workers", type=int, help="API worker processes (default: server.workers)")
    s.set_defaults(func=cmd_serve)

    a = sub.add_parser("api", help="run only the API (multi-host; needs DATABASE_URL)")
    common(a)
    a.add_argument("--host")
    a.add_argument("--port", type=int)
    a.add_argument("--workers", type=int)
    a.set_defaults(func=cmd_api)

    e = sub.add_parser("engine", help="run only engine shards (multi-host; needs DATABASE_URL); they join the "
                                      "live engine members and take their share of the partitions by themselves")
    common(e)
    e.add_argument("--shards", type=int, help="shards to run here")
    e.add_argument("--first", type=int, default=0,
                   help="override: index of the first fixed slot run here (with --total; no membership)")
    e.add_argument("--total", type=int, default=0,
                   help="override: fixed slots across all hosts; every host must then be given its --first "
                        "(default: no fixed slots, partitions follow the live members)")
    e.set_defaults(func=cmd_engine)

    st = sub.add_parser("status", help="engine members, their partition ranges, lease epochs and ages, backlog")
    common(st)
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_status)

    m = sub.add_parser("migrate", help="apply database migrations")
    common(m)
    m.set_defaults(func=cmd_migrate)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create an API key (and optionally a new client)")
    common(kc)
    kc.add_argument("--name", required=True, help="a name for the key")
    kc.add_argument("--new-client", metavar="CLIENT_NAME", help="create a new tenant with this name")
    kc.add_argument("--scope", action="append", help="limit the key to a scope (repeatable)")
    kc.add_argument("--scopes", action="append", metavar="S1,S2",
                    help="comma-separated scopes, e.g. events:write,endpoints:read (default: *)")
    kc.add_argument("--rate-limit", type=int, metavar="N", help="requests per second (0 = unlimited)")
    kc.add_argument("--expires-in-days", type=float, metavar="D", help="the key stops working after D days")
    kc.add_argument("--project", metavar="PROJECT_ID", help="bind the key to one project of the client")
    kc.add_argument("--json", action="store_true", help="print one JSON object")
    kc.set_defaults(func=cmd_keys_create)

    u = sub.add_parser("users", help="manage people (accounts and their workspace memberships)")
    usub = u.add_subparsers(dest="users_command", required=True)
    uc = usub.add_parser("create", help="create a person (or take an existing one) into a workspace with a role; "
                                        "without --password-stdin, prints a one-time link to choose a password")
    common(uc)
    uc.add_argument("--email", required=True, help="the person's e-mail address (counts as verified)")
    uc.add_argument("--role", required=True, choices=["admin", "editor", "viewer"], help="their role in the workspace")
    uc.add_argument("--workspace", metavar="ID", help="the workspace (client) id (default: the first workspace)")
    uc.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of standard input (it must meet the password rule)")
    uc.add_argument("--json", action="store_true", help="print one JSON object")
    uc.set_defaults(func=cmd_users_create)

    # `mittr bench ...` is handed whole to bench.e2e (see main); listed here for `mittr --help`.
    sub.add_parser("bench", help="end-to-end benchmark (same flags as python -m bench.e2e; --help for them)",
                   add_help=False)

    pr = sub.add_parser("prune", help="remove data older than the [retention] settings allow, now")
    common(pr)
    pr.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")
    pr.set_defaults(func=cmd_prune)

    from control import client_cli, listen
    listen.register(sub)
    client_cli.register(sub)

    d = sub.add_parser("db", help="database helpers")
    dsub = d.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("url", help="start the embedded database if needed and print its URL")
    common(du)
    du.set_defaults(func=cmd_db_url)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from bench.e2e import main as bench_main  # a thin front door: same flags, same output

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
