"""Issue 14 item 3: every operator command through the installed ``strongroom`` command, against a
live server's data on SQLite and on PostgreSQL, checked over real HTTP where the effect is HTTP's
(a new password signs in, a revoked key is refused), with ``--json`` parsed and secrets looked for.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from support import BIN, ROOT
from support.cli import clean_env, strongroom_on_terminal

USER_KEYS = {"id", "username", "email", "is_admin", "usage_level", "disabled", "created_at", "updated_at"}
OPERATOR_CLIENT = f"cli:{getpass.getuser()}"  # the CLI audits its OS user (this test's) as the client
KEY_KEYS = {"key_id", "user_id", "username", "name", "kind", "scopes", "account_ids", "ip_allowlist", "enabled",
            "expires_at", "hint", "public_key", "created_at", "updated_at", "last_used_at"}
ACCOUNT_KEYS = {"id", "public_id", "user_id", "username", "exchange", "name", "account_type", "status", "key_hint",
                "validated_at", "validation_result", "created_at", "updated_at", "disconnected_at"}
EVENT_KEYS = {"id", "at", "actor_user_id", "actor_key_id", "action", "target", "client_ip", "outcome", "details"}


def eventually(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Wait until ``check()`` holds (changes reach a running server within its cache TTL)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def status_of(client: httpx.Client, headers: dict[str, str]) -> int:
    return client.get("/v1/me", headers=headers).status_code


def last_event(live, action: str) -> dict:
    events = live.run("audit", "tail", "--action", action, "--limit", "1", "--json").json()
    assert len(events) == 1 and set(events[0]) == EVENT_KEYS
    return events[0]


def test_users_create_list_level_password_delete(live, client):
    name = f"op{uuid.uuid4().hex[:8]}"
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    created = live.run("users", "create", name, "--password-stdin", "--usage-level", "advanced", "--json",
                       stdin=first + "\n")
    user = created.json()
    assert set(user) == USER_KEYS and user["username"] == name and user["usage_level"] == "advanced"
    assert first not in created.stdout + created.stderr
    listed = {u["username"]: u for u in live.run("users", "list", "--json").json()}
    assert listed[name] == user
    plain = live.run("users", "list").ok().stdout.splitlines()
    assert [line.split("\t")[:4] for line in plain if f"\t{name}\t" in line] == \
        [[str(user["id"]), name, "false", "advanced"]]
    assert live.run("users", "set-level", name, "premier", "--json").json()["usage_level"] == "premier"

    token = client.post("/v1/auth/token", data={"username": name, "password": first}).json()["access_token"]
    session = {"Authorization": f"Bearer {token}"}
    assert status_of(client, session) == 200

    changed = live.run("users", "set-password", name, "--password-stdin", stdin=second + "\n").ok()
    assert "sessions were ended" in changed.stdout and second not in changed.stdout + changed.stderr
    eventually(lambda: status_of(client, session) == 401, "the old session refused")
    assert client.post("/v1/auth/token", data={"username": name, "password": first}).status_code == 401
    signed_in = client.post("/v1/auth/token", data={"username": name, "password": second})
    assert signed_in.status_code == 200
    event = last_event(live, "user.password")
    assert event["target"] == f"user:{user['id']}" and event["actor_user_id"] == 0 and event["client_ip"] == OPERATOR_CLIENT
    assert event["details"]["sessions_ended"] >= 1 and second not in json.dumps(event)

    short = live.run("users", "set-password", name, "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and short.error == "invalid password (password: 8-1024 characters)"
    nobody = live.run("users", "set-password", "nobody-" + name, "--password-stdin", stdin=second + "\n")
    assert nobody.returncode == 1 and nobody.error == f"no user named 'nobody-{name}'"
    no_terminal = live.run("users", "set-password", name)
    assert no_terminal.returncode == 2 and "--password-stdin" in no_terminal.error
    taken = live.run("users", "create", "--username", name, "--password-stdin", stdin=second + "\n")
    assert taken.returncode == 1 and "already exists" in taken.error

    unconfirmed = live.run("users", "delete", name)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.error
    assert name in {u["username"] for u in live.run("users", "list", "--json").json()}
    deleted = live.run("users", "delete", name, "--yes", "--json").json()
    assert deleted["deleted"] is True and deleted["id"] == user["id"]
    assert name not in {u["username"] for u in live.run("users", "list", "--json").json()}
    assert client.post("/v1/auth/token", data={"username": name, "password": second}).status_code == 401


def test_set_password_on_a_terminal_asks_twice_without_echo(live, client, users):
    user = users.create(sign_in=False)
    new = f"typed-{uuid.uuid4().hex}"
    code, shown = strongroom_on_terminal("users", "set-password", user.username, env=live.env,
                                         answers=[("New password: ", new), ("Repeat for confirmation: ", new)])
    assert code == 0, shown
    assert "New password:" in shown and "Repeat for confirmation:" in shown
    assert new not in shown, "the password was echoed"
    assert f"set a new password for {user.username}" in shown
    assert client.post("/v1/auth/token", data={"username": user.username, "password": new}).status_code == 200


def test_keys_list_show_create_roll_revoke_generate(live, client, users, tmp_path):
    user = users.create()
    created = live.run("keys", "create", "--user", user.username, "--name", "ci", "--scopes", "read", "--json")
    key = created.json()
    assert set(key) == KEY_KEYS | {"secret"} and key["username"] == user.username and key["scopes"] == ["read"]
    secret = key.pop("secret")
    assert "shown only now" in created.stderr and secret not in created.stderr
    assert status_of(client, {"X-API-Key": secret}) == 200

    mine = live.run("keys", "list", "--user", user.username, "--json").json()
    assert [k["key_id"] for k in mine] == [key["key_id"]] and all(set(k) == KEY_KEYS for k in mine)
    assert key["key_id"] in {k["key_id"] for k in live.run("keys", "list", "--json").json()}
    shown = live.run("keys", "show", key["key_id"], "--json").json()
    assert set(shown) == KEY_KEYS and shown["name"] == "ci"
    plain = live.run("keys", "show", key["key_id"]).ok().stdout
    assert f"key_id\t{key['key_id']}\n" in plain and "kind\tbearer\n" in plain
    for text in (plain, live.run("keys", "list").stdout, json.dumps(shown)):
        assert secret not in text

    rolled = live.run("keys", "roll", key["key_id"], "--json").json()
    assert set(rolled) == KEY_KEYS | {"secret"} and rolled["secret"] != secret
    eventually(lambda: status_of(client, {"X-API-Key": secret}) == 401, "the rolled secret refused")
    assert status_of(client, {"X-API-Key": rolled["secret"]}) == 200

    unconfirmed = live.run("keys", "revoke", key["key_id"])
    assert unconfirmed.returncode == 2 and status_of(client, {"X-API-Key": rolled["secret"]}) == 200
    revoked = live.run("keys", "revoke", key["key_id"], "--yes").ok()
    assert revoked.stdout.startswith(f"revoked key {key['key_id']}")
    eventually(lambda: status_of(client, {"X-API-Key": rolled["secret"]}) == 401, "the revoked key refused")
    gone = live.run("keys", "show", key["key_id"])
    assert gone.returncode == 1 and gone.error == "API key not found"
    event = last_event(live, "api_key.delete")
    assert event["target"] == f"api_key:{key['key_id']}" and event["actor_user_id"] == user.id
    assert event["client_ip"] == OPERATOR_CLIENT

    out = tmp_path / "gen.pem"
    generated = live.run("keys", "generate", "--user", user.username, "--name", "pair", "--key-type", "ed25519",
                         "--out", str(out), "--json")
    pair = generated.json()
    assert set(pair) == KEY_KEYS | {"private_key_file"} and pair["kind"] == "ed25519"
    assert pair["private_key_file"] == str(out.resolve()) and "PRIVATE KEY" not in generated.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text().startswith("-----BEGIN PRIVATE KEY")
    unknown_user = live.run("keys", "create", "--user", "nobody-" + user.username, "--name", "x")
    assert unknown_user.returncode == 1 and unknown_user.error.startswith("no user named")
    bad_scope = live.run("keys", "create", "--user", user.username, "--name", "x", "--scopes", "read,admin")
    assert bad_scope.returncode == 1 and "unknown scope" in bad_scope.error


def test_accounts_list_show_revalidate_disconnect(live, client, users, mock_exchange):
    user = users.create()
    api_key, secret = f"cli-key-{uuid.uuid4().hex}", f"cli-secret-{uuid.uuid4().hex}"
    registered = httpx.post(f"{mock_exchange.url}/_mock/accounts",
                            json={"exchange": "binance", "api_key": api_key, "secret": secret})
    assert registered.status_code == 201, registered.text
    connected = client.post("/v1/exchange-accounts", headers=user.headers, json={
        "exchange": "binance", "name": "cli", "credentials": {"api_key": api_key, "secret": secret}})
    assert connected.status_code == 201, connected.text
    account_id = connected.json()["id"]

    listed = live.run("accounts", "list", "--user", user.username, "--json")
    accounts = listed.json()
    assert [a["id"] for a in accounts] == [account_id] and set(accounts[0]) == ACCOUNT_KEYS
    assert accounts[0]["status"] == "active" and accounts[0]["username"] == user.username
    assert api_key not in listed.stdout and secret not in listed.stdout
    assert account_id in {a["id"] for a in live.run("accounts", "list", "--json").json()}
    plain = live.run("accounts", "show", str(account_id)).ok().stdout
    assert "status\tactive\n" in plain and f"username\t{user.username}\n" in plain and secret not in plain

    valid = live.run("accounts", "revalidate", str(account_id), "--json").json()
    assert valid["status"] == "active" and valid["validation_result"] == "valid"
    del mock_exchange.state.accounts["binance"][api_key]  # the exchange no longer knows the key
    invalid = live.run("accounts", "revalidate", str(account_id)).ok()
    assert invalid.stdout.strip() == f"account {account_id} (binance cli): invalid (invalid_credentials)"
    assert account_id in {a["id"] for a in live.run("accounts", "list", "--status", "invalid", "--json").json()}

    gone = live.run("accounts", "disconnect", str(account_id), "--yes", "--json").json()
    assert gone["status"] == "disconnected" and gone["disconnected_at"]
    assert client.get(f"/v1/exchange-accounts/{account_id}", headers=user.headers).json()["status"] == "disconnected"
    again = live.run("accounts", "revalidate", str(account_id))
    assert again.returncode == 1 and again.error == "this account is disconnected"
    missing = live.run("accounts", "show", "2147483000")
    assert missing.returncode == 1 and missing.error == "exchange account not found"
    event = last_event(live, "account.disconnect")
    assert event["target"] == f"account:{account_id}" and event["actor_user_id"] == 0


def test_audit_tail_limit_action_and_plain_lines(live):
    names = [f"au{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for name in names:
        live.run("users", "create", name, "--password-stdin", stdin="a-long-password\n").ok()
    latest = live.run("audit", "tail", "--limit", "2", "--action", "user.create", "--json").json()
    assert [e["details"]["username"] for e in latest] == names[1:]
    assert latest[0]["id"] < latest[1]["id"] and all(set(e) == EVENT_KEYS for e in latest)
    lines = live.run("audit", "tail", "--limit", "3", "--action", "user.create").ok().stdout.splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 9 for line in lines)
    assert lines[-1].split("\t")[2:4] == ["user.create", "ok"]


def test_audit_tail_follow_prints_new_events(live):
    proc = subprocess.Popen([str(BIN / "strongroom"), "audit", "tail", "--follow", "--json", "--limit", "1",
                             "--action", "user.create", "--interval", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env(live.env), cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        name = f"fo{uuid.uuid4().hex[:8]}"
        live.run("users", "create", name, "--password-stdin", stdin="a-long-password\n").ok()
        deadline = time.monotonic() + 30
        seen = []
        while name not in [e["details"].get("username") for e in seen]:
            assert time.monotonic() < deadline and proc.poll() is None, (seen, proc.poll())
            try:
                seen.append(json.loads(lines.get(timeout=0.5)))
            except queue.Empty:
                continue
        assert all(e["action"] == "user.create" and set(e) == EVENT_KEYS for e in seen)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in proc.stderr.read()


def test_master_key_status_rotate_rewrap_retire(installed):
    from strongroom.crypto.keyring import FileKeyProvider

    installed.run("users", "create", "erin", "--password-stdin", stdin="a-long-password\n").ok()
    hmac_ids = [installed.run("keys", "create", "--user", "erin", "--name", f"h{i}", "--kind", "hmac",
                              "--json").json()["key_id"] for i in range(2)]
    key_file = (installed.data_dir / "master.key").resolve()
    status = installed.run("master-key", "status", "--json").json()
    assert status == {"current_version": 1, "versions": [{"version": 1, "current": True, "records": 2, "held": True, "provider": "file"}],
                      "pending": 0, "missing": [], "source": "file", "key_file": str(key_file)}

    current = installed.run("master-key", "retire", "1", "--yes")
    assert current.returncode == 1 and current.error.startswith("version 1 is the current master key")

    rotated = installed.run("master-key", "rotate", "--json")
    assert rotated.json() == {"current_version": 2, "rewrapped": 2, "key_file": str(key_file)}
    assert f"back up the key file now: {key_file}" in rotated.stderr

    FileKeyProvider(key_file).add_version()  # version 3, nothing re-wrapped yet: 2 records left on version 2
    status = installed.run("master-key", "status", "--json").json()
    assert status["current_version"] == 3 and status["pending"] == 2
    assert status["versions"] == [{"version": 1, "current": False, "records": 0, "held": True, "provider": "file"},
                                  {"version": 2, "current": False, "records": 2, "held": True, "provider": "file"},
                                  {"version": 3, "current": True, "records": 0, "held": True, "provider": "file"}]
    in_use = installed.run("master-key", "retire", "2", "--yes")
    assert in_use.returncode == 1
    assert in_use.error == "2 records are still sealed under version 2: run 'strongroom master-key rewrap' first"
    unconfirmed = installed.run("master-key", "retire", "1")
    assert unconfirmed.returncode == 2
    unknown = installed.run("master-key", "retire", "9", "--yes")
    assert unknown.returncode == 1 and unknown.error == "there is no master key version 9"
    assert sorted(json.loads(key_file.read_text())["versions"]) == ["1", "2", "3"]

    assert installed.run("master-key", "retire", "1", "--yes").ok().stdout.startswith("retired master key version 1")
    rewrapped = installed.run("master-key", "rewrap").ok()
    assert rewrapped.stdout.strip() == "re-wrapped 2 records; version 3 is current"
    installed.run("master-key", "retire", "2", "--yes").ok()
    assert sorted(json.loads(key_file.read_text())["versions"]) == ["3"]
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    plain = installed.run("master-key", "status").ok().stdout
    assert "current_version\t3\n" in plain and "versions\t3:2 (file)\n" in plain and "pending\t0\n" in plain

    # every sealed record still opens under what is left
    from strongroom.core import build_core
    from strongroom.settings import load_settings

    core = build_core(load_settings(data_dir=installed.data_dir, database_url=installed.url))
    try:
        for key_id in hmac_ids:
            assert core.api_keys.load_record(key_id).hmac_secrets
    finally:
        core.close()
    actions = [e["action"] for e in installed.run("audit", "tail", "--json").json()]
    assert actions.count("master_key.retire") == 2 and "master_key.rotate" in actions

    # keys from the environment are the operator's to change
    material = json.loads(key_file.read_text())
    material["versions"]["4"] = material["versions"]["3"]
    env_keys = {**installed.env, "STRONGROOM_MASTER_KEYS": json.dumps(material)}
    from support.cli import strongroom

    outside = strongroom("master-key", "retire", "4", "--yes", env=env_keys)
    assert outside.returncode == 1 and "remove version 4 from STRONGROOM_MASTER_KEYS" in outside.error
    no_rotation = strongroom("master-key", "rotate", env=env_keys)
    assert no_rotation.returncode == 1 and no_rotation.error.startswith("master key: keys from the environment")
    assert strongroom("master-key", "status", "--json", env=env_keys).json()["source"] == "environment"


def test_rotate_on_a_terminal_shows_progress_and_the_backup_reminder(installed):
    installed.run("users", "create", "finn", "--password-stdin", stdin="a-long-password\n").ok()
    installed.run("keys", "create", "--user", "finn", "--name", "h", "--kind", "hmac").ok()
    code, shown = strongroom_on_terminal("master-key", "rotate", "--batch", "1", env=installed.env)
    assert code == 0, shown
    assert "re-wrapping" in shown and "1/1" in shown and "records" in shown and "0:00:00" in shown
    assert "master key version 2 is current; re-wrapped 1 record\r\n" in shown
    assert f"back up the key file now: {(installed.data_dir / 'master.key').resolve()}" in shown


def test_retire_puts_the_version_back_if_a_record_was_sealed_under_it_meanwhile(installed, monkeypatch):
    """A server that had not yet seen a rotation may seal under the old version while it is being
    retired: the second count sees it, the version is restored and the retirement refused."""
    import pytest

    from strongroom.cli.context import OPERATOR, master_keys
    from strongroom.core import build_core
    from strongroom.crypto.keyring import FileKeyProvider
    from strongroom.errors import Conflict
    from strongroom.settings import load_settings

    key_file = installed.data_dir / "master.key"
    FileKeyProvider(key_file).add_version()
    before = json.loads(key_file.read_text())
    core = build_core(load_settings(data_dir=installed.data_dir, database_url=installed.url))
    try:
        service = master_keys(core)
        counts = iter([{}, {1: 1}])
        monkeypatch.setattr(service, "usage", lambda: next(counts))
        with pytest.raises(Conflict, match="1 record is now sealed under version 1"):
            service.retire(OPERATOR, 1)
    finally:
        core.close()
    assert json.loads(key_file.read_text()) == before


def test_accounts_balances_table_and_json(live, client, users, mock_exchange):
    """Issue 9 item 7: the last snapshots, or --refresh live; exact decimals, never a secret."""
    user = users.create()
    api_key, secret = f"cli-bal-{uuid.uuid4().hex}", f"cli-secret-{uuid.uuid4().hex}"
    assert httpx.post(f"{mock_exchange.url}/_mock/accounts",
                      json={"exchange": "binance", "api_key": api_key, "secret": secret}).status_code == 201
    assert httpx.post(f"{mock_exchange.url}/_mock/balances", json={
        "exchange": "binance", "api_key": api_key,
        "balances": {"BTC": {"free": "0.5", "used": "0.1"}, "USDT": {"free": "1200"}}}).status_code < 300
    assert httpx.post(f"{mock_exchange.url}/_mock/prices",
                      json={"exchange": "binance", "prices": {"BTC/USDT": "50000"}}).status_code < 300
    connected = client.post("/v1/exchange-accounts", headers=user.headers, json={
        "exchange": "binance", "name": "cli", "credentials": {"api_key": api_key, "secret": secret}})
    assert connected.status_code == 201, connected.text

    before = live.run("accounts", "balances", "--user", user.username, "--json").json()
    assert before["assets"] == [] and before["total_usd"] == "0"
    refreshed = live.run("accounts", "balances", "--user", user.username, "--refresh", "--json")
    doc = refreshed.json()
    assert doc["total_usd"] == "31200" and doc["total_btc"] == "0.624"
    assert {a["asset"]: (a["total"], a["usd"]) for a in doc["assets"]} == {
        "BTC": ("0.6", "30000"), "USDT": ("1200", "1200")}
    assert secret not in refreshed.stdout and api_key not in refreshed.stdout
    plain = live.run("accounts", "balances", "--user", user.username).ok()
    assert "BTC\t0.6\t30000\n" in plain.stdout and "total 31200 USD, 0.624 BTC" in plain.stderr


def test_keys_usage(live, client, users, server):
    """Issue 14 item 5: the CLI shows a key's verifications per hour and outcome."""
    user = users.create()
    key = client.post("/v1/api-keys", json={"name": "u"}, headers=user.headers).json()
    for _ in range(2):
        assert status_of(client, {"Authorization": f"Bearer {key['secret']}"}) == 200
    server.core.housekeeping.run_jobs()
    rows = live.run("keys", "usage", key["key_id"], "--json").json()
    assert len(rows) == 1 and rows[0]["ok"] == 2 and rows[0]["rate_limited"] == 0 and rows[0]["hour"].endswith("Z")
    assert live.run("keys", "usage", key["key_id"], "--to", "2020-01-01T00:00:00", "--json").json() == []


# The installed command, run in subprocesses: `make test`, not the quick loop (`make test-quick`).
pytestmark = pytest.mark.slow
