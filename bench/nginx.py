"""Measure: forward authentication through a real nginx (issue 23 §4), by wrk.

Three processes behind one nginx (Debian's, with ``auth_request``): ``strongroom serve`` (SQLite, the
bench fixture's bearer key, trusting the loopback as its proxy, limits of 10⁹/minute), and an upstream
service (a raw ASGI app answering 200 with a 2-byte JSON body, served by uvicorn: the cheapest Python
service a platform could put behind nginx). nginx serves two ports: the README's "Protect your own
services" block verbatim (``auth_request`` to ``/v1/auth/forward``, then the upstream), and the same
upstream behind a bare ``proxy_pass``. wrk (1 thread, 8 connections) sends ``GET /orders?limit=5`` with
``Authorization: Bearer`` to each, interleaved (plain, auth, plain, auth, ...); ratio = median over
rounds of auth ÷ the mean of the plain runs just before and after it.

Run: ``python -m bench.nginx [--rounds N] [--duration S]`` (a measure of its own, not part of ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.fixture import Fixture, settings_env
from devtools.liveserver import ServeProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_APP = """import sys
import uvicorn


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def readme_nginx_block() -> str:
    section = (ROOT / "README.md").read_text().split("## Protect your own services", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    if match is None:
        raise RuntimeError("no nginx block in the README's 'Protect your own services'")
    return match.group(1)


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen")


def _wrk(url: str, token: str, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}", url],
                         check=True, capture_output=True, text=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} refused requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


def measure(rounds: int, duration: int) -> dict[str, list[float]]:
    """Return req/s of each run, by kind ("plain", "auth"), in the order they ran."""
    nginx = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx"
    fixture = Fixture.create()
    procs: list[subprocess.Popen[bytes]] = []
    server = None
    try:
        token = fixture.credentials["bearer"].secret
        assert token is not None
        server = ServeProcess(settings_env(fixture.data_dir, STRONGROOM_LOG_LEVEL="warning",
                                           STRONGROOM_TRUSTED_PROXIES='["127.0.0.1/32"]'), timeout=60)
        up_port, auth_port, plain_port = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", UPSTREAM_APP, str(up_port)]))
        _wait_port(up_port, procs[-1], "the upstream")
        prefix = Path(tempfile.mkdtemp(prefix="strongroom-nginx-"))
        (prefix / "logs").mkdir()
        block = (readme_nginx_block().replace("127.0.0.1:8080", f"127.0.0.1:{auth_port}")
                 .replace("127.0.0.1:8000", f"127.0.0.1:{server.port}").replace("127.0.0.1:9000", f"127.0.0.1:{up_port}"))
        plain = f"server {{\n    listen 127.0.0.1:{plain_port};\n    location / {{ proxy_pass http://127.0.0.1:{up_port}; }}\n}}\n"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = prefix / "nginx.conf"
        conf.write_text(f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
                        f"error_log {prefix}/logs/error.log warn;\nevents {{ worker_connections 1024; }}\n"
                        f"http {{\n access_log off;\n client_body_temp_path {prefix}/body;\n"
                        f" proxy_temp_path {prefix}/proxy;\n{block}\n{plain}}}\n")
        procs.append(subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")]))
        _wait_port(auth_port, procs[-1], "nginx")
        urls = {"plain": f"http://127.0.0.1:{plain_port}/orders?limit=5",
                "auth": f"http://127.0.0.1:{auth_port}/orders?limit=5"}
        for kind, url in urls.items():  # each answers 200 (the auth one only with the key)
            if httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code != 200:
                raise RuntimeError(f"{kind}: {url} did not answer 200")
        if httpx.get(urls["auth"]).status_code != 401:
            raise RuntimeError("nginx let a request without a key through")
        for kind, url in urls.items():
            _wrk(url, token, 1)  # warm-up
        runs: dict[str, list[float]] = {"plain": [], "auth": []}
        for _ in range(rounds):
            for kind in ("plain", "auth"):
                runs[kind].append(_wrk(urls[kind], token, duration))
        runs["plain"].append(_wrk(urls["plain"], token, duration))
        return runs
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM if proc is procs[0] else signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if server is not None:
            server.stop()
        fixture.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=int, default=2)
    args = parser.parse_args()
    runs = measure(args.rounds, args.duration)
    plain, auth = runs["plain"], runs["auth"]
    ratios = [a / ((plain[i] + plain[i + 1]) / 2) for i, a in enumerate(auth)]
    print(f"plain (nginx + upstream) req/s: {', '.join(f'{x:,.0f}' for x in plain)}; median {statistics.median(plain):,.0f}")
    print(f"auth (nginx + auth_request + upstream) req/s: {', '.join(f'{x:,.0f}' for x in auth)}; "
          f"median {statistics.median(auth):,.0f}")
    print(f"ratio auth / plain (median of rounds): {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {f.read().split()[:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
