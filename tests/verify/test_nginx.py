"""A real nginx (Debian's, with auth_request) in front of a tiny upstream that records what reaches it,
Strongroom answering nginx's sub-requests at /v1/auth/forward: the README's nginx block and rules
file, verbatim (only the three loopback ports are changed).

Kalshi's own SDK, signing with a Strongroom RSA key, reaches the upstream through nginx with its
identity headers; a bad signature, an expired key, a key without the rule's scope, an address
outside the key's allowlist, a replay and a spent failure budget are stopped at nginx with their
status; the upstream never sees a refused request; a client's forged X-Strongroom-* (and
X-Original-*, X-Forwarded-For) headers are overwritten.

nginx missing: a failure when CI=true (.ci/run installs it), else skipped LOUDLY.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support import ROOT, free_port, start_server
from support.factories import make_key
from support.signing import load_private_key, sign_kalshi

README = ROOT / "README.md"
STRONGROOM, UPSTREAM, LISTEN = "127.0.0.1:8000", "127.0.0.1:9000", "127.0.0.1:8080"


def readme_block(lang: str) -> str:
    """The first ``lang`` code block of the README's "Protect your own services" section."""
    section = README.read_text().split("## Protect your own services", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{lang}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {lang} block in the README's 'Protect your own services'"
    return match.group(1)


def find_nginx() -> str:
    path = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()),
                                         None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed: .ci/run installs it (apt-get install nginx); on CI this is a failure")
        pytest.skip("NGINX NOT INSTALLED: the forward-authentication test through nginx did not run "
                    "(apt-get install nginx)")
    return path


