"""Issue 22 item 8: logs and metrics fit for pipelines, against ``strongroom serve`` as operators run it
(a separate process, stdout not a terminal) on a fresh SQLite or PostgreSQL database: JSON lines with
ISO 8601 UTC times and no colour, one access record per request, the bootstrap password never in the log
stream (a 0600 file instead), a warning naming the setting an unknown ``STRONGROOM_*`` variable was
probably meant to be, and ``/metrics`` under ``--workers 2`` summing both workers and never going back."""

from __future__ import annotations

import json
import re
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import PG_URL, ServeProcess, drop_pg_schema, new_pg_schema, postgres_available
from support.cli import clean_env

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_env(request, tmp_path) -> Iterator[dict[str, str]]:
    """The environment of a new installation: an empty data directory and an empty database."""
    env = {"STRONGROOM_DATA_DIR": str(tmp_path / "data")}
    if request.param == "sqlite":
        yield env
        return
    problem = postgres_available()
    if problem:
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
    schema, url = new_pg_schema()
    try:
        yield {**env, "STRONGROOM_DATABASE_URL": url}
    finally:
        drop_pg_schema(schema)


def test_json_logs_access_records_and_the_bootstrap_password(fresh_env):
    data_dir = Path(fresh_env["STRONGROOM_DATA_DIR"])
    server = ServeProcess(clean_env({**fresh_env, "STRONGROOM_LOG_FORMAT": "json",
                                     "STRONGROOM_LOG_FORMATT": "plain"}))  # a typo: warned about, ignored
    try:
        password_file = data_dir / "initial-admin-password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            token = client.post("/v1/auth/token", data={"username": "admin", "password": password})
            assert token.status_code == 200, token.text
            admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
            key = client.post("/v1/api-keys", json={"name": "pipe"}, headers=admin).json()
            me = client.get("/v1/me", headers={"X-API-Key": key["secret"]})
            assert me.status_code == 200
            unknown = client.get("/v1/exchange-accounts/77", headers=admin)
            assert unknown.status_code == 404
    finally:
        out = server.stop()
    assert password not in out and key["secret"] not in out
    assert str(password_file.resolve()) in out  # the line saying where it is
    assert "\x1b" not in out, "ANSI colour codes in the log stream"
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(records) >= 5, out[-2000:]
    for record in records:
        assert ISO_UTC.match(record["time"]), record
        assert "color_message" not in record, record
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own lines went through us too
    warned = [r for r in records if "STRONGROOM_LOG_FORMATT" in r["message"]]
    assert len(warned) == 1 and "did you mean STRONGROOM_LOG_FORMAT?" in warned[0]["message"]
    assert warned[0]["level"] == "WARNING"

    access = [r for r in records if r["logger"] == "strongroom.access"]
    assert not [r for r in records if r["logger"] == "uvicorn.access"]  # one record per request, ours
    by_id = {r["request_id"]: r for r in access}
    mine = by_id[me.headers["x-request-id"]]
    assert {k: mine[k] for k in ("method", "route", "status", "user_id", "key_id", "client_ip")} == {
        "method": "GET", "route": "/v1/me", "status": 200, "user_id": 1, "key_id": key["key_id"],
        "client_ip": "127.0.0.1"}
    assert isinstance(mine["duration_ms"], float) and mine["duration_ms"] >= 0
    missing = by_id[unknown.headers["x-request-id"]]
    assert missing["route"] == "/v1/exchange-accounts/{account_id}" and missing["status"] == 404
    assert missing["user_id"] == 1 and missing["key_id"] is None
    assert len(access) == len({r["request_id"] for r in access})


def _healthz_total(text: str) -> float:
    found = re.findall(r'^strongroom_http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', text, re.MULTILINE)
    return sum(float(n) for n in found)


def test_metrics_under_two_workers_sum_both_and_never_go_back(fresh_env):
    # two spawned workers each import the whole app: slow on a loaded 2-core machine
    server = ServeProcess(clean_env({**fresh_env, "STRONGROOM_METRICS_ENABLED": "true"}), args=["--workers", "2"],
                          timeout=120)
    try:
        ready = time.monotonic() + 60
        while httpx.get(server.url + "/readyz", timeout=5).status_code != 200:  # both workers up
            assert time.monotonic() < ready
            time.sleep(0.1)

        def burst(_: int) -> int:
            for _ in range(10):  # a new connection each: the kernel hands them to either worker
                assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
            return 10

        with httpx.Client(timeout=10) as probe:  # every worker has added its start-up probes (it syncs each
            settle = time.monotonic() + 30        # second): two scrapes 1.5 s apart agree
            before = _healthz_total(probe.get(server.url + "/metrics").text)
            while True:
                time.sleep(1.5)
                again = _healthz_total(probe.get(server.url + "/metrics").text)
                if again == before:
                    break
                assert time.monotonic() < settle, f"the figure never settled: {before} then {again}"
                before = again
        with ThreadPoolExecutor(8) as pool:
            sent = sum(pool.map(burst, range(8)))
        seen: list[float] = []
        deadline = time.monotonic() + 15
        while True:  # each scrape on a new connection: whichever worker answers, the figure is the sum
            seen.append(_healthz_total(httpx.get(server.url + "/metrics", timeout=10).text))
            if len(seen) >= 10 and seen[-1] == before + sent:
                break
            assert time.monotonic() < deadline, f"scrapes never summed both workers: {seen} (sent {sent})"
            time.sleep(0.1)
        assert seen == sorted(seen), f"a counter went backwards between scrapes: {seen}"
        assert all(n <= before + sent for n in seen)
    finally:
        out = server.stop()
    assert "Traceback" not in out
