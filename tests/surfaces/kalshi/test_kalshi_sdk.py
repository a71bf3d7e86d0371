"""Kalshi's official SDKs, unchanged, against a live Strongroom server (SQLite and PostgreSQL).

- kalshi-python-sync 3.2.0 and kalshi-python 2.1.4 (Python): generate -> list -> create with an own
  public key -> delete -> delete again (404) -> authenticate with the generated key -> a request
  signed by the deleted key (401); a tampered signature, a stale timestamp and a replayed
  signature (401 each).
- kalshi-typescript (npm, pinned in tests/surfaces/kalshi/ts/package-lock.json) through node: the same flow, run by
  tests/surfaces/kalshi/ts/kalshi_flow.mjs. Skipped LOUDLY when node or tests/surfaces/kalshi/ts/node_modules is missing.
- Ed25519: the SDKs only sign with RSA, so an Ed25519 key from ``key_type="ed25519"`` is used by
  signing by hand (cryptography's Ed25519) with Kalshi's headers.

The first key comes from the CLI (``strongroom keys generate``) or from /v1 (POST
/v1/api-keys/generate with a user's access token), as an operator or a user would get it.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import shutil
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from support import ROOT, run_cli
from support.signing import load_private_key, new_ed25519, new_rsa, public_pem, sign_kalshi

PREFIX = "/trade-api/v2"
SDKS = ["kalshi_python_sync", "kalshi_python"]
TS_DIR = ROOT / "tests" / "surfaces" / "kalshi" / "ts"
CHEAP_ARGON2 = {"STRONGROOM_ARGON2_TIME_COST": "1", "STRONGROOM_ARGON2_MEMORY_KIB": "1024",
                "STRONGROOM_ARGON2_PARALLELISM": "1"}


# --------------------------------------------------------------------------- bootstrap


def bootstrap_via_api(client, user, scopes=("read", "write", "delete"), name="boot", **extra) -> tuple[str, str]:
    """A key pair from /v1 (the user's access token): returns (key id, private key PEM)."""
    response = client.post("/v1/api-keys/generate", headers=user.headers,
                           json={"name": name, "scopes": list(scopes), **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key_id"], body["private_key"]


def cli_env(server) -> dict[str, str]:
    return {"STRONGROOM_DATA_DIR": str(server.settings.data_dir),
            "STRONGROOM_DATABASE_URL": server.settings.database_url, **CHEAP_ARGON2}


def bootstrap_via_cli(server, user, tmp_path: Path, *extra: str) -> tuple[str, str]:
    """A key pair from ``strongroom keys generate``: returns (key id printed, private key written)."""
    out = tmp_path / f"{uuid.uuid4().hex[:8]}.pem"
    done = run_cli("keys", "generate", "--user", user.username, "--name", "boot", "--out", str(out), *extra,
                   env=cli_env(server))
    assert done.returncode == 0, done.stderr
    key_id = done.stdout.strip().splitlines()[-1]
    uuid.UUID(key_id)
    assert out.stat().st_mode & 0o077 == 0, "the private key file must not be readable by others"
    return key_id, out.read_text()


# --------------------------------------------------------------------------- SDK helpers


def sdk_client(sdk, server, key_id: str, private_pem: str):
    """The SDK's documented client: Configuration(host=.../trade-api/v2) + api_key_id + private_key_pem."""
    config = sdk.Configuration(host=server.url + PREFIX)
    config.api_key_id = key_id
    config.private_key_pem = private_pem
    return sdk.KalshiClient(config)


def exc(sdk, name: str):
    return getattr(importlib.import_module(sdk.__name__ + ".exceptions"), name)


def on_the_wire(kclient, change) -> list[dict]:
    """Let ``change(headers)`` edit the headers of each request as the SDK sends it (after signing).

    Returns the list the final headers (and, under ``_body``, the body) of each request are appended to.
    """
    sent: list[dict] = []
    original = kclient.rest_client.request

    def request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        headers = dict(headers or {})
        change(headers)
        sent.append({**headers, "_body": body})
        return original(method, url, headers=headers, body=body, post_params=post_params,
                        _request_timeout=_request_timeout)

    kclient.rest_client.request = request
    return sent


def ids(listing) -> dict[str, object]:
    return {k.api_key_id: k for k in listing.api_keys}


def v1_key(client, user, key_id: str) -> httpx.Response:
    return client.get(f"/v1/api-keys/{key_id}", headers=user.headers)


def refusal_reasons(client, user) -> list[str]:
    events = client.get("/v1/audit-events", params={"action": "auth.key", "limit": 200}, headers=user.headers)
    assert events.status_code == 200, events.text
    return [e["details"].get("reason") for e in events.json()["items"] if e["outcome"] == "refused"]


@pytest.fixture(params=SDKS)
def sdk(request):
    return importlib.import_module(request.param)


# --------------------------------------------------------------------------- the flow, per Python SDK


def test_sdk_flow(sdk, server, users, client, tmp_path):
    """generate -> list -> create -> delete -> delete again (404) -> generated key works -> deleted key 401."""
    user = users.create(usage_level="premier")
    # The CLI gives the sync SDK its first key, /v1 gives kalshi-python's: both ways are exercised.
    if sdk.__name__ == "kalshi_python_sync":
        boot_id, boot_pem = bootstrap_via_cli(server, user, tmp_path)
    else:
        boot_id, boot_pem = bootstrap_via_api(client, user)
    assert boot_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    kalshi = sdk_client(sdk, server, boot_id, boot_pem)
    legacy = sdk.__name__ == "kalshi_python"  # 2.1.4 drops `scopes` from requests and responses

    # generate
    gen_name = f"gen-{uuid.uuid4().hex[:6]}"
    generated = kalshi.generate_api_key(name=gen_name, scopes=["read", "write"])
    assert generated is not None, "201 expected: the SDK returns None for any other 2xx"
    uuid.UUID(generated.api_key_id)
    assert generated.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    gen_private = load_private_key(generated.private_key)
    assert isinstance(gen_private, rsa.RSAPrivateKey) and gen_private.key_size == 2048

    # list: the generated key with its name (and, where the SDK models them, its scopes)
    listed = ids(kalshi.get_api_keys())
    assert {boot_id, generated.api_key_id} <= set(listed)
    assert listed[generated.api_key_id].name == gen_name
    assert listed[boot_id].name == "boot"
    if not legacy:
        assert listed[generated.api_key_id].scopes == ["read", "write"]
        assert sorted(listed[boot_id].scopes) == ["delete", "read", "write"]
    # The same key, seen by /v1 (one core): an rsa key holding only the public key.
    native = v1_key(client, user, generated.api_key_id)
    assert native.status_code == 200
    assert native.json()["kind"] == "rsa" and native.json()["scopes"] == ["read", "write"]
    assert native.json()["public_key"] == gen_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    # create with an own public key (premier user)
    own = new_rsa()
    created = kalshi.create_api_key(name="own-key", public_key=public_pem(own))
    assert created is not None
    uuid.UUID(created.api_key_id)
    assert ids(kalshi.get_api_keys())[created.api_key_id].name == "own-key"
    own_pem = own.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    own_client = sdk_client(sdk, server, created.api_key_id, own_pem)
    assert created.api_key_id in ids(own_client.get_api_keys())  # it signs requests before deletion

    # delete, then delete again
    assert kalshi.delete_api_key(api_key=created.api_key_id) is None
    assert created.api_key_id not in ids(kalshi.get_api_keys())
    assert v1_key(client, user, created.api_key_id).status_code == 404
    with pytest.raises(exc(sdk, "NotFoundException")) as missing:
        kalshi.delete_api_key(api_key=created.api_key_id)
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["error"]["code"] == "not_found"

    # authenticate with the newly generated key: it lists, and its own scopes apply (no `delete`),
    # which also proves this client signs with the generated key and not the bootstrap one.
    gen_client = sdk_client(sdk, server, generated.api_key_id, generated.private_key)
    assert {boot_id, generated.api_key_id} <= set(ids(gen_client.get_api_keys()))
    with pytest.raises(exc(sdk, "ForbiddenException")) as forbidden:
        gen_client.delete_api_key(api_key=boot_id)
    assert json.loads(forbidden.value.body)["error"]["code"] == "insufficient_scope"
    assert v1_key(client, user, boot_id).status_code == 200

    # a request signed by the deleted key
    with pytest.raises(exc(sdk, "UnauthorizedException")) as unauthorized:
        own_client.get_api_keys()
    assert unauthorized.value.status == 401
    assert json.loads(unauthorized.value.body)["error"]["code"] == "unauthenticated"


def test_sdk_legacy_drops_scopes_so_server_defaults_apply(server, users, client):
    """kalshi-python 2.1.4 sends no `scopes`: the key gets Kalshi's default ["read","write"]."""
    import kalshi_python

    user = users.create()
    boot_id, boot_pem = bootstrap_via_api(client, user)
    kalshi = sdk_client(kalshi_python, server, boot_id, boot_pem)
    sent = on_the_wire(kalshi, lambda headers: None)
    generated = kalshi.generate_api_key(name="legacy", scopes=["read"])
    assert sent[-1]["KALSHI-ACCESS-KEY"] == boot_id and sent[-1]["_body"] == {"name": "legacy"}
    assert v1_key(client, user, generated.api_key_id).json()["scopes"] == ["read", "write"]


def test_sdk_tampered_stale_and_replayed_signatures_are_refused(sdk, server, users, client, monkeypatch):
    user = users.create()
    boot_id, boot_pem = bootstrap_via_api(client, user)
    private = load_private_key(boot_pem)
    Unauthorized = exc(sdk, "UnauthorizedException")

    # The untouched client works, and we keep the headers it sent.
    kalshi = sdk_client(sdk, server, boot_id, boot_pem)
    sent = on_the_wire(kalshi, lambda headers: None)
    assert boot_id in ids(kalshi.get_api_keys())
    good = sent[-1]
    assert good["KALSHI-ACCESS-TIMESTAMP"].isdigit() and len(good["KALSHI-ACCESS-TIMESTAMP"]) == 13

    # A tampered signature (one bit flipped).
    def tamper(headers):
        raw = bytearray(base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]))
        raw[len(raw) // 2] ^= 0x01
        headers["KALSHI-ACCESS-SIGNATURE"] = base64.b64encode(bytes(raw)).decode()

    tampered = sdk_client(sdk, server, boot_id, boot_pem)
    on_the_wire(tampered, tamper)
    with pytest.raises(Unauthorized) as refused:
        tampered.get_api_keys()
    assert refused.value.status == 401 and json.loads(refused.value.body)["error"]["code"] == "unauthenticated"

    # A replayed request: the exact headers of the successful call above, sent again by the SDK.
    replay = sdk_client(sdk, server, boot_id, boot_pem)
    on_the_wire(replay, lambda headers: headers.update({k: good[k] for k in good if k.startswith("KALSHI-")}))
    with pytest.raises(Unauthorized):
        replay.get_api_keys()

    # A stale timestamp (two minutes old), correctly signed.
    stale = sdk_client(sdk, server, boot_id, boot_pem)
    if sdk.__name__ == "kalshi_python_sync":
        # The sync SDK's signer reads time from its auth module: make its clock two minutes slow.
        import kalshi_python_sync.auth as auth_module

        slow = type("SlowClock", (), {"time": staticmethod(lambda: time.time() - 120)})
        monkeypatch.setattr(auth_module, "time", slow)
        stale_sent = on_the_wire(stale, lambda headers: None)
    else:
        # kalshi-python signs inline with the global clock: re-sign by hand, same algorithm.
        def old(headers):
            stamp = str(int((time.time() - 120) * 1000))
            headers.update(sign_kalshi(boot_id, private, "GET", PREFIX + "/api_keys", timestamp=stamp))

        stale_sent = on_the_wire(stale, old)
    with pytest.raises(Unauthorized):
        stale.get_api_keys()
    assert int(time.time() * 1000) - int(stale_sent[-1]["KALSHI-ACCESS-TIMESTAMP"]) > 100_000
    monkeypatch.undo()

    # Each refusal is in the owner's audit log with its reason; the key itself still works.
    reasons = refusal_reasons(client, user)
    for reason in ("bad_signature", "replayed_signature", "stale_timestamp"):
        assert reason in reasons, reasons
    assert boot_id in ids(sdk_client(sdk, server, boot_id, boot_pem).get_api_keys())


def test_sdk_error_statuses_map_to_sdk_exceptions(sdk, server, users, client):
    """403 (own public key below premier) and 400 (write without read) reach the SDK as its exceptions."""
    user = users.create()  # basic
    boot_id, boot_pem = bootstrap_via_api(client, user)
    kalshi = sdk_client(sdk, server, boot_id, boot_pem)
    with pytest.raises(exc(sdk, "ForbiddenException")) as forbidden:
        kalshi.create_api_key(name="own", public_key=public_pem(new_rsa()))
    assert json.loads(forbidden.value.body)["error"]["code"] == "insufficient_usage_level"
    assert kalshi.generate_api_key(name="basic-may-generate") is not None  # generate is open to all levels
    if sdk.__name__ == "kalshi_python_sync":  # 2.1.4 cannot send scopes at all
        with pytest.raises(exc(sdk, "BadRequestException")) as bad:
            kalshi.generate_api_key(name="w", scopes=["write"])
        assert json.loads(bad.value.body)["error"]["code"] == "validation_failed"


# --------------------------------------------------------------------------- Ed25519 by hand


def test_ed25519_generated_key_signs_by_hand(server, users, client):
    """key_type=ed25519 returns a PKCS#8 Ed25519 private key that authenticates Kalshi requests."""
    user = users.create(usage_level="premier")
    boot_id, boot_pem = bootstrap_via_api(client, user, key_type="ed25519")
    boot = load_private_key(boot_pem)
    assert boot_pem.startswith("-----BEGIN PRIVATE KEY-----") and isinstance(boot, ed25519.Ed25519PrivateKey)

    def call(method, path, key_id, private, **kw):
        return client.request(method, PREFIX + path, headers=sign_kalshi(key_id, private, method, PREFIX + path), **kw)

    generated = call("POST", "/api_keys/generate", boot_id, boot, json={"name": "ed", "key_type": "ed25519"})
    assert generated.status_code == 201, generated.text
    body = generated.json()
    assert body["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    ed_private = load_private_key(body["private_key"])
    assert isinstance(ed_private, ed25519.Ed25519PrivateKey)

    listed = call("GET", "/api_keys", body["api_key_id"], ed_private)
    assert listed.status_code == 200, listed.text
    assert body["api_key_id"] in {k["api_key_id"] for k in listed.json()["api_keys"]}

    # An own Ed25519 public key (premier), then signing with it.
    own = new_ed25519()
    created = call("POST", "/api_keys", boot_id, boot, json={"name": "own-ed", "public_key": public_pem(own)})
    assert created.status_code == 201, created.text
    own_id = created.json()["api_key_id"]
    assert call("GET", "/api_keys", own_id, own).status_code == 200
    assert v1_key(client, user, own_id).json()["kind"] == "ed25519"

    # The wrong Ed25519 key for that id, and an RSA-PSS signature for an Ed25519 key: 401.
    assert call("GET", "/api_keys", own_id, new_ed25519()).status_code == 401
    assert call("GET", "/api_keys", own_id, new_rsa()).status_code == 401
    # Deleted: 401.
    assert call("DELETE", f"/api_keys/{own_id}", boot_id, boot).status_code == 204
    assert call("GET", "/api_keys", own_id, own).status_code == 401


# --------------------------------------------------------------------------- the README example


README_EXAMPLE = '''\
from kalshi_python_sync import Configuration, KalshiClient

config = Configuration(host="{host}/trade-api/v2")
config.api_key_id = "{key_id}"                      # printed by `strongroom keys generate`
config.private_key_pem = open("{pem}").read()       # written by --out
client = KalshiClient(config)

new = client.generate_api_key(name="trading-bot", scopes=["read", "write"])
print([(k.name, k.scopes) for k in client.get_api_keys().api_keys])
client.delete_api_key(api_key=new.api_key_id)
'''


def test_readme_example_runs(server, users, tmp_path):
    """The README's ten lines, verbatim but for host, key id and file, with a key from the CLI."""
    user = users.create()
    pem = tmp_path / "key.pem"
    done = run_cli("keys", "generate", "--user", user.username, "--name", "readme", "--out", str(pem),
                   env=cli_env(server))
    assert done.returncode == 0, done.stderr
    key_id = done.stdout.strip()
    assert len(README_EXAMPLE.strip().splitlines()) <= 10
    source = README_EXAMPLE.format(host=server.url, key_id=key_id, pem=pem)
    printed_to = io.StringIO()
    with contextlib.redirect_stdout(printed_to):
        exec(compile(source, "README example", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own snippet
    printed = printed_to.getvalue().strip()
    assert "('readme', ['read', 'write', 'delete'])" in printed and "('trading-bot', ['read', 'write'])" in printed
    # ... and the generated key was deleted again.
    with server.client() as c:
        keys = c.get("/v1/api-keys", headers=user.headers).json()["items"]
    assert [k["name"] for k in keys] == ["readme"]


# --------------------------------------------------------------------------- TypeScript SDK through node


def skip_loudly(reason: str) -> None:
    """Skip, and also warn, so the reason shows in the warnings summary of a run without -rs."""
    message = f"KALSHI-TYPESCRIPT SDK TEST NOT RUN: {reason}"
    warnings.warn(message, UserWarning, stacklevel=2)
    pytest.skip(message)


def test_typescript_sdk_flow(server, users, client, tmp_path):
    node = shutil.which("node")
    if node is None:
        skip_loudly("`node` is not on PATH (install Node.js >= 18, then `make ts-deps`)")
    if not (TS_DIR / "node_modules" / "kalshi-typescript" / "package.json").is_file():
        skip_loudly("tests/surfaces/kalshi/ts/node_modules is missing (run `make ts-deps`, or `npm ci` in tests/ts)")
    user = users.create(usage_level="premier")
    boot_id, boot_pem = bootstrap_via_api(client, user)
    pem = tmp_path / "boot.pem"
    pem.write_text(boot_pem)
    ran = subprocess.run([node, str(TS_DIR / "kalshi_flow.mjs"), server.url + PREFIX, boot_id, str(pem)],
                         check=False, capture_output=True, text=True, timeout=120, cwd=TS_DIR)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["sdk_version"] == json.loads((TS_DIR / "package.json").read_text())["dependencies"]["kalshi-typescript"]

    gen = out["generate"]
    assert gen["status"] == 201, gen
    gen_id = gen["data"]["api_key_id"]
    assert gen["data"]["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert out["ids"]["bootstrap"] == boot_id and out["ids"]["generated"] == gen_id

    assert out["list"]["status"] == 200
    listed = {k["api_key_id"]: k for k in out["list"]["data"]["api_keys"]}
    assert listed[gen_id]["name"] == "ts-generated" and listed[gen_id]["scopes"] == ["read", "write"]
    assert boot_id in listed

    assert out["create"]["status"] == 201, out["create"]
    created_id = out["create"]["data"]["api_key_id"]
    assert out["created_key_list"]["status"] == 200
    assert out["delete"]["status"] == 204 and out["delete"]["data"] in ("", None)
    assert out["delete_again"]["status"] == 404
    assert out["delete_again"]["data"]["error"]["code"] == "not_found"
    assert created_id not in {k["api_key_id"] for k in out["list_after_delete"]["data"]["api_keys"]}

    assert out["generated_key_list"]["status"] == 200
    assert gen_id in {k["api_key_id"] for k in out["generated_key_list"]["data"]["api_keys"]}
    assert out["generated_key_delete"]["status"] == 403, out["generated_key_delete"]  # signed by the generated key
    assert out["deleted_key_list"]["status"] == 401
    assert out["deleted_key_list"]["data"]["error"]["code"] == "unauthenticated"

    # The server agrees: the generated and bootstrap keys exist, the created one is gone.
    assert v1_key(client, user, gen_id).status_code == 200
    assert v1_key(client, user, boot_id).status_code == 200
    assert v1_key(client, user, created_id).status_code == 404