class Upstream:
    """The protected service: records each request (method, path, headers) and answers what Kalshi's
    SDK expects of GET /trade-api/v2/api_keys."""

    def __init__(self) -> None:
        seen: list[dict] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen.append({"method": self.command, "path": self.path, "body": body,
                             "headers": {k.lower(): v for k, v in self.headers.items()}})
                out = json.dumps({"api_keys": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def reached(self, marker: str) -> list[dict]:
        return [r for r in self.seen if marker in r["path"]]


class Nginx:
    """nginx in the foreground, in a temporary prefix, serving ``server_block``."""

    def __init__(self, binary: str, prefix: Path, server_block: str) -> None:
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        temp = prefix / "tmp"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temporary prefix
        conf.write_text(f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{server_block}
}}
""")
        self.prefix = prefix
        self.proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}"
                                   if self.proc.stderr else "nginx exited")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown of this nginx (the process we started)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stack(server, tmp_path_factory):
    """Strongroom (trusting the loopback as its proxy, the README's rules) + upstream + nginx."""
    binary = find_nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    rules = tmp / "forward.rules"
    rules.write_text(readme_block("text"))
    strongroom = start_server(data_dir=server.settings.data_dir, database_url=server.settings.database_url,
                              trusted_proxies=["127.0.0.1/32"], forward_rules=str(rules),
                              auth_failures_per_ip="5/minute")
    upstream = Upstream()
    port = free_port()
    block = (readme_block("nginx").replace(LISTEN, f"127.0.0.1:{port}")
             .replace(STRONGROOM, strongroom.url.removeprefix("http://"))
             .replace(UPSTREAM, f"127.0.0.1:{upstream.port}"))
    nginx = Nginx(binary, tmp / "prefix", block)
    try:
        nginx.wait(port)
        yield {"url": f"http://127.0.0.1:{port}", "upstream": upstream, "strongroom": strongroom}
    finally:
        nginx.stop()
        upstream.http.shutdown()
        strongroom.stop()


_next_address = iter(range(10, 250))


def from_address() -> tuple[httpx.Client, str]:
    """A client with a loopback source address of its own (127.0.0.x): its own failure budget and allowlist."""
    address = f"127.0.0.{next(_next_address)}"
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30), address


def generate(client, user, **body) -> tuple[dict, str]:
    body.setdefault("name", f"g-{uuid.uuid4().hex[:6]}")
    response = client.post("/v1/api-keys/generate", json={"key_type": "rsa", **body}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json(), response.json()["private_key"]


def kalshi_get(http: httpx.Client, url: str, key_id: str, pem: str, path: str, **extra: str) -> httpx.Response:
    return http.get(url + path, headers={**sign_kalshi(key_id, load_private_key(pem), "GET", path), **extra})


# --------------------------------------------------------------------------- through nginx


def test_the_kalshi_sdk_reaches_the_upstream_with_its_identity(stack, client, users):
    import kalshi_python_sync as sdk

    user = users.create()
    key, pem = generate(client, user, scopes=["read", "write"])
    config = sdk.Configuration(host=stack["url"] + "/trade-api/v2")
    config.api_key_id = key["key_id"]
    config.private_key_pem = pem
    kalshi = sdk.KalshiClient(config)
    before = len(stack["upstream"].seen)
    assert kalshi.get_api_keys().api_keys == []
    reached = stack["upstream"].seen[before:]
    assert len(reached) == 1 and reached[0]["path"] == "/trade-api/v2/api_keys"
    headers = reached[0]["headers"]
    assert headers["x-strongroom-user"] == str(user.id)
    assert headers["x-strongroom-key"] == key["key_id"]
    assert headers["x-strongroom-scopes"] == "read write"
    assert headers["x-strongroom-accounts"] == "*"
    assert headers["kalshi-access-key"] == key["key_id"]  # the client's own headers pass on unchanged

    # the SDK signing with another key's private key: a bad signature, stopped at nginx
    _, other_pem = generate(client, user)
    config.private_key_pem = other_pem
    with pytest.raises(sdk.exceptions.UnauthorizedException) as refused:
        sdk.KalshiClient(config).get_api_keys()
    assert refused.value.status == 401
    assert refused.value.headers["X-Strongroom-Reason"] == "bad_signature"
    assert len(stack["upstream"].seen) == before + 1, "the upstream saw a refused request"


def test_refusals_are_stopped_at_nginx_with_their_status(stack, client, users):
    url, upstream = stack["url"], stack["upstream"]
    user = users.create()
    http, address = from_address()
    with http:
        reader, reader_pem = generate(client, user, scopes=["read"])
        marker = f"/orders/{uuid.uuid4().hex}"
        assert kalshi_get(http, url, reader["key_id"], reader_pem, marker).status_code == 200  # GET /orders*: read

        # a key without the rule's scope: POST /orders* needs write
        post = http.post(url + marker, headers=sign_kalshi(reader["key_id"], load_private_key(reader_pem), "POST",
                                                           marker))
        assert post.status_code == 403 and post.headers["x-strongroom-reason"] == "insufficient_scope"

        # a replay of a request that passed
        replay = sign_kalshi(reader["key_id"], load_private_key(reader_pem), "GET", marker + "/r")
        assert http.get(url + marker + "/r", headers=replay).status_code == 200
        again = http.get(url + marker + "/r", headers=replay)
        assert again.status_code == 401 and again.headers["x-strongroom-reason"] == "replayed"

        # an address outside the key's allowlist (the end client's, not nginx's)
        fenced, fenced_pem = generate(client, user, ip_allowlist=["127.0.0.250/32"])
        outside = kalshi_get(http, url, fenced["key_id"], fenced_pem, marker + "/ip")
        assert outside.status_code == 403 and outside.headers["x-strongroom-reason"] == "ip_not_allowed"
        # ... and forging X-Forwarded-For does not help: nginx sets it
        forged = kalshi_get(http, url, fenced["key_id"], fenced_pem, marker + "/ip2", **{"X-Forwarded-For": "127.0.0.250"})
        assert forged.status_code == 403
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.250"), timeout=30) as inside:
        assert kalshi_get(inside, url, fenced["key_id"], fenced_pem, marker + "/ip3").status_code == 200
    reached = {(r["method"], r["path"]) for r in upstream.reached(marker)}
    assert reached == {("GET", marker), ("GET", marker + "/r"), ("GET", marker + "/ip3")}, reached
    assert address != "127.0.0.250"


def test_an_expired_key_is_stopped_at_nginx(stack, client, users):
    user = users.create()
    soon = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0) + timedelta(seconds=1)  # a busy machine's slack
    key = make_key(client, user, expires_at=soon.isoformat())
    http, _ = from_address()
    marker = f"/exp/{uuid.uuid4().hex}"
    with http:
        assert http.get(stack["url"] + marker + "/1", headers={"X-API-Key": key["secret"]}).status_code == 200
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.6)
        late = http.get(stack["url"] + marker + "/2", headers={"X-API-Key": key["secret"]})
    assert late.status_code == 401 and late.headers["x-strongroom-reason"] == "expired"
    assert [r["path"] for r in stack["upstream"].reached(marker)] == [marker + "/1"]


