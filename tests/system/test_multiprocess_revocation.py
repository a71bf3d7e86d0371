"""Two real ``strongroom serve`` processes on one PostgreSQL schema: revoking, disabling, rolling
or narrowing a key on process A takes effect on process B within 1 s.

Skipped LOUDLY if PostgreSQL does not answer.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from support import PG_URL, ServeProcess, drop_pg_schema, new_pg_schema, postgres_available, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DEADLINE = 1.0  # seconds, from the change's response on A to the first refusal on B
POLL = 0.05


@dataclass
class Cluster:
    a: ServeProcess
    b: ServeProcess
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    problem = postgres_available()
    if problem:
        pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem}); "
                    "multi-process revocation was NOT tested")
    schema, url = new_pg_schema()
    processes: list[ServeProcess] = []
    try:
        env = {
            "STRONGROOM_DATABASE_URL": url,
            "STRONGROOM_DATA_DIR": str(tmp_path_factory.mktemp("multiprocess")),  # one master key file for both
            "STRONGROOM_ARGON2_TIME_COST": "1",
            "STRONGROOM_ARGON2_MEMORY_KIB": "1024",
            "STRONGROOM_ARGON2_PARALLELISM": "1",
            "STRONGROOM_LOG_LEVEL": "warning",
            "STRONGROOM_RATE_LIMIT_PER_IP": "100000/minute",
            "STRONGROOM_RATE_LIMIT_PER_KEY": "100000/minute",
        }
        migrated = run_cli("db", "upgrade", env=env)  # migrates, and creates the one master key file
        assert migrated.returncode == 0, migrated.stderr
        username, password = f"mp{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(12)
        created = run_cli("users", "create", "--username", username, "--password-stdin", env=env,
                          stdin=password + "\n")
        assert created.returncode == 0, created.stderr
        processes.append(ServeProcess(env))
        processes.append(ServeProcess(env))
        a, b = processes
        response = httpx.post(a.url + "/v1/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        yield Cluster(a, b, username, password, response.json()["access_token"])
    finally:
        for proc in processes:
            proc.stop()
        drop_pg_schema(schema)


def _new_key(cluster: Cluster, **body) -> dict:
    response = httpx.post(cluster.a.url + "/v1/api-keys", json={"name": f"mp-{uuid.uuid4().hex[:6]}", **body},
                          headers=cluster.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _refused_within(check, deadline: float = DEADLINE) -> float:
    """Poll ``check`` (True once B refuses) every 50 ms; return when the first refused request was sent (B
    decided after that): how long B kept accepting, without that request's own latency on a busy machine."""
    start = time.monotonic()
    while True:
        sent = time.monotonic()
        if check():
            return sent - start
        waited = time.monotonic() - start
        if waited > deadline + 2:
            break
        time.sleep(POLL)
    raise AssertionError(f"process B still accepted the key {waited:.2f} s after the change on A")


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _delete(cluster: Cluster, b: httpx.Client) -> float:
    key = _new_key(cluster)
    auth = _bearer(key["secret"])
    assert b.get("/v1/me", headers=auth).status_code == 200  # B has it cached now
    deleted = httpx.delete(f"{cluster.a.url}/v1/api-keys/{key['key_id']}", headers=cluster.headers)
    assert deleted.status_code == 204
    return _refused_within(lambda: b.get("/v1/me", headers=auth).status_code == 401)


def _disable(cluster: Cluster, b: httpx.Client) -> float:
    key = _new_key(cluster)
    auth = _bearer(key["secret"])
    assert b.get("/v1/me", headers=auth).status_code == 200
    off = httpx.patch(f"{cluster.a.url}/v1/api-keys/{key['key_id']}", json={"enabled": False},
                      headers=cluster.headers)
    assert off.status_code == 200 and off.json()["enabled"] is False
    return _refused_within(lambda: b.get("/v1/me", headers=auth).status_code == 401)


def _narrow(cluster: Cluster, b: httpx.Client) -> float:
    key = _new_key(cluster, scopes=["read", "write"])
    auth = _bearer(key["secret"])
    url = f"/v1/api-keys/{key['key_id']}"
    assert b.patch(url, json={"name": "still-writable"}, headers=auth).status_code == 200  # a write on B
    narrowed = httpx.patch(cluster.a.url + url, json={"scopes": ["read"]}, headers=cluster.headers)
    assert narrowed.status_code == 200 and narrowed.json()["scopes"] == ["read"]
    took = _refused_within(lambda: b.patch(url, json={"name": "x"}, headers=auth).status_code == 403)
    assert b.get("/v1/me", headers=auth).json()["scopes"] == ["read"]  # reads still work
    return took


def _roll(cluster: Cluster, b: httpx.Client) -> float:
    key = _new_key(cluster)
    old = _bearer(key["secret"])
    assert b.get("/v1/me", headers=old).status_code == 200
    rolled = httpx.post(f"{cluster.a.url}/v1/api-keys/{key['key_id']}/roll", json={"grace_seconds": 0},
                        headers=cluster.headers)
    assert rolled.status_code == 200
    new = _bearer(rolled.json()["secret"])
    # the new secret works on B at once, whatever B had cached
    assert b.get("/v1/me", headers=new).status_code == 200
    took = _refused_within(lambda: b.get("/v1/me", headers=old).status_code == 401)
    assert b.get("/v1/me", headers=new).status_code == 200
    return took


def _roll_hmac(cluster: Cluster, b: httpx.Client) -> float:
    import itertools

    from support.signing import sign_hmac

    key = _new_key(cluster, kind="hmac")
    path = "/v1/me"
    offsets = itertools.count()  # distinct timestamps: two signatures in one millisecond would be a replay

    def signed(secret: str) -> dict[str, str]:
        stamp = str(int(time.time() * 1000) - 1000 + next(offsets))
        return sign_hmac(key["key_id"], secret, "GET", path, timestamp=stamp)

    old = key["secret"]
    assert b.get(path, headers=signed(old)).status_code == 200  # B caches the old secret
    rolled = httpx.post(f"{cluster.a.url}/v1/api-keys/{key['key_id']}/roll", json={"grace_seconds": 0},
                        headers=cluster.headers)
    assert rolled.status_code == 200
    new = rolled.json()["secret"]
    # a request signed with the new secret works on B at once, whatever B had cached
    assert b.get(path, headers=signed(new)).status_code == 200
    took = _refused_within(lambda: b.get(path, headers=signed(old)).status_code == 401)
    assert b.get(path, headers=signed(new)).status_code == 200
    return took


# One test, one pair of processes: each xdist worker running a test here would start its own pair.
def test_changes_on_process_a_reach_process_b_within_one_second(cluster):
    key = _new_key(cluster)
    for proc in (cluster.a, cluster.b):
        me = httpx.get(proc.url + "/v1/me", headers=_bearer(key["secret"]))
        assert me.status_code == 200 and me.json()["key_id"] == key["key_id"]
    assert cluster.a.proc.pid != cluster.b.proc.pid and cluster.a.port != cluster.b.port

    took = {}
    with httpx.Client(base_url=cluster.b.url, timeout=5) as b:
        for name, change in (("delete", _delete), ("disable", _disable), ("narrow scopes", _narrow),
                             ("roll", _roll), ("roll hmac", _roll_hmac)):
            took[name] = change(cluster, b)
    late = {name: round(t, 2) for name, t in took.items() if t > DEADLINE}
    assert not late, f"process B kept accepting the key for longer than {DEADLINE} s after: {late}"
    assert cluster.a.proc.poll() is None and cluster.b.proc.poll() is None
