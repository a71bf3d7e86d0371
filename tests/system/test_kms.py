"""Issue 21 (Done when), AWS KMS over the real wire protocol against moto's server mode on loopback,
on SQLite and PostgreSQL: a database sealed with the key file is migrated online to KMS (the pepper
imported into an HMAC key) while requests run; the key file is moved away and a server on KMS alone
serves balances to a bearer key issued before; a rotation in KMS; ``/readyz`` fails while KMS is
unreachable and ``serve`` refuses to start with one line.

moto imitates KMS (see tests/support/moto_kms.py for the two import calls added to it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import BIN, ROOT, Users, free_port, run_cli, start_server
from support.exchange_mock import Mock
from support.keys import every_record_opens, seed_accounts, status_of, traffic

pytestmark = pytest.mark.slow

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoKms:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "moto_kms.py"), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("kms", endpoint_url=self.url, region_name="us-east-1")


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoKms]:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    server = MotoKms()
    try:
        yield server
    finally:
        server.stop()


def test_the_kms_store_binds_the_aad_and_keeps_the_pepper(kms: MotoKms) -> None:
    """Encrypt/Decrypt carry the AAD as EncryptionContext (another context is refused), and ``mac`` after
    a pepper import equals HMAC-SHA256 under that pepper."""
    import hashlib
    import hmac

    from strongroom.crypto.keyring import DecryptionError, KeyChain
    from strongroom.crypto.kmskeys import KmsKeyStore

    store = KmsKeyStore(region="us-east-1", endpoint_url=kms.url, explicit={}, key_id=None, mac_key_id=None)
    chain = KeyChain(store)
    assert chain.versions() == [] and not store.has_pepper()
    assert chain.rotate() == 1
    version, wrapped = chain.wrap(b"d" * 32, b"exchange-account|x|1|binance")
    assert version == 1 and chain.unwrap(1, wrapped, b"exchange-account|x|1|binance") == b"d" * 32
    with pytest.raises(DecryptionError):
        chain.unwrap(1, wrapped, b"exchange-account|y|1|binance")
    pepper = os.urandom(32)
    store.import_pepper(pepper)
    assert store.mac(b"strongroom token hash v1") == hmac.new(pepper, b"strongroom token hash v1",
                                                              hashlib.sha256).digest()
    aliases = {a["AliasName"] for a in kms.client().list_aliases()["Aliases"]}
    assert {"alias/strongroom-kek-v1", "alias/strongroom-pepper"} <= aliases
    # another process finds the versions by their aliases
    assert KmsKeyStore(region="us-east-1", endpoint_url=kms.url, explicit={}, key_id=None,
                       mac_key_id=None).versions() == [1]


def test_a_kms_key_refusing_to_serve_is_unavailable_not_an_error(kms: MotoKms) -> None:
    """KMS refusing to seal or open because of the key's state (here: a key named in
    STRONGROOM_AWS_KMS_KEYS that KMS no longer has, NotFoundException; a disabled key or a revoked grant
    are the same case, which moto does not imitate) is KeySourceUnavailable, which every surface
    answers with 503 and Retry-After, never a 500."""
    from strongroom.crypto.keyring import KeyChain, KeySourceUnavailable
    from strongroom.crypto.kmskeys import KmsKeyStore

    gone = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    store = KmsKeyStore(region="us-east-1", endpoint_url=kms.url, explicit={1: gone}, key_id=None, mac_key_id=None)
    chain = KeyChain(store)
    with pytest.raises(KeySourceUnavailable, match="NotFoundException"):
        chain.wrap(b"d" * 32, b"api-key|k|1")
    with pytest.raises(KeySourceUnavailable, match="NotFoundException"):
        chain.unwrap(1, b"x" * 64, b"api-key|k|1")


def test_file_to_kms_online_then_kms_alone(fresh, mock_exchange, kms: MotoKms, tmp_path: Path) -> None:
    mock = Mock(mock_exchange)
    base = {"data_dir": fresh.data_dir, "database_url": fresh.url,
            "exchange_base_urls": {"binance": mock_exchange.url}}
    kms_settings = {"aws_kms_region": "us-east-1", "aws_kms_endpoint_url": kms.url}
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url, **AWS,
           "STRONGROOM_AWS_KMS_REGION": "us-east-1", "STRONGROOM_AWS_KMS_ENDPOINT_URL": kms.url}
    server = start_server(**base, **kms_settings)
    user = Users(server).create()
    try:
        with server.client() as client:
            accounts, bearer_headers = seed_accounts(client, user, mock, 4)

        with traffic(server.url, accounts, bearer_headers) as sent:
            migrated = run_cli("master-key", "migrate", "--to", "aws-kms", "--batch", "1", env=env, timeout=300)
        assert migrated.returncode == 0, migrated.stderr
        assert "master key version 2 (aws-kms) is current" in migrated.stdout, migrated.stdout
        assert sent.served > 0 and not sent.failures, sent.failures[:3]
        status = status_of(env)
        assert status["pending"] == 0
        assert {v["version"]: v["provider"] for v in status["versions"]} == {1: "file", 2: "aws-kms"}
        assert set(every_record_opens(server.core)) == {2}
    finally:
        server.stop()

    (fresh.data_dir / "master.key").rename(tmp_path / "old-master.key")
    server = start_server(**base, key_provider="aws-kms", dek_cache_size=0, **kms_settings)  # every open asks KMS
    try:
        assert [s.name for s in server.core.keys.stores] == ["aws-kms"]
        with server.client() as client:
            for account in accounts:
                refreshed = client.post(f"/v1/exchange-accounts/{account}/balances/refresh", headers=bearer_headers)
                assert refreshed.status_code == 200, refreshed.text
            assert client.get("/readyz").json()["master_key"] == "ok"

        rotated = run_cli("master-key", "rotate", env={**env, "STRONGROOM_KEY_PROVIDER": "aws-kms"})
        assert rotated.returncode == 0 and "version 3 is current" in rotated.stdout, rotated.stderr
        assert set(every_record_opens(server.core)) == {3}

        # KMS goes away: readiness says so (503, Retry-After); a fresh start refuses with one line
        kms.stop()
        with server.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["master_key"] == "unreachable"
            assert ready.headers["Retry-After"]
            # a request that needs KMS: 503 with Retry-After, in the surface's shape, no detail of the fault
            refused = client.post(f"/v1/exchange-accounts/{accounts[0]}/balances/refresh", headers=bearer_headers)
            assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
            assert refused.json()["code"] == "unavailable" and "EndpointConnectionError" not in refused.text
        refused = subprocess.run([str(BIN / "strongroom"), "serve", "--port", str(free_port())],
                                 env={**os.environ, **env, "STRONGROOM_KEY_PROVIDER": "aws-kms"}, cwd=ROOT,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert errors == ["error: cannot serve: master key: AWS KMS cannot be reached (EndpointConnectionError)"], \
            refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        server.stop()


def test_serve_refuses_an_hsm_it_cannot_reach(fresh, tmp_path: Path) -> None:
    """A token that is not there (wrong label): ``serve`` says so in one line and does not start."""
    from support.hsm import new_token

    token = new_token()
    env = {"STRONGROOM_DATA_DIR": str(fresh.data_dir), "STRONGROOM_DATABASE_URL": fresh.url, **token.env,
           "STRONGROOM_KEY_PROVIDER": "pkcs11", "STRONGROOM_PKCS11_TOKEN_LABEL": "not-plugged-in"}
    refused = subprocess.run([str(BIN / "strongroom"), "serve", "--port", str(free_port())],
                             env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120,
                             check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = (f"error: cannot serve: master key: the PKCS#11 token 'not-plugged-in' ({token.library}) cannot be "
            "reached: NoSuchToken")
    # one clear line says why (before it, at most the data directory's one-line notes)
    assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == [said], refused.stderr
    assert "Traceback" not in refused.stderr
    assert token.pin not in refused.stderr


def test_a_fresh_kms_with_keys_hashed_under_another_pepper_is_refused(fresh, make_core, kms: MotoKms,
                                                                      tmp_path: Path) -> None:
    """Only bearer keys (nothing sealed) were made under the key file; the file is moved away and a fresh KMS
    configured. A new pepper would make every one of those keys fail to verify, silently: the core refuses
    in one line instead, and KMS is left untouched (no version, no pepper made)."""
    from support.services import new_user

    from strongroom.crypto.keyring import KeyringError

    core = make_core()
    principal = new_user(core)
    core.api_keys.create(principal, name="b", kind="bearer")
    core.close()
    (fresh.data_dir / "master.key").rename(tmp_path / "old-master.key")
    with pytest.raises(KeyringError, match=r"holds no pepper, but the database holds \d+ API key\(s\) and session"):
        make_core(key_provider="aws-kms", aws_kms_endpoint_url=kms.url, aws_kms_region="us-east-1")
    assert not kms.client().list_aliases()["Aliases"] or not any(
        a["AliasName"].startswith("alias/strongroom-") for a in kms.client().list_aliases()["Aliases"])
