"""Measure 1: requests/s of ``GET /v1/me`` per key kind against ``GET /healthz``, one server process.

The server is ``strongroom serve`` (uvicorn, default settings apart from cheap argon2 and high rate
limits) on a SQLite data dir, pinned to CPU 0; the load generator is pinned to CPU 1 when there are
two or more CPUs. The load generator is ``wrk`` (Debian package) replaying raw requests prepared
beforehand by a small Lua script, so signing costs nothing inside the timed window. Without wrk, a
Python asyncio client with keep-alive connections takes its place (slower: the table says which).

Signed requests are refused when replayed, so each one gets its own timestamp (1 ms apart) and
signature; the batch is signed right before its run, with timestamps centred on that run so they
stay well inside the server's +-30 s window.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.fixture import KINDS, Credential, Fixture, settings_env
from devtools.liveserver import ServeProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "wrk_replay.lua"
BIN = Path(sys.executable).parent
MAX_SIGNED = 40_000  # 1 ms apart: +-20 s around the run, inside the +-30 s window
PATHS = {"healthz": "/healthz"}


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_wrk(allow_install: bool) -> str | None:
    """Return wrk's path, installing Debian's ``wrk`` package if allowed and possible."""
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        log("!! wrk is not installed and cannot be installed here (needs root and apt-get)")
        return None
    log(">> wrk (HTTP load generator) is not installed: installing Debian's package now with "
        "`apt-get install -y wrk` (pass --no-install to use the slower Python client instead)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        log(">> apt-get install failed; trying `apt-get update` first")
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True, text=True)
        result = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        log("!! could not install wrk:\n" + result.stderr[-1000:])
        return None
    return shutil.which("wrk")


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def _pin(cpu: int | None) -> list[str]:
    """Command prefix running a program on one CPU (``taskset``), or nothing."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu)] if cpu is not None and taskset else []


class Server:
    """``strongroom serve`` as a subprocess on a free loopback port, pinned to ``cpu`` (devtools.liveserver)."""

    def __init__(self, fixture: Fixture, workdir: Path, cpu: int | None, log_level: str = "info") -> None:
        self.log_path = workdir / "server.log"
        self.process = ServeProcess(settings_env(fixture.data_dir, STRONGROOM_LOG_LEVEL=log_level),
                                    log_path=self.log_path, prefix=_pin(cpu), timeout=60)
        self.proc, self.url, self.port = self.process.proc, self.process.url, self.process.port

    def check(self, cred: Credential) -> None:
        """One real request per kind before measuring: it must answer 200 with the right scheme."""
        response = httpx.get(self.url + "/v1/me", headers=cred.headers(), timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"{cred.kind}: GET /v1/me answered {response.status_code}: {response.text[:300]}")
        if response.json().get("key_id") != cred.key_id:
            raise RuntimeError(f"{cred.kind}: GET /v1/me answered for another key: {response.text[:300]}")

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Run:
    kind: str
    rps: float  # successful (2xx) responses per second
    requests: int
    failed: int  # non-2xx responses
    wrapped: int  # how often the prepared requests were reused (must be 0 for signed kinds)
    p50_ms: float | None = None
    p99_ms: float | None = None
    socket_errors: int = 0  # connect/read/write errors and timeouts


@dataclass
class Result:
    client: str
    connections: int
    duration: float
    rounds: int
    runs: list[Run] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)

    def rps(self, kind: str) -> list[float]:
        return [r.rps for r in self.runs if r.kind == kind]

    def ratios(self, kind: str) -> list[float]:
        """Per round: the kind's rps over the mean of the healthz runs just before and after it."""
        runs = self.runs
        out = []
        for i, run in enumerate(runs):
            if run.kind != kind:
                continue
            around = [r.rps for r in (runs[i - 1] if i else None, runs[i + 1] if i + 1 < len(runs) else None)
                      if r is not None and r.kind == "healthz"]
            if around:
                out.append(run.rps / statistics.fmean(around))
        return out

    def failures(self) -> list[str]:
        return [f"{r.kind}: {r.failed} non-2xx, {r.socket_errors} socket errors, {r.wrapped} reused, of {r.requests}"
                for r in self.runs
                if r.failed or r.socket_errors or (r.wrapped and r.kind not in ("healthz", "bearer"))]