def test_a_spent_failure_budget_is_a_429_with_retry_after(stack, client, users):
    key = make_key(client, users.create())
    http, _ = from_address()
    marker = f"/budget/{uuid.uuid4().hex}"
    with http:
        for _ in range(5):  # STRONGROOM_AUTH_FAILURES_PER_IP=5/minute for this client address
            assert http.get(stack["url"] + marker, headers={"X-API-Key": "sr_" + "E" * 30}).status_code == 401
        limited = http.get(stack["url"] + marker, headers={"X-API-Key": key["secret"]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-strongroom-reason"] == "rate_limited"
    other, _ = from_address()
    with other:  # another client behind the same nginx is not affected
        assert other.get(stack["url"] + marker + "/ok", headers={"X-API-Key": key["secret"]}).status_code == 200
    assert [r["path"] for r in stack["upstream"].reached(marker)] == [marker + "/ok"]


def test_forged_identity_headers_are_overwritten(stack, client, users):
    user = users.create()
    key = make_key(client, user, scopes=["read"])
    forged = {"X-Strongroom-User": "1", "X-Strongroom-Key": "someone-else", "X-Strongroom-Scopes": "read write verify",
              "X-Strongroom-Accounts": "*", "X-Original-URI": "/health", "X-Original-Method": "GET"}
    http, _ = from_address()
    marker = f"/orders/{uuid.uuid4().hex}"
    with http:
        ok = http.get(stack["url"] + marker, headers={"X-API-Key": key["secret"], **forged})
        assert ok.status_code == 200
        # the rule for POST /orders* holds although the client names another URI (nginx sets X-Original-*)
        post = http.post(stack["url"] + marker, headers={"X-API-Key": key["secret"], **forged})
        assert post.status_code == 403 and post.headers["x-strongroom-reason"] == "insufficient_scope"
        # with no valid key at all the forged headers get nowhere
        assert http.get(stack["url"] + marker + "/anon", headers=forged).status_code == 401
    reached = stack["upstream"].reached(marker)
    assert [r["path"] for r in reached] == [marker]
    headers = reached[0]["headers"]
    assert headers["x-strongroom-user"] == str(user.id)
    assert headers["x-strongroom-key"] == key["key_id"]
    assert headers["x-strongroom-scopes"] == "read"


def test_a_body_signing_scheme_with_a_body_is_not_verifiable(stack, client, users):
    from support.signing import sign_hmac

    hkey = make_key(client, users.create(), kind="hmac", scopes=["read", "write"])
    marker = f"/orders/{uuid.uuid4().hex}"
    body = b'{"side":"buy"}'
    http, _ = from_address()
    with http:
        posted = http.post(stack["url"] + marker, content=body,
                           headers=sign_hmac(hkey["key_id"], hkey["secret"], "POST", marker, body))
        assert posted.status_code == 401 and posted.headers["x-strongroom-reason"] == "body_not_verifiable"
        got = http.get(stack["url"] + marker, headers=sign_hmac(hkey["key_id"], hkey["secret"], "GET", marker))
        assert got.status_code == 200
    assert [r["method"] for r in stack["upstream"].reached(marker)] == ["GET"]
