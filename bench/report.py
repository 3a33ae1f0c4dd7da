"""Writes a harness run's results: results.json, a markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def _rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for mode in ("single", "batch"):
        ing = r.get(f"ingest_{mode}")
        if ing:
            rows.append((f"ingest, {mode} POSTs (accepted events/s)", f"{ing['eventsPerSec']:,.0f}"))
    fl = r.get("floor")
    if fl:
        rows.append(("same-stack floor: bare BlackSheep + asyncpg insert, single POSTs (requests/s)",
                     f"{fl['perSec']:,.0f}"))
    if "singleOverFloor" in r:
        rows.append(("single ingest / floor", f"{r['singleOverFloor']:.2f}"))
    if "batchOverSingle" in r:
        rows.append(("batch ingest / single ingest", f"{r['batchOverSingle']}x"))
    d = r.get("drain")
    if d:
        rows.append(("delivered events/s (backlog drain, every attempt recorded)", f"{d['deliveredPerSec']:,.0f}"))
    c = r.get("ceiling")
    if c:
        rows.append((f"raw ceiling: asyncio protocol, prebuilt requests, {c['processes']} proc x "
                     f"{c['concurrencyPerProcess']} in flight (req/s)", f"{c['perSec']:,.0f}"))
    if r.get("deliveredOverCeiling") is not None:
        rows.append(("delivered/s as a fraction of the raw ceiling", f"{r['deliveredOverCeiling']:.2f}"))
    ref = r.get("aiohttpReference")
    if ref:
        rows.append((f"reference: bare aiohttp client, {ref['processes']} proc x {ref['concurrencyPerProcess']} "
                     "in flight (req/s)", f"{ref['perSec']:,.0f}"))
    if r.get("deliveredOverAiohttp") is not None:
        rows.append(("delivered/s / aiohttp reference", f"{r['deliveredOverAiohttp']:.2f}"))
    if d and "cpuUsPerDelivered" in d:
        cpu = d["cpuUsPerDelivered"]
        rows.append(("CPU us per delivered event: total (shards + Postgres + API)",
                     f"{cpu['total']} ({cpu['shards']} + {cpu['postgres']} + {cpu['api']})"))
    if d and "cpuUsPerDeliveredSteady" in d:
        cpu = d["cpuUsPerDeliveredSteady"]
        rows.append(("  the same from the first delivery on (shards' start-up left out)",
                     f"{cpu['total']} ({cpu['shards']} + {cpu['postgres']} + {cpu['api']})"))
    wa = r.get("writeAmplification")
    if wa:
        rows.append(("WAL bytes per delivered event (drain)", f"{wa['walBytesPerDelivered']:,.0f}"))
        for t in ("tasks", "events", "delivery_attempts", "delivery_rollups"):
            v = wa.get(t)
            if v:
                rows.append((f"{t} per delivered: inserts / updates (HOT) / index bytes",
                             f"{v['insertsPerDelivered']} / {v['updatesPerDelivered']} "
                             f"({v['hotUpdatesPerDelivered']}) / {v['indexBytesPerDelivered']:,.0f}"))
    lat = r.get("latencyMs")
    if lat:
        rows.append(("end-to-end latency p50 / p95 / p99 (ms, accept -> sink)",
                     f"{lat['p50']} / {lat['p95']} / {lat['p99']}"))
    o = r.get("processingOverheadUs")
    if o and o["p50"] is not None:
        rows.append(("processingOverheadUs p50 / p99", f"{o['p50']:.0f} / {o['p99']:.0f}"))
    if d:
        m = d["shardRssMiB"]
        rows.append(("shard RSS MiB start / middle / end", f"{m['start']} / {m['middle']} / {m['end']}"))
    led = r.get("ledger")
    if led:
        rows.append(("ledger: accepted = delivered + failed + dead + queued + delivering",
                     f"{led['accepted']} = {led['delivered']} + {led['failed']} + {led['dead']} + {led['queued']}"
                     f" + {led['delivering']}"))
        rows.append(("attempts recorded / requests the sink received", f"{led['attemptsRecorded']} / "
                     f"{led['sinkRequests']}"))
        rows.append(("ledger verdict (delivered == accepted, attempts == sink requests)",
                     "holds" if led["holds"] else "BROKEN: run void"))
    return rows


def markdown(r: dict[str, Any]) -> str:
    lines = [f"`{r['command']}`", "", "| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in _rows(r)]
    for key, phase in (("statements_ingest_single", "single ingest"), ("statements_ingest_batch", "batch ingest"),
                       ("statements", "the drain")):
        top = r.get(key)
        if top:
            lines += ["", f"Heaviest statements during {phase} (pg_stat_statements):", "",
                      "| calls | rows | ms | WAL bytes | FPI | statement |", "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {s['calls']} | {s['rows']} | {s['ms']} | {s['wal_bytes']:,} | {s['wal_fpi']} | "
                      f"`{s['query'].replace('|', '/')}` |" for s in top]
    return "\n".join(lines) + "\n"


def chart(path: Path, r: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    per_second = sorted((int(k), v) for k, v in r.get("sinkPerSecond", {}).items())
    if per_second:
        t0 = per_second[0][0]
        left.plot([t - t0 for t, _ in per_second], [v for _, v in per_second], marker=".")
    c = r.get("ceiling")
    if c:
        left.axhline(c["perSec"], color="grey", linestyle="--", label=f"raw ceiling {c['perSec']:,.0f}/s")
        ref = r.get("aiohttpReference")
        if ref:
            left.axhline(ref["perSec"], color="orange", linestyle=":", label=f"aiohttp {ref['perSec']:,.0f}/s")
        left.legend()
    left.set_title("delivered per second (sink receipts, backlog drain)")
    left.set_xlabel("seconds")
    left.set_ylabel("events/s")
    lat = r.get("latencySamplesMs") or []
    if lat:
        right.hist(lat, bins=60)
    right.set_title("end-to-end latency (accept -> sink receipt)")
    right.set_xlabel("ms")
    right.set_ylabel("events")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(out: Path, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    (out / "results.md").write_text(markdown(results))
    chart(out / "chart.png", results)
