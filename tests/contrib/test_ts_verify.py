"""verify() and createVerifier() of the TypeScript client (clients/typescript, built by tsc) against a
live server (SQLite and PostgreSQL). Skipped LOUDLY without node or the built client (`make ts-deps`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from support import ROOT
from support.factories import make_key
from support.signing import sign_hmac

CLIENT_DIR = ROOT / "clients" / "typescript"
SCRIPT = Path(__file__).parent / "ts" / "verify_flow.mjs"


def node_and_dist() -> tuple[str, Path]:
    node = shutil.which("node")
    dist = CLIENT_DIR / "dist" / "index.js"
    if node is None or not dist.is_file():
        message = "TYPESCRIPT verify() TEST NOT RUN: node or clients/typescript/dist is missing (run `make ts-deps`)"
        warnings.warn(message, UserWarning, stacklevel=2)
        pytest.skip(message)
    newest = max(p.stat().st_mtime for p in (CLIENT_DIR / "src").glob("*.ts"))
    assert dist.stat().st_mtime >= newest, "clients/typescript/dist is older than its sources: run `make ts-deps`"
    return node, dist


def test_typescript_verify(server, client, users):
    node, dist = node_and_dist()
    user = users.create()
    verifier = make_key(client, users.create(admin=True), scopes=["verify"])
    key = make_key(client, user, scopes=["read"])
    hkey = make_key(client, user, kind="hmac")
    body = '{"side":"buy"}'
    signed = sign_hmac(hkey["key_id"], hkey["secret"], "POST", "/orders?x=1", body)
    env = {**os.environ, "STRONGROOM_URL": server.url, "VERIFY_KEY": verifier["secret"], "CLIENT_KEY": key["secret"],
           "HMAC_KEY_ID": hkey["key_id"], "HMAC_SIGNATURE": signed["SR-ACCESS-SIGNATURE"],
           "HMAC_TIMESTAMP": signed["SR-ACCESS-TIMESTAMP"], "BODY": body}
    done = subprocess.run([node, str(SCRIPT), str(dist)], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["valid"]["valid"] is True and out["valid"]["keyId"] == key["key_id"]
    assert out["valid"]["userId"] == user.id and out["valid"]["scopes"] == ["read"]
    assert out["valid"]["accountIds"] is None and out["valid"]["ratelimit"]["limit"] > 0
    assert out["scope"] == {**out["scope"], "valid": False, "reason": "insufficient_scope"}
    assert out["unknown"]["reason"] == "unknown_key" and out["unknown"]["keyId"] is None
    assert out["signed"]["valid"] is True and out["signed"]["keyId"] == hkey["key_id"]
    assert out["calls"] == 3  # one for the valid key (then cached), two for the refused one (never cached)
    assert out["forbidden"] == {"kind": "TradrForbiddenError", "status": 403, "isTradrError": True}
    assert out["invalid"] == {"kind": "TradrValidationError", "status": 422, "isTradrError": True}
    assert out["unreachable"] == {"kind": "TradrConnectionError", "status": 0, "isTradrError": True}
    assert key["secret"] not in done.stdout  # a verdict never carries a secret
