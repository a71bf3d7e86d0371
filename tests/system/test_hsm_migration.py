"""Issue 21 (Done when), PKCS#11 against a real SoftHSM2 token, over real HTTP, on SQLite and
PostgreSQL: a database sealed with the key file is migrated online to the HSM while requests run;
then every record opens, the key file is moved away, and a server on the HSM alone serves balances
to a bearer key issued before the migration. The pepper and the old KEKs appear nowhere.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from support import LOGS, Users, install_log_capture, run_cli, start_server
from support.exchange_mock import Mock
from support.hsm import new_token
from support.keys import database_bytes, every_record_opens, seed_accounts, status_of, traffic, variants

pytestmark = pytest.mark.slow


def test_file_to_softhsm_online_then_the_hsm_alone(fresh, mock_exchange, tmp_path: Path) -> None:
    token = new_token()
    install_log_capture()
    mock = Mock(mock_exchange)
    base = {"data_dir": fresh.data_dir, "database_url": fresh.url,
            "exchange_base_urls": {"binance": mock_exchange.url}}
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url, **token.env}
    server = start_server(**base, **token.settings)  # the key file is the primary; the HSM is configured beside it
    assert server.core.keys.primary.name == "file" and server.core.keys.versions() == [1]
    key_file = fresh.data_dir / "master.key"
    old_material = json.loads(key_file.read_text())
    user = Users(server).create()
    try:
        with server.client() as client:
            accounts, bearer_headers = seed_accounts(client, user, mock, 6)
            hmac_key = client.post("/v1/api-keys", headers=user.headers, json={"name": "h", "kind": "hmac"})
            assert hmac_key.status_code == 201, hmac_key.text

        # requests (reads that open credentials, writes that seal new ones) run through the migration
        with traffic(server.url, accounts, bearer_headers, connect_every=5, user=user, mock=mock) as sent:
            migrated = run_cli("master-key", "migrate", "--to", "pkcs11", "--batch", "2", env=env, timeout=300)
        assert migrated.returncode == 0, migrated.stderr
        assert "master key version 2 (pkcs11) is current" in migrated.stdout, migrated.stdout
        assert sent.served > 0 and not sent.failures, sent.failures[:3]
        # a record sealed by the server before it saw version 2 (it looks once a second): a re-run finishes
        again = run_cli("master-key", "migrate", "--to", "pkcs11", env=env, timeout=300)
        assert again.returncode == 0 and "master key version 2 (pkcs11)" in again.stdout, again.stderr
        status = status_of(env)
        assert status["current_version"] == 2 and status["pending"] == 0
        assert {v["version"]: (v["provider"], v["records"]) for v in status["versions"]} == {
            1: ("file", 0), 2: ("pkcs11", status["versions"][1]["records"])}
        assert status["versions"][1]["records"] >= 6 + 1  # accounts and the HMAC key (and those made meanwhile)
        assert set(every_record_opens(server.core)) == {2}
        kept = run_cli("master-key", "retire", "1", "--yes", env=env)
        assert kept.returncode == 1 and "stop using that source instead (move the key file away" in kept.stderr
    finally:
        server.stop()

    # the key file goes away; a server on the HSM alone serves everything, and the old bearer key still works
    key_file.rename(tmp_path / "old-master.key")
    server = start_server(**base, key_provider="pkcs11", **token.settings)
    try:
        assert [s.name for s in server.core.keys.stores] == ["pkcs11"]
        assert set(every_record_opens(server.core)) == {2}
        with server.client() as client:
            for account in accounts:
                refreshed = client.post(f"/v1/exchange-accounts/{account}/balances/refresh", headers=bearer_headers)
                assert refreshed.status_code == 200, refreshed.text
                assert refreshed.json()["assets"], refreshed.text
            assert client.get("/v1/me", headers=user.headers).status_code == 200  # a session from before, too
            assert client.get("/readyz").status_code == 200

        # a rotation inside the HSM, the server serving: version 3 is made on the token, records move to it
        rotated = run_cli("master-key", "rotate", env={**env, "STRONGROOM_KEY_PROVIDER": "pkcs11"})
        assert rotated.returncode == 0 and "version 3 is current" in rotated.stdout, rotated.stderr
        assert set(every_record_opens(server.core)) == {3}
        with server.client() as client:
            assert client.post(f"/v1/exchange-accounts/{accounts[0]}/balances/refresh",
                               headers=bearer_headers).status_code == 200

        # neither the pepper nor a KEK of the old file is in the database, the logs or the environment
        stored = database_bytes(fresh.url)
        logged = LOGS.text().encode() + migrated.stdout.encode() + migrated.stderr.encode()
        environment = "\n".join(f"{k}={v}" for k, v in os.environ.items()).encode()
        for material in [old_material["pepper"], *old_material["versions"].values()]:
            for form in variants(base64.b64decode(material)):
                assert form not in stored and form not in logged and form not in environment
    finally:
        server.stop()