def raw_request(port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def prepare(kind: str, cred: Credential | None, port: int, expected_rps: float, duration: float,
            sign_cost_s: float, used: dict[str, int]) -> list[bytes]:
    """The requests one run replays: one for healthz and bearer, a fresh signature per request otherwise.

    ``used`` maps a kind to the last timestamp it signed: HMAC and Ed25519 signatures are
    deterministic, so a timestamp is never used twice (that would be a replay)."""
    if cred is None:
        return [raw_request(port, PATHS["healthz"], {})]
    if not cred.unique:
        return [raw_request(port, "/v1/me", cred.headers())]
    n = min(MAX_SIGNED, max(2000, math.ceil(expected_rps * duration * 1.6) + 500))
    # Timestamps 1 ms apart, centred on the middle of the coming run.
    start_ms = (time.time() + n * sign_cost_s + 0.3) * 1000
    base = max(int(start_ms + duration * 500 - n / 2), used.get(kind, 0) + 1)
    used[kind] = base + n - 1
    return [raw_request(port, "/v1/me", cred.headers(stamp_ms=base + i)) for i in range(n)]


def run_wrk(wrk: str, url: str, requests: list[bytes], duration: float, connections: int, cpu: int | None,
            workdir: Path, kind: str) -> Run:
    data = workdir / "requests.bin"
    lengths = workdir / "lengths.txt"
    data.write_bytes(b"".join(requests))
    lengths.write_text("\n".join(str(len(r)) for r in requests) + "\n")
    cmd = [*_pin(cpu), wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(LUA),
           url, "--", str(data), str(lengths)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")
    stats = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = stats["duration_us"] / 1e6
    socket_errors = stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    ok = stats["requests"] - stats["status"]
    return Run(kind, ok / seconds, stats["requests"], stats["status"], stats["wrapped"],
               stats["p50_us"] / 1000, stats["p99_us"] / 1000, socket_errors)


def run_python_client(url: str, requests: list[bytes], duration: float, connections: int, cpu: int | None,
                      kind: str) -> Run:
    """Fallback load generator: asyncio, raw sockets, keep-alive, one request in flight per connection."""
    old = _cpus()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover
            runner = asyncio.run
        return runner(_py_load(url, requests, duration, connections, kind))
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, set(old))


async def _py_load(url: str, requests: list[bytes], duration: float, connections: int, kind: str) -> Run:
    host, port = url.removeprefix("http://").split(":")
    state = {"next": 0, "ok": 0, "failed": 0, "wrapped": 0, "done": 0}
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                i = state["next"]
                state["next"] = i + 1
                if i >= len(requests):
                    state["wrapped"] += 1
                    state["next"], i = 1, 0
                t0 = time.perf_counter()
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                state["done"] += 1
                if head[9:10] == b"2":
                    state["ok"] += 1
                else:
                    state["failed"] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - t0
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else None
    return Run(kind, state["ok"] / seconds, state["done"], state["failed"], state["wrapped"],
               pick(0.5) if pick else None, pick(0.99) if pick else None)


def sign_cost(cred: Credential, samples: int = 50) -> float:
    t0 = time.perf_counter()
    for i in range(samples):
        cred.headers(stamp_ms=i)
    return (time.perf_counter() - t0) / samples


def measure(fixture: Fixture, *, rounds: int, duration: float, connections: int, warmup: float,
            allow_install: bool, force_python: bool, log_level: str = "info") -> Result:
    """Interleaved rounds (healthz, kind, healthz, kind, ...) on one ``strongroom serve`` process."""
    wrk = None if force_python else ensure_wrk(allow_install)
    cpus = _cpus()
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    client = f"wrk -t1 -c{connections}" if wrk else f"python asyncio client, {connections} connections"
    if not wrk:
        log("!! using the Python load generator: it needs more CPU than wrk, so absolute figures are lower")
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-load-"))
    result = Result(client, connections, duration, rounds)
    costs = {k: sign_cost(c) for k, c in fixture.credentials.items()}
    used: dict[str, int] = {}  # last timestamp signed, per kind (never reused: that would be a replay)

    def session(server: Server, n_rounds: int, runs: list[Run]) -> None:
        for cred in fixture.credentials.values():
            server.check(cred)

        def one(kind: str, seconds: float, expected: float) -> Run:
            cred = None if kind == "healthz" else fixture.credentials[kind]
            reqs = prepare(kind, cred, server.port, expected, seconds, costs.get(kind, 0.0), used)
            path = PATHS.get(kind, "/v1/me")
            if wrk:
                return run_wrk(wrk, server.url + path, reqs, seconds, connections, client_cpu, workdir, kind)
            return run_python_client(server.url, reqs, seconds, connections, client_cpu, kind)

        expected = 3000.0
        for kind in ("healthz", *KINDS):  # warm-up (not reported)
            run = one(kind, warmup, expected)
            if kind == "healthz":
                expected = max(run.rps, 500.0)
        sequence = []
        for _ in range(n_rounds):
            for kind in KINDS:
                sequence += ["healthz", kind]
        sequence.append("healthz")
        for i, kind in enumerate(sequence):
            run = one(kind, duration, expected)
            if kind == "healthz":
                expected = max(run.rps, 500.0)
            runs.append(run)
            log(f"   [{i + 1:2d}/{len(sequence)}] {kind:8s} {run.rps:8.0f} req/s  p50 {run.p50_ms or 0:5.2f} ms"
                f"  p99 {run.p99_ms or 0:6.2f} ms  (requests {run.requests}, non-2xx {run.failed}, "
                f"socket errors {run.socket_errors})")

    try:
        for n_rounds, runs in ((rounds, result.runs),):
            server = Server(fixture, workdir, server_cpu, log_level)
            log(f"   strongroom serve: {server.url} (pid {server.proc.pid}, cpu {server_cpu}); client: {client} "
                f"(cpu {client_cpu})")
            try:
                session(server, n_rounds, runs)
            finally:
                server.stop()
                if any(r.failed or r.socket_errors for r in runs):
                    errors = [ln for ln in server.log_path.read_text().splitlines()
                              if "ERROR" in ln or "Traceback" in ln]
                    if errors:
                        log("   server errors:\n" + "\n".join(errors[-10:]))
        if result.failures():
            result.refusals = refusals(fixture)
            log(f"   refusals in the audit log: {result.refusals or 'none'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def refusals(fixture: Fixture) -> dict[str, int]:
    """Refusal reasons the server audited (why signed requests failed, if any did)."""
    import sqlite3

    with sqlite3.connect(fixture.data_dir / "strongroom.db") as conn:
        rows = conn.execute("SELECT json_extract(details, '$.reason'), count(*) FROM audit_events "
                            "WHERE outcome = 'refused' GROUP BY 1").fetchall()
    return {str(reason): count for reason, count in rows}
