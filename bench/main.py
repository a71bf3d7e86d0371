"""``python -m bench``: run every measure, print the table, write bench/results/latest.md."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
import traceback
from pathlib import Path

from bench.fixture import KINDS, LABELS, Fixture
from bench.report import Row, command_line, cpu_busy, machine, markdown, table

RESULTS = Path(__file__).resolve().parent / "results"
MEASURES = ("throughput", "callgrind", "inproc", "pg", "gateway", "balances", "orders", "startup", "webhooks")
# issue 8 §5: against /healthz routed first (as it ships): bearer and HMAC >= 0.8x, RSA-PSS >= 0.6x
TARGET_RPS = {"bearer": 0.8, "hmac": 0.8, "rsa": 0.6}
BARE = {"bearer": "HMAC-SHA256", "hmac": "HMAC-SHA256", "rsa": "RSA-2048 PSS verify", "ed25519": "Ed25519 verify"}
PG_TARGET = 1.2
GATEWAY_TARGET = 1.3
ORDERS_TARGET = 1.2  # issue 19: order placement through Strongroom / bare ccxt create_order, p50
STARTUP_TARGET = 1.3  # cold start to /readyz vs a minimal FastAPI + SQLAlchemy app (issue 23 §4)
BALANCES_TARGET_LATENCY_MS = 100  # the simulated exchange latency the balances target is judged at


def log(msg: str) -> None:
    print(msg, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="short run (~2-3 min): fewer rounds, fewer requests, 100k instead of 1M PostgreSQL keys")
    p.add_argument("--only", default=",".join(MEASURES), help=f"comma-separated subset of {','.join(MEASURES)}")
    p.add_argument("--rounds", type=int, help="interleaved healthz/kind rounds (default 6, quick 2)")
    p.add_argument("--duration", type=float, help="seconds per load run (default 2; wrk takes whole seconds)")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator")
    p.add_argument("--server-log-level", default="info",
                   help="STRONGROOM_LOG_LEVEL of the server (default info, as shipped: uvicorn logs each request)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk; use the Python client")
    p.add_argument("--python-client", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--cg-requests", type=int, help="N1 for callgrind (N2 = 2 x N1; default 100, quick 40)")
    p.add_argument("--before-ref", default="fc3081c",
                   help="git ref of the 'before' tree for the callgrind comparison ('' to skip)")
    p.add_argument("--repeats", type=int, help="timing repeats for the in-process measure (default 7, quick 3)")
    p.add_argument("--pg-keys", type=int, help="keys for the large PostgreSQL figure (default 1000000, quick 100000)")
    p.add_argument("--gateway-rounds", type=int, help="interleaved rounds of the gateway measure (default 30, quick 10)")
    p.add_argument("--gateway-before", type=Path,
                   help="a checkout of an older tree: the gateway measure also times connects on its code")
    p.add_argument("--balances-rounds", type=int, help="rounds per latency of the balances measure (default 5, quick 2)")
    p.add_argument("--balances-latencies", default="0,50,100",
                   help="simulated exchange latencies (ms, comma-separated) of the balances measure")
    p.add_argument("--orders-rounds", type=int, help="interleaved rounds of the orders measure (default 10, quick 4)")
    p.add_argument("--orders-per-round", type=int, help="orders per side per round (default 25, quick 10); "
                                                          ">= 200 per side in all for the issue's figure")
    p.add_argument("--orders-latencies", default="0,50",
                   help="simulated exchange latencies (ms, comma-separated) of the orders measure; the target is "
                        "judged at the first")
    p.add_argument("--webhook-events", type=int, help="events of the webhooks measure (default 10000)")
    p.add_argument("--webhook-rounds", type=int, help="interleaved rounds of the webhooks measure (default 3, quick 1)")
    p.add_argument("--profile", action="store_true", help="also write cProfile reports to bench/results/")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.md", help="where to write the Markdown results")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (2 if q else 6)
    args.duration = args.duration or 2
    args.cg_requests = args.cg_requests or (40 if q else 100)
    args.repeats = args.repeats or (3 if q else 7)
    args.pg_keys = args.pg_keys or (100_000 if q else 1_000_000)
    args.gateway_rounds = args.gateway_rounds or (10 if q else 30)
    args.balances_rounds = args.balances_rounds or (2 if q else 5)
    args.orders_rounds = args.orders_rounds or (4 if q else 10)
    args.orders_per_round = args.orders_per_round or (10 if q else 25)
    args.orders_latencies = tuple(int(x) for x in args.orders_latencies.split(",") if x.strip())
    args.webhook_events = args.webhook_events or 10_000
    args.webhook_rounds = args.webhook_rounds or (1 if q else 3)
    args.balances_latencies = tuple(int(x) for x in args.balances_latencies.split(",") if x.strip())
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.only) - set(MEASURES)
    if unknown:
        p.error(f"unknown measure(s): {', '.join(sorted(unknown))}")
    return args


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def run_throughput(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import throughput

    result = throughput.measure(fixture, rounds=args.rounds, duration=args.duration,
                                connections=args.connections, warmup=1, allow_install=not args.no_install,
                                force_python=args.python_client, log_level=args.server_log_level)
    base = statistics.median(result.rps("healthz"))
    rows.append(Row("req/s GET /healthz (no auth)", f"{fmt_int(base)} req/s"))
    for kind in KINDS:
        rps = statistics.median(result.rps(kind))
        ratio = statistics.median(result.ratios(kind))
        target = TARGET_RPS.get(kind)
        rows.append(Row(f"req/s GET /v1/me, {LABELS[kind]}", f"{fmt_int(rps)} req/s", f"{fmt_int(base)} req/s",
                        f"{ratio:.2f}x", f">= {target:.2f}x" if target else "-",
                        ("PASS" if ratio >= target else "FAIL") if target else "info"))
    notes.append(f"Throughput: one `strongroom serve` process (uvicorn, server log level "
                 f"{args.server_log_level}, SQLite), load generator {result.client}; {result.rounds} interleaved "
                 f"rounds of {result.duration:g} s runs (healthz, kind, healthz, kind, ...); value = median req/s, "
                 f"ratio = median over rounds of kind / mean(healthz runs just before and after).")
    spread = {k: ", ".join(fmt_int(x) for x in result.rps(k)) for k in ("healthz", *KINDS)}
    notes.append("Throughput runs (req/s, in order): " + "; ".join(f"{k}: {v}" for k, v in spread.items()))
    problems = result.failures()
    if problems:
        notes.append("!! Some load runs had failed requests: " + "; ".join(problems)
                     + f" (refusal reasons audited by the server: {result.refusals or 'none'})")
        log("!! " + "; ".join(problems))


TARGET_CG = {"bearer": 0.8, "hmac": 0.8, "rsa": 0.6}


def run_callgrind(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import callgrind

    n1 = args.cg_requests
    apps, seconds = callgrind.measure(n1, 2 * n1, before_ref=args.before_ref or None)
    for label, counts in apps.items():
        first = counts.get("healthz_first", counts["healthz"])
        rows.append(Row(f"instructions/request GET /healthz, {label}", f"{counts['healthz'] / 1e6:.3f} M"))
        if "healthz_first" in counts:
            rows.append(Row(f"instructions/request GET /healthz routed first, {label}", f"{first / 1e6:.3f} M"))
        for kind in KINDS:
            if kind not in counts:
                continue
            v = counts[kind]
            ours = label == "this tree"
            target = TARGET_CG.get(kind)
            rows.append(Row(f"instructions/request /v1/me, {LABELS[kind]}, {label}", f"{v / 1e6:.3f} M",
                            f"{first / 1e6:.3f} M (healthz first)", f"speed {first / v:.2f}x",
                            f">= {target:.2f}x" if ours and target else "-",
                            ("PASS" if first / v >= target else "FAIL") if ours and target else "info"))
    forward = apps["this tree"].get("forward")
    if forward:  # nginx's sub-request for a bearer key (issue 23: >= 1.0x /healthz routed first)
        first = apps["this tree"].get("healthz_first", apps["this tree"]["healthz"])
        rows.append(Row("instructions/request /v1/auth/forward, bearer key, this tree", f"{forward / 1e6:.3f} M",
                        f"{first / 1e6:.3f} M (healthz first)", f"speed {first / forward:.2f}x", ">= 1.00x",
                        "PASS" if first / forward >= 1.0 else "FAIL"))
    ours = apps["this tree"]["bearer"]
    for label, counts in apps.items():
        if label.startswith("peer:"):
            rows.append(Row(f"instructions/request /v1/me bearer: this tree vs {label}", f"{ours / 1e6:.3f} M",
                            f"{counts['bearer'] / 1e6:.3f} M", f"{ours / counts['bearer']:.2f}x instr."))
    notes.append(f"Instructions: valgrind callgrind, in-process raw ASGI calls (no sockets, no uvicorn), "
                 f"(Ir of {2 * n1} requests - Ir of {n1}) / {n1}, GC collected before and off inside each batch, "
                 f"key cache kept warm; {seconds:.0f} s under valgrind. 'healthz routed first' moves /healthz to "
                 f"the front of the route list (this tree ships it there; the tree before the architecture step "
                 f"registered it after the /v1 routers). 'speed' = healthz-first instructions / the row's. "
                 f"Peers (bench/peer_apps.py) send the key in X-API-Key and check it against an in-memory table.")


def run_inproc(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import inproc

    profile_dir = RESULTS if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    found = inproc.measure(fixture, repeats=args.repeats, quick=args.quick, profile_dir=profile_dir)
    for kind in KINDS:
        v = found[kind]
        ok = v.auth_us <= v.budget_us
        rows.append(Row(f"verify time in-process, {LABELS[kind]}", f"{v.auth_us:.1f} us",
                        f"{v.bare_us:.1f} us ({BARE[kind]})", f"{v.auth_us / v.bare_us:.2f}x",
                        f"<= 2 x bare + 20 = {v.budget_us:.1f} us",
                        f"{'PASS' if ok else 'FAIL'} (margin {v.margin_us:+.1f} us)"))
    from bench import asgi

    req = asgi.measure(fixture, repeats=3 if args.quick else 5)
    base = req["healthz"]
    rows.append(Row("in-process request GET /healthz (raw ASGI, no HTTP)", f"{base:.1f} us"))
    for kind in KINDS:
        rows.append(Row(f"in-process request /v1/me, {LABELS[kind]}", f"{req[kind]:.1f} us", f"{base:.1f} us",
                        f"speed {base / req[kind]:.2f}x"))
    rows.append(Row("in-process request /v1/me, bearer, authenticate() stubbed", f"{req['bearer_stub']:.1f} us",
                    f"{req['bearer']:.1f} us (real)", f"auth = {req['bearer'] - req['bearer_stub']:.1f} us"))
    rows.append(Row("in-process request GET /healthz routed first (harness only)", f"{req['healthz_first']:.1f} us",
                    f"{base:.1f} us", f"{req['healthz_first'] / base:.2f}x"))
    notes.append(f"Verification: `Authenticator.authenticate` awaited directly on a warm key cache, fresh "
                 f"signature per call; best of {args.repeats} repeats (as timeit advises), GC off in timed loops; "
                 f"the bare operation timed the same way. In-process requests: the raw ASGI loop of the callgrind "
                 f"measure, timed natively (best of repeats, GC off); the stubbed row replaces "
                 f"`Authenticator.authenticate` with a function returning the principal, so the difference is "
                 f"what authentication costs inside a request.")


def run_pg(args, rows: list[Row], notes: list[str]) -> None:
    from bench import pgscale

    problem = pgscale.available()
    if problem:
        log("!" * 78)
        log(f"!! PostgreSQL at {pgscale.PG_URL} does not answer: {problem}")
        log("!! The 1,000 vs 1,000,000 keys measure is NOT MEASURED.")
        log("!" * 78)
        rows.append(Row("cold verify, bearer, 1M keys in PostgreSQL", "NOT MEASURED", "-", "-",
                        f"<= {PG_TARGET}x the 1k figure", "NOT MEASURED"))
        notes.append(f"PostgreSQL was not reachable ({problem}): the scale measure did not run.")
        return
    r = pgscale.measure(args.pg_keys, passes=4)
    big = f"{r.large_keys / 1e6:g}M" if r.large_keys >= 1_000_000 else f"{r.large_keys / 1e3:g}k"
    small = f"{r.small_keys / 1e3:g}k"
    for kind, label in (("bearer", "bearer (hash lookup + record)"), ("ed25519", "Ed25519 (record by key id)")):
        s, l = r.small[kind], r.large[kind]
        targeted = kind == "bearer"
        ratio = l.median / s.median
        rows.append(Row(f"cold verify median, {label}, {big} keys in PostgreSQL", f"{l.median:.2f} ms",
                        f"{s.median:.2f} ms ({small} keys)", f"{ratio:.2f}x",
                        f"<= {PG_TARGET}x" if targeted else "-",
                        ("PASS" if ratio <= PG_TARGET else "FAIL") if targeted else "info"))
        rows.append(Row(f"cold verify p95, {label}, {big} keys in PostgreSQL", f"{l.p95:.2f} ms",
                        f"{s.p95:.2f} ms ({small} keys)", f"{l.p95 / s.p95:.2f}x"))
    notes.append(f"PostgreSQL {r.server_version}: cold-cache verification (key cache emptied before each call, "
                 f"so every call reads the database through the worker thread); {len(r.large['bearer'].samples)} "
                 f"bearer and {len(r.large['ed25519'].samples)} Ed25519 samples per size; "
                 f"{r.large_keys - r.small_keys:,} keys inserted in {r.insert_seconds:.0f} s.")


def run_startup(args, rows: list[Row], notes: list[str]) -> None:
    from bench import startup

    r = startup.measure(3 if args.quick else 7, before_ref=args.before_ref or None)
    minimal = r.median(startup.MINIMAL_LABEL)
    for label in r.runs:
        if label == startup.MINIMAL_LABEL:
            continue
        ratio = r.median(label) / minimal
        ours = label == "this tree"
        rows.append(Row(f"cold start to /readyz 200, {label}", f"{r.median(label):.2f} s",
                        f"{minimal:.2f} s ({startup.MINIMAL_LABEL})", f"{ratio:.2f}x",
                        f"<= {STARTUP_TARGET}x" if ours else "-",
                        ("PASS" if ratio <= STARTUP_TARGET else "FAIL") if ours else "info"))
        rows.append(Row(f"CPU seconds at the first 200 of /readyz, {label}", f"{r.cpu_median(label):.2f} s",
                        f"{r.cpu_median(startup.MINIMAL_LABEL):.2f} s",
                        f"{r.cpu_median(label) / r.cpu_median(startup.MINIMAL_LABEL):.2f}x"))
        rows.append(Row(f"import strongroom.app, {label}", f"{statistics.median(r.imports[label]):.2f} s"))
    counts = startup.instructions(1 if args.quick else 3)
    ours, base = statistics.median(counts["this tree"]), statistics.median(counts[startup.MINIMAL_LABEL])
    rows.append(Row("instructions to the first 200 of /readyz (callgrind, every thread)", f"{ours / 1e6:.0f} M",
                    f"{base / 1e6:.0f} M ({startup.MINIMAL_LABEL})", f"{ours / base:.2f}x", f"<= {STARTUP_TARGET}x",
                    "PASS" if ours / base <= STARTUP_TARGET else "FAIL"))
    notes.append("Cold start: `strongroom serve` (SQLite, migrated, one user, bytecode compiled) from process start "
                 "to the first 200 of /readyz, polled every 5 ms, against a minimal FastAPI + SQLAlchemy app under "
                 "uvicorn timed the same way; interleaved, medians of "
                 f"{len(next(iter(r.runs.values())))} runs. Runs: "
                 + "; ".join(f"{k}: {', '.join(f'{x:.2f}' for x in v)}" for k, v in r.runs.items()))


def run_gateway(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import gateway

    workdir = Path(tempfile.mkdtemp(prefix="strongroom-gw-"))
    try:
        r = gateway.measure(fixture, workdir, rounds=args.gateway_rounds, before=args.gateway_before,
                            log_level=args.server_log_level)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bare = r.median("bare")
    ratio = r.median("connect") / bare
    rows.append(Row("connect POST /v1/exchange-accounts (Binance, mock)", f"{r.median('connect'):.1f} ms",
                    f"{bare:.1f} ms (bare ccxt)", f"{ratio:.2f}x", f"<= {GATEWAY_TARGET}x",
                    "PASS" if ratio <= GATEWAY_TARGET else "FAIL"))
    rows.append(Row("bare ccxt: new client, the same 2 signed requests, close, no sleeps", f"{bare:.1f} ms"))
    rows.append(Row("connect without an exchange call (BitMEX: no live check)", f"{r.median('local'):.1f} ms",
                    f"{r.median('connect'):.1f} ms (connect)", f"{r.median('local') / r.median('connect'):.2f}x"))
    rows.append(Row("bare ccxt, one SSL context shared by every client (as the gateway)",
                    f"{r.median('bare_ssl'):.1f} ms", f"{bare:.1f} ms", f"{r.median('bare_ssl') / bare:.2f}x"))
    rows.append(Row("connect vs. bare ccxt with a shared SSL context", f"{r.median('connect'):.1f} ms",
                    f"{r.median('bare_ssl'):.1f} ms", f"{r.median('connect') / r.median('bare_ssl'):.2f}x"))
    rows.append(Row("ccxt defaults: rate limiter on, close() sleeping (the validator before)",
                    f"{r.median('defaults'):.1f} ms", f"{bare:.1f} ms", f"{r.median('defaults') / bare:.2f}x"))
    rows.append(Row("the 2 signed requests on a warm ccxt client", f"{r.median('warm'):.1f} ms", f"{bare:.1f} ms",
                    f"{r.median('warm') / bare:.2f}x"))
    if "before" in r.samples:
        rows.append(Row(f"connect on the older tree ({args.gateway_before})", f"{r.median('before'):.1f} ms",
                        f"{r.median('connect'):.1f} ms (now)", f"{r.median('before') / r.median('connect'):.2f}x"))
    notes.append(f"Gateway: three processes (`python -m devtools.mock_exchange`, `strongroom serve` on SQLite at "
                 f"log level {args.server_log_level}, this one); {args.gateway_rounds} interleaved rounds, the order "
                 f"rotating each round, every sample with a fresh mock key registered beforehand (untimed); "
                 f"value = median. Spread: " + "; ".join(f"{k}: {r.spread(k)}" for k in r.samples) + ".")


def run_orders(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import orders

    for n, latency in enumerate(args.orders_latencies):
        workdir = Path(tempfile.mkdtemp(prefix="strongroom-orders-"))
        profile = RESULTS / f"orders-server-{latency}ms.prof" if args.profile else None
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
        try:
            r = orders.measure(fixture, workdir, rounds=args.orders_rounds, per_round=args.orders_per_round,
                               log_level=args.server_log_level, profile=profile, latency_ms=latency)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        ours, bare, me = r.median("strongroom"), r.median("bare"), r.median("me")
        ratio = ours / bare
        where = "loopback mock" if not latency else f"mock answering {latency} ms later"
        judged = n == 0
        rows.append(Row(f"place a limit order POST /v1/exchange-accounts/{{id}}/orders, p50 ({where})",
                        f"{ours:.2f} ms", f"{bare:.2f} ms (bare ccxt)", f"{ratio:.2f}x",
                        f"<= {ORDERS_TARGET}x" if judged else "-",
                        ("PASS" if ratio <= ORDERS_TARGET else "FAIL") if judged else "info"))
        rows.append(Row(f"  the same, p90 ({where})", f"{r.quantile('strongroom', 0.9):.2f} ms",
                        f"{r.quantile('bare', 0.9):.2f} ms (bare ccxt)",
                        f"{r.quantile('strongroom', 0.9) / r.quantile('bare', 0.9):.2f}x"))
        rows.append(Row(f"  GET /v1/me, same key and connection, p50 ({where})", f"{me:.2f} ms",
                        f"{bare:.2f} ms (bare ccxt)", f"{me / bare:.2f}x"))
        rounds = ", ".join(f"{x:.2f}" for x in r.round_ratios(args.orders_per_round))
        notes.append(f"Orders ({where}): three processes (`python -m devtools.mock_exchange`, `strongroom serve` on "
                     f"SQLite at log level {args.server_log_level}, this one); {args.orders_rounds} rounds of "
                     f"{args.orders_per_round} turns, each turn one request of every side in rotating order, 60 ms "
                     f"apart (untimed: under the venue's request budget); limit buys resting far below the price; "
                     f"ours with a bearer key holding trade and a permissive policy, bare ccxt on a warm client. "
                     f"Spread: " + "; ".join(f"{k}: {r.spread(k)}" for k in r.samples)
                     + f". p50 ratio per round: {rounds}.")
        if profile is not None and profile.exists():
            text_path = profile.with_suffix(".txt")
            text_path.write_text(orders.report(profile, 40))
            notes.append(f"Orders: the server's cProfile is in {text_path}.")


def run_balances(fixture: Fixture, args, rows: list[Row], notes: list[str]) -> None:
    from bench import balances

    workdir = Path(tempfile.mkdtemp(prefix="strongroom-bal-"))
    try:
        r = balances.measure(fixture, workdir, rounds=args.balances_rounds, latencies_ms=args.balances_latencies,
                             log_level=args.server_log_level)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = balances.ACCOUNTS
    for latency in args.balances_latencies:
        ratio = r.median(latency, "ratio")
        judged = latency == BALANCES_TARGET_LATENCY_MS
        rows.append(Row(f"refresh of {n} Binance accounts (GET /v1/portfolio?refresh=true), mock +{latency} ms",
                        f"{r.median(latency, 'portfolio'):.1f} ms",
                        f"{r.median(latency, 'slowest'):.1f} ms (slowest single refresh)", f"{ratio:.2f}x",
                        f"<= {balances.TARGET:.1f}x" if judged else "-",
                        ("PASS" if ratio <= balances.TARGET else "FAIL") if judged else "info"))
        rows.append(Row(f"single refresh POST .../balances/refresh, median of {n}, mock +{latency} ms",
                        f"{r.median(latency, 'single'):.1f} ms", f"{r.median(latency, 'slowest'):.1f} ms (slowest)"))
    env = ", ".join(f"{k}={v}" for k, v in r.server_env.items())
    notes.append(f"Balances: three processes (`python -m devtools.mock_exchange`, `strongroom serve` on SQLite at log "
                 f"level {args.server_log_level} with {env}, this one); one user with {n} Binance accounts, all "
                 f"loaded once untimed; {args.balances_rounds} rounds per simulated exchange latency (the mock's "
                 f"`slow` mode delays every request), each round = {n} single refreshes one after the other and one "
                 f"portfolio refresh, alternating which comes first; ratio = portfolio / slowest single of the same "
                 f"round, value = median over rounds. The target is judged at +{BALANCES_TARGET_LATENCY_MS} ms. "
                 + "; ".join(f"+{lat} ms: {r.spread(lat)}" for lat in args.balances_latencies) + ".")


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def run_webhooks(args, rows: list[Row], notes: list[str]) -> None:
    from bench import webhooks

    workdir = Path(tempfile.mkdtemp(prefix="strongroom-hooks-"))
    try:
        r = webhooks.measure(workdir, args.webhook_events, args.webhook_rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bare = r.bare_rate()
    for db in r.ours:
        ratio = r.our_rate(db) / bare
        ok = ratio >= webhooks.TARGET and r.received_ok[db]
        rows.append(Row(f"webhooks: {r.events:,} events to one receiver, {db}", f"{fmt_int(r.our_rate(db))}/s",
                        f"{fmt_int(bare)}/s (bare httpx loop)", f"{ratio:.2f}x", f">= {webhooks.TARGET}x",
                        "PASS" if ok else "FAIL"))
        rows.append(Row(f"webhooks: recording the events (fan-out in each transaction), {db}",
                        f"{fmt_int(r.record_rate(db))}/s"))
    notes.append(f"Webhooks: {r.events:,} events, {args.webhook_rounds} interleaved round(s), medians; the receiver "
                 "counted every webhook-id once: " + ", ".join(f"{db} {ok}" for db, ok in r.received_ok.items())
                 + ". Bare rounds: " + ", ".join(f"{s:.1f} s" for s in r.bare) + "; Strongroom: "
                 + "; ".join(f"{db} " + ", ".join(f"{s.deliver_seconds:.1f} s" for s in sides)
                             for db, sides in r.ours.items()) + ".")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.time()
    signal.signal(signal.SIGTERM, _terminate)  # clean up (server process, temp dirs, schema) on kill
    info = machine()
    busy = cpu_busy()
    log(f"Strongroom benchmark ({'quick' if args.quick else 'full'}): {', '.join(args.only)}")
    log(f"machine: {info['CPU']}, {info['cores']} cores, {info['RAM']}, {info['Python']}")
    notes: list[str] = []
    load = os.getloadavg()[0]
    if busy > 0.15:
        msg = (f"the machine was already {busy:.0%} busy before the run (load average {load:.2f}): "
               f"timings are skewed by other work; instruction counts are not")
        log("!! " + msg)
        notes.append("!! " + msg)
    rows: list[Row] = []
    failed: list[str] = []
    fixture = Fixture.create()
    steps = {
        "throughput": ("1/9 throughput over HTTP", lambda: run_throughput(fixture, args, rows, notes)),
        "callgrind": ("2/9 instructions per request under callgrind", lambda: run_callgrind(fixture, args, rows, notes)),
        "inproc": ("3/9 in-process verification time", lambda: run_inproc(fixture, args, rows, notes)),
        "pg": ("4/9 verification latency, 1k vs 1M keys in PostgreSQL", lambda: run_pg(args, rows, notes)),
        "gateway": ("5/9 exchange calls: connect vs. bare ccxt", lambda: run_gateway(fixture, args, rows, notes)),
        "balances": ("6/9 balances: 50 accounts at once vs. one", lambda: run_balances(fixture, args, rows, notes)),
        "orders": ("7/9 order placement vs. bare ccxt create_order", lambda: run_orders(fixture, args, rows, notes)),
        "startup": ("8/9 cold start to /readyz", lambda: run_startup(args, rows, notes)),
        "webhooks": ("9/9 webhooks: 10,000 events vs. a bare httpx loop", lambda: run_webhooks(args, rows, notes)),
    }
    try:
        for name in MEASURES:
            if name not in args.only:
                continue
            title, step = steps[name]
            log(f"== {title}")
            t0 = time.monotonic()
            try:
                step()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - report and go on with the other measures
                traceback.print_exc()
                failed.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
                rows.append(Row(f"{name}", "ERROR", verdict="ERROR"))
            log(f"   ({time.monotonic() - t0:.0f} s)")
    finally:
        fixture.cleanup()
    elapsed = time.time() - started
    notes.append(f"Load average at the end: {os.getloadavg()[0]:.2f} (2-core machine; start {load:.2f}).")
    notes += [f"!! {f}" for f in failed]
    text = markdown(rows, info, notes, command_line(), started, elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log("")
    log(table(rows))
    log("")
    log(f"written to {args.out} ({elapsed:.0f} s)")
    return 1 if failed else 0
