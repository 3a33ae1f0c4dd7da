"""Run the locustfiles headless against a real `mittr serve`: `python -m bench.locust_run`.

Starts a sink (`bench.sink`, one port), then `mittr serve` on a fresh embedded PostgreSQL in a
temporary directory (API rate limit off, private addresses allowed so that the sink on 127.0.0.1
can be delivered to), reads the admin key it prints on first start, and runs each locustfile
named by `--files` with fixed users, spawn rate and duration (`locust --headless --csv`). The CSVs
(`<name>_stats.csv`, `<name>_stats_history.csv`, `<name>_failures.csv`) and a summary
(`summary.md`, `summary.json`: requests/s, failures, latency percentiles) go to `--out`.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.locust_run", description=__doc__)
    p.add_argument("--files", default="single:64,batch:8",
                   help="locustfile:users pairs, run one after the other (default single:64,batch:8)")
    p.add_argument("--spawn-rate", type=float, default=16, help="users started per second (default 16)")
    p.add_argument("--duration", default="30s", help="run time of each locustfile (default 30s)")
    p.add_argument("--workers", type=int, default=2, help="API workers of mittr serve (default 2)")
    p.add_argument("--shards", type=int, default=2, help="engine shards of mittr serve (default 2)")
    p.add_argument("--out", default="", help="output folder (default bench-results/locust-<timestamp>)")
    return p


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def summary_row(name: str, users: int, stats_csv: Path) -> dict[str, object]:
    """The `Aggregated` line of locust's stats CSV."""
    with stats_csv.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    r = rows[0]
    return {"file": name, "users": users, "requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
            "requestsPerSec": round(float(r["Requests/s"]), 1),
            **{f"p{q}": float(r[f"{q}%"]) for q in ("50", "90", "95", "99")},
            "avgMs": round(float(r["Average Response Time"]), 1), "maxMs": float(r["Max Response Time"])}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out or f"bench-results/locust-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mittr-locust-"))
    os.chmod(work, 0o755)
    sink_port, api_port = free_port(), free_port()
    env = {**os.environ, "MITTR_DATABASE__DATA_DIR": str(work / "pgdata"), "MITTR_API__DEFAULT_RATE_LIMIT": "0",
           "MITTR_ENGINE__ALLOW_PRIVATE_NETWORKS": "true", "MITTR_LOG__LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    procs: list[subprocess.Popen[bytes]] = []
    results: list[dict[str, object]] = []
    try:
        sink = subprocess.Popen([sys.executable, "-m", "bench.sink", "--ports", str(sink_port)],
                                stdout=subprocess.PIPE, stderr=open(out / "sink.log", "wb"), start_new_session=True)
        procs.append(sink)
        assert sink.stdout is not None
        if b"sink ready" not in sink.stdout.readline():
            raise RuntimeError("the sink did not start; see sink.log")
        serve_log = out / "serve.log"
        serve = subprocess.Popen([sys.executable, "-m", "control.cli", "serve", "--port", str(api_port),
                                  "--workers", str(args.workers), "--shards", str(args.shards)],
                                 stdout=open(serve_log, "wb"), stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
        procs.append(serve)
        key = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not key:
            found = re.search(r"(mtr_[A-Za-z0-9_\-]+)", serve_log.read_text(errors="replace"))
            key = found.group(1) if found else ""
            time.sleep(0.5)
        if not key:
            raise RuntimeError("mittr serve printed no admin key; see serve.log")
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        for spec in args.files.split(","):
            name, users = spec.split(":")
            print(f"locust {name}: {users} users, spawn rate {args.spawn_rate}/s, {args.duration}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(HERE / "locust" / f"{name}.py"), "--headless",
                 "-u", users, "-r", str(args.spawn_rate), "-t", args.duration, "--host",
                 f"http://127.0.0.1:{api_port}", "--csv", str(out / name), "--only-summary"],
                env={**env, "MITTR_API_KEY": key, "MITTR_SINK_URL": f"http://127.0.0.1:{sink_port}/hook",
                     "PYTHONPATH": str(HERE / "locust")},
                check=False, stdout=open(out / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
            results.append(summary_row(name, int(users), out / f"{name}_stats.csv"))
            print(f"  {results[-1]}", flush=True)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)    # the run's embedded Postgres data
    (out / "summary.json").write_bytes(orjson.dumps({"command": " ".join(["python -m bench.locust_run",
                                                                           *(argv or sys.argv[1:])]),
                                                     "results": results}, option=orjson.OPT_INDENT_2))
    lines = ["| locustfile | users | requests | failures | requests/s | p50 | p90 | p95 | p99 | max (ms) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['file']} | {r['users']} | {r['requests']} | {r['failures']} | {r['requestsPerSec']} | {r['p50']} "
              f"| {r['p90']} | {r['p95']} | {r['p99']} | {r['maxMs']} |" for r in results]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
