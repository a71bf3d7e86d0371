"""The console's safety over plain HTTP: CSP and no-store on every page, CSRF on every form, the session
cookie's flags, sign-in through the users service (failure budget, audit), a new session at sign-in, sign-out
ending the session on the server, escaping, the lazy import and the switch."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import Console, csrf_of
from support import ROOT, start_server

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
PAGES = ["/console/accounts", "/console/portfolio", "/console/keys", "/console/audit", "/console/admin"]
STATIC = ROOT / "strongroom" / "console" / "static"


def test_every_console_page_sends_the_csp_and_no_store(console: Console) -> None:
    client = console.signed_in(*console.user(admin=True))
    for path in ["/console/sign-in", *PAGES, "/console/no-such-page", "/console/static/console.css"]:
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["cache-control"] == "no-store", path
    assert client.get("/console/no-such-page").status_code == 404


def test_root_redirects_to_the_console_and_the_docs_stay(console: Console) -> None:
    with console.client() as client:
        assert client.get("/").headers["location"] == "/console"
        assert client.get("/console").headers["location"] == "/console/"
        assert client.get("/console/").headers["location"] == "/console/sign-in"
        assert client.get("/console/accounts").headers["location"] == "/console/sign-in"
        assert client.get("/docs").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(console: Console) -> None:
    client = console.signed_in(*console.user())
    token = csrf_of(client.get("/console/keys").text)
    for data in ({"name": "no token", "kind": "bearer", "scopes": "read"},
                 {"name": "wrong token", "kind": "bearer", "scopes": "read", "csrf": "0" * 64}):
        answer = client.post("/console/keys", data=data)
        assert answer.status_code == 403
        assert "Form refused" in answer.text
    assert "no token" not in client.get("/console/keys").text  # nothing was created
    assert client.post("/console/keys", data={"name": "with token", "kind": "bearer", "scopes": "read",
                                              "csrf": token}).status_code == 201
    # the sign-in form too, and sign-out
    with console.client() as fresh:
        fresh.get("/console/sign-in")
        username, password = console.user()
        assert fresh.post("/console/sign-in", data={"username": username, "password": password}).status_code == 403
    assert client.post("/console/sign-out", data={}).status_code == 403
    assert client.get("/console/keys").status_code == 200  # still signed in


def test_session_cookie_flags_new_session_at_sign_in_and_sign_out_ends_it(console: Console) -> None:
    username, password = console.user()
    with console.client() as client:
        page = client.get("/console/sign-in")
        before = client.cookies.get("sr_console_signin")
        answer = client.post("/console/sign-in",
                             data={"username": username, "password": password, "csrf": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/accounts"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("sr_console="))
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
        assert "secure" not in flags  # plain http, no https public URL
        value = client.cookies.get("sr_console")
        assert value and before and before not in value  # a new seed, not the sign-in page's (no fixation)
        access = value.split(".")[1]
        snapshot = console.server.core.sessions.resolve(access)  # type: ignore[attr-defined]
        assert snapshot is not None and snapshot.username == username
        token = csrf_of(client.get("/console/accounts").text)
        out = client.post("/console/sign-out", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"].startswith("/console/sign-in")
        # the session is over on the server: the stolen cookie (and its refresh token) no longer work
        assert console.server.core.sessions.resolve(access) is None  # type: ignore[attr-defined]
    with console.client() as thief:
        thief.cookies.set("sr_console", value, path="/console")
        assert thief.get("/console/accounts").headers["location"] == "/console/sign-in"


def test_an_expired_access_token_is_refreshed_and_the_cookie_renewed(console: Console) -> None:
    from sqlalchemy import update

    from strongroom.db import utcnow
    from strongroom.models import AuthSession

    client = console.signed_in(*console.user())
    seed, access, _ = client.cookies["sr_console"].split(".")
    core = console.server.core
    with core.db.session() as session:  # type: ignore[attr-defined]
        session.execute(update(AuthSession).where(AuthSession.access_hash == core.hasher.token(access))  # type: ignore[attr-defined]
                        .values(access_expires_at=utcnow()))
    core.sessions._forget([core.hasher.token(access)])  # type: ignore[attr-defined]
    answer = client.get("/console/keys")
    assert answer.status_code == 200
    renewed = client.cookies["sr_console"].split(".")
    assert renewed[0] == seed and renewed[1] != access  # same CSRF seed, new tokens
    assert csrf_of(answer.text)


@pytest.mark.parametrize("path", ["/console/no-such-page", "/console/", "/console/sign-in"])
def test_every_answer_to_a_renewed_visit_carries_the_new_cookie(console: Console, path: str) -> None:
    """A page that is not a signed-in handler (404, the home and sign-in redirects) still hands back the
    renewed tokens: the old refresh token is spent, and sending it again would end the session."""
    from sqlalchemy import update

    from strongroom.db import utcnow
    from strongroom.models import AuthSession

    client = console.signed_in(*console.user())
    _, access, _ = client.cookies["sr_console"].split(".")
    core = console.server.core
    with core.db.session() as session:  # type: ignore[attr-defined]
        session.execute(update(AuthSession).where(AuthSession.access_hash == core.hasher.token(access))  # type: ignore[attr-defined]
                        .values(access_expires_at=utcnow()))
    core.sessions._forget([core.hasher.token(access)])  # type: ignore[attr-defined]
    client.get(path, follow_redirects=False)
    assert client.cookies["sr_console"].split(".")[1] != access
    # the next page, sent with the cookie just set, is still signed in
    assert client.get("/console/keys").status_code == 200


def test_secure_cookie_with_an_https_public_url(console: Console, tmp_path: Path) -> None:
    server = start_server(data_dir=tmp_path, database_url=console.server.settings.database_url,  # type: ignore[attr-defined]
                          public_url="https://strongroom.example.com")
    try:
        with server.client() as client:
            answer = client.get("/console/sign-in")
            cookie = answer.headers["set-cookie"].lower()
            assert "secure" in [part.strip() for part in cookie.split(";")]
    finally:
        server.stop()


def test_wrong_password_is_audited_and_counted_by_the_users_service(console: Console) -> None:
    username, _ = console.user()
    with console.client() as client:
        token = csrf_of(client.get("/console/sign-in").text)
        answer = client.post("/console/sign-in", data={"username": username, "password": "wrong-password",
                                                        "csrf": token})
        assert answer.status_code == 401
        assert "Wrong username or password." in answer.text
        assert "wrong-password" not in answer.text
    core = console.server.core
    admin = core.users.by_username  # type: ignore[attr-defined]
    from strongroom.principal import Principal

    operator = Principal(user_id=0, username="operator", is_admin=True)
    user_id = admin(operator, username).id
    events = core.audit.list(operator, action="auth.sign_in", user_id=None, limit=200).items  # type: ignore[attr-defined]
    assert any(e.outcome == "failed" and e.details.get("username") == username and e.details.get("scheme") == "console"
               for e in events), user_id


def test_sign_in_failure_budget_is_the_users_service(console: Console, tmp_path: Path) -> None:
    server = start_server(data_dir=tmp_path, database_url=console.server.settings.database_url,  # type: ignore[attr-defined]
                          login_failures_per_ip="2/minute")
    try:
        with server.client(follow_redirects=False) as client:
            token = csrf_of(client.get("/console/sign-in").text)
            statuses = [client.post("/console/sign-in", data={"username": "nobody", "password": "wrong-password",
                                                               "csrf": token}).status_code for _ in range(3)]
            assert statuses == [401, 401, 429]
            # the same budget as POST /v1/auth/token: that address is refused there too
            assert client.post("/v1/auth/token", data={"username": "nobody", "password": "x"}).status_code == 429
    finally:
        server.stop()


def test_names_are_escaped(console: Console) -> None:
    client = console.signed_in(*console.user())
    token = csrf_of(client.get("/console/keys").text)
    answer = client.post("/console/keys", data={"name": '<img src=x onerror=alert(1)>"', "kind": "bearer",
                                                "scopes": "read", "csrf": token})
    assert answer.status_code == 201
    page = client.get("/console/keys").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;&#34;" in page


def test_bad_input_is_a_4xx_page_never_a_500(console: Console) -> None:
    client = console.signed_in(*console.user())
    token = csrf_of(client.get("/console/keys").text)
    cases = [
        ("post", "/console/keys", {"name": "", "kind": "bearer", "csrf": token}, 422),
        ("post", "/console/keys", {"name": "k", "kind": "nonsense", "csrf": token}, 422),
        ("post", "/console/keys", {"name": "k", "kind": "bearer", "expires_at": "tomorrow", "csrf": token}, 422),
        ("post", "/console/keys", {"name": "k", "kind": "bearer", "account_ids": "x", "csrf": token}, 404),
        ("post", "/console/keys", {"name": "k", "kind": "bearer", "ip_allowlist": "not-an-ip", "csrf": token}, 422),
        ("post", "/console/accounts", {"exchange": "nowhere", "csrf": token}, 422),
        ("post", "/console/accounts", {"exchange": "binance", "cred_api_key": "demo-binance-key",
                                       "cred_secret": "not-the-secret", "csrf": token}, 400),
        ("get", "/console/accounts/999999", None, 404),
        ("get", "/console/accounts/abc", None, 404),
        ("get", "/console/accounts?cursor=garbage", None, 422),
        ("get", "/console/keys/nope", None, 404),
        ("get", "/console/audit?from=yesterday", None, 422),
        ("get", "/console/admin", None, 404),  # not an admin
        ("post", "/console/accounts/1/explode", {"csrf": token}, 404),
    ]
    for method, path, data, status in cases:
        answer = client.request(method, path, data=data)
        assert answer.status_code == status, (path, data, answer.status_code, answer.text[-600:])
        assert answer.headers["content-type"].startswith("text/html")
        assert "not-the-secret" not in answer.text


def test_the_console_is_imported_on_first_use_only() -> None:
    code = ("import sys\nfrom strongroom.app import create_app\nfrom strongroom.settings import Settings\n"
            "create_app(Settings(data_dir=sys.argv[1]))\n"
            "print(sorted(m for m in sys.modules if m.startswith(('strongroom.console', 'jinja2'))))")
    out = subprocess.run([sys.executable, "-c", code, "/tmp/strongroom-console-lazy"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_console_off(console: Console, tmp_path: Path) -> None:
    server = start_server(data_dir=tmp_path, database_url=console.server.settings.database_url,  # type: ignore[attr-defined]
                          console=False)
    try:
        with server.client(follow_redirects=False) as client:
            assert client.get("/").headers["location"] == "/docs"
            assert client.get("/console/sign-in").status_code == 404
    finally:
        server.stop()


def test_vendored_htmx_is_the_pinned_2x_build() -> None:
    note = (STATIC / "README.md").read_text()
    digest = hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest()
    assert digest in note and "htmx **2.0.11**" in note
    assert b'version:"2.0.11"' in (STATIC / "htmx.min.js").read_bytes()


def test_no_inline_script_or_style_in_the_templates() -> None:
    import re

    for template in (ROOT / "strongroom" / "console" / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\sstyle=|<style", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name


def test_every_list_pages(console: Console) -> None:
    username, password = console.user(admin=True)
    client = console.signed_in(username, password)
    from strongroom.principal import Principal

    user = console.server.core.users.by_username(Principal(user_id=0, username="op", is_admin=True), username)  # type: ignore[attr-defined]
    owner = Principal(user_id=user.id, username=username, is_admin=True)
    names = [f"paged key {n:02d}" for n in range(30)]
    for name in names:
        console.server.core.api_keys.create(owner, name=name)  # type: ignore[attr-defined]
    first = client.get("/console/keys").text
    nxt = re.search(r'href="(/console/keys\?cursor=[^"]+)">Next page', first)
    assert nxt, "no next page link"
    second = client.get(nxt.group(1).replace("&amp;", "&")).text
    shown = [n for n in names if f">{n}<" in first] + [n for n in names if f">{n}<" in second]
    assert sorted(shown) == names and "Next page" not in second and "First page" in second
    audit = client.get("/console/audit?action=api_key.create").text  # 30 events: two pages
    assert "Next page" in audit and "cursor=" in audit and "action=api_key.create&amp;cursor=" in audit


def test_audit_filters_by_user_outcome_and_time(console: Console) -> None:
    target, _ = console.user()
    with console.client() as stranger:
        token = csrf_of(stranger.get("/console/sign-in").text)
        stranger.post("/console/sign-in", data={"username": target, "password": "not-it-at-all", "csrf": token})
    admin = console.signed_in(*console.user(admin=True))
    page = admin.get("/console/audit", params={"user": target}).text
    rows = re.findall(r"<code>([a-z_.]+)</code></td>", page)
    assert rows == ["auth.sign_in"] and ">failed<" in page  # only the target's own events
    assert "<code>auth.sign_in</code>" not in admin.get(
        "/console/audit", params={"user": target, "outcome": "ok"}).text
    assert "No events match." in admin.get("/console/audit", params={"user": target, "to": "2000-01-01T00:00"}).text
    assert "<code>auth.sign_in</code>" in admin.get(
        "/console/audit", params={"user": target, "from": "2000-01-01T00:00"}).text
    assert admin.get("/console/audit", params={"user": "nobody-by-this-name"}).status_code == 404
    # a user who is not an admin sees only their own events, whatever they ask for
    own = console.signed_in(*console.user())
    assert own.get("/console/audit", params={"user": target}).status_code == 404


def test_pages_asked_at_once_after_expiry_keep_the_session(console: Console) -> None:
    """Pages asked together with an expired access token all keep the session: the first renews it, and the
    others, bringing the refresh token it just spent (which would otherwise end the session as leaked), get a
    pair of their own in the same family (the sessions capability's reuse grace, held in the database: it
    holds under --workers too). Whichever cookie the browser keeps goes on working."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import update

    from strongroom.db import utcnow
    from strongroom.models import AuthSession

    client = console.signed_in(*console.user())
    cookie = client.cookies["sr_console"]
    access = cookie.split(".")[1]
    core = console.server.core
    with core.db.session() as session:  # type: ignore[attr-defined]
        session.execute(update(AuthSession).where(AuthSession.access_hash == core.hasher.token(access))  # type: ignore[attr-defined]
                        .values(access_expires_at=utcnow()))
    core.sessions._forget([core.hasher.token(access)])  # type: ignore[attr-defined]

    def visit(path: str) -> tuple[int, str]:
        answer = httpx.get(console.url + path, headers={"Cookie": f"sr_console={cookie}"})
        found = re.search(r"sr_console=([^;]+)", answer.headers.get("set-cookie", ""))
        return answer.status_code, found.group(1) if found else ""

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(visit, ["/console/keys", "/console/accounts", "/console/audit", "/console/portfolio"]))
    assert [status for status, _ in results] == [200] * 4
    renewed = {value for _, value in results}
    assert all(renewed) and cookie not in renewed
    for value in renewed:
        later = httpx.get(console.url + "/console/keys", headers={"Cookie": f"sr_console={value}"})
        assert later.status_code == 200, value  # the session lives on, whichever cookie the browser kept


def test_csv_cells_never_start_a_formula() -> None:
    from strongroom.console.pages import _cell

    assert [_cell(v) for v in ("=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "\tx", "plain", "")] == [
        "'=HYPERLINK(\"x\")", "'+1", "'-1", "'@SUM(A1)", "'\tx", "plain", ""]
