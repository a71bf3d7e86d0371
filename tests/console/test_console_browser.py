"""The console in a real browser (Debian's Chromium through Playwright): sign in, connect the demo Binance account
and see 31,200 USD, a bearer key's secret shown once and its use in the key's usage, revocation, the audit CSV,
escaping, CSRF, the CSP, a 375 px screen and the keyboard. The SQLite pass writes a screenshot of every page
(`make screenshots`: into docs/console/, which the README shows)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SCREENSHOTS, Console

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=console.url,
                                  accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    # a CSP violation or a script error is a failure of the page (a 4xx answer a test asks for is not)
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    yield page
    context.close()
    assert not problems, problems


def shot(page: Any, console: Console, name: str, *, full: bool = True) -> None:
    """Write a screenshot (SQLite pass: into SCREENSHOTS, docs/console/ under `make screenshots`; PostgreSQL:
    nowhere)."""
    if console.backend == "sqlite":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full)


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Exchange accounts").wait_for()


def choose_exchange(page: Any, exchange: str) -> None:
    """Choose ``exchange`` in the connect form and wait until htmx has swapped in its fields (a value typed
    into the old fields before that would be lost with them)."""
    # htmx binds the select's change event once the page has loaded: choose only then (a busy machine is slow)
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    with page.expect_response(lambda r: "/console/accounts/fields" in r.url):
        page.get_by_label("Exchange", exact=True).select_option(exchange)
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def test_sign_in_with_the_keyboard_connect_the_demo_account_and_see_31200_usd(page: Any, console: Console) -> None:
    username, password = console.user()
    page.goto("/console")
    assert page.url.endswith("/console/sign-in")
    shot(page, console, "sign-in")
    # keyboard only: the username field has the focus, Tab moves on, Enter submits
    # (autofocus may be applied in a rendering update after the load event: wait for it, without clicking)
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'username'", timeout=10_000)
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Exchange accounts").wait_for()
    page.keyboard.press("Tab")  # the first stop on every page: the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    choose_exchange(page, "binance")  # (its fields are swapped in: fill them only after that)
    page.get_by_label("Name").fill("Binance main")
    page.get_by_label("API key").fill("demo-binance-key")
    page.get_by_label("Secret").fill("demo-binance-secret")
    page.get_by_role("button", name="Connect account").click()
    page.get_by_text("Account connected.").wait_for()
    record_history(console, int(page.url.split("/accounts/")[1].split("?")[0]))
    page.get_by_role("button", name="Refresh balances").click()
    page.get_by_text("Balances loaded from the exchange.").wait_for()
    assert page.get_by_test_id("total-usd").inner_text() == "31,200.00"
    assert "demo-binance-secret" not in page.content()
    shot(page, console, "account")

    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("heading", name="Exchange accounts").wait_for()
    row = page.get_by_role("row", name="Binance main")
    assert row.get_by_test_id("account-usd").inner_text() == "31,200.00"
    assert row.get_by_text("active").is_visible()
    shot(page, console, "accounts")

    page.get_by_role("link", name="Portfolio").click()
    page.get_by_role("heading", name="Portfolio").wait_for()
    assert page.get_by_test_id("portfolio-usd").inner_text() == "31,200.00"
    assert page.locator("svg polyline.line").count() == 1
    shot(page, console, "portfolio")


def test_the_connect_form_follows_the_exchange(page: Any, console: Console) -> None:
    sign_in(page, *console.user())
    assert page.get_by_label("Passphrase").count() == 0
    choose_exchange(page, "okx")
    page.get_by_label("Passphrase").wait_for()  # htmx fetched OKX's fields
    assert page.get_by_label("API key").is_visible() and page.get_by_label("Secret").is_visible()


def test_a_bearer_key_secret_is_shown_once_used_counted_and_revoked(page: Any, console: Console) -> None:
    sign_in(page, *console.user())
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("heading", name="API keys", exact=True).wait_for()
    page.get_by_label("Name").fill("trading bot")
    page.get_by_label("Kind").select_option("bearer")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_test_id("new-secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert secret.startswith("sr_")
    assert page.get_by_role("button", name="Copy").is_visible()
    shot(page, console, "api-key-created")

    page.reload()
    page.get_by_role("heading", name="API keys", exact=True).wait_for()
    assert page.get_by_test_id("new-secret").count() == 0
    assert secret not in page.content()
    shot(page, console, "api-keys")

    me = httpx.get(f"{console.url}/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["auth_scheme"] == "bearer_key"

    page.get_by_role("link", name="trading bot").click()
    page.get_by_role("heading", name="trading bot").wait_for()
    deadline = time.monotonic() + 10
    while page.locator('[data-outcome="ok"]').inner_text() != "1":  # usage is written in batches
        assert time.monotonic() < deadline, "the request never showed in the key's usage"
        time.sleep(0.3)
        page.reload()
    assert page.locator("svg rect.bar.ok").count() == 1
    shot(page, console, "api-key")

    page.get_by_role("link", name="Revoke…").click()
    page.get_by_role("heading", name="Revoke this API key?").wait_for()
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("Key revoked.").wait_for()
    assert page.get_by_role("link", name="trading bot").count() == 0
    assert httpx.get(f"{console.url}/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_generated_private_key_can_be_downloaded_once(page: Any, console: Console) -> None:
    sign_in(page, *console.user())
    page.goto("/console/keys")
    page.get_by_label("Name").fill("signer")
    page.get_by_label("Kind").select_option("ed25519")
    page.get_by_role("button", name="Create key").click()
    pem = page.get_by_test_id("new-secret").input_value()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download signer.pem").click()
    assert Path(download.value.path()).read_text() == pem
    page.goto("/console/keys")
    assert page.get_by_test_id("new-secret").count() == 0


def test_the_audit_csv_export_holds_the_filtered_rows(page: Any, console: Console) -> None:
    username, password = console.user()
    sign_in(page, username, password)
    page.goto("/console/keys")
    for name in ("audit one", "audit two"):
        page.get_by_label("Name").fill(name)
        page.get_by_role("button", name="Create key").click()
        # the key's own link, not the secret box: the first key's box is still there while the second POST runs
        page.get_by_role("link", name=name, exact=True).wait_for()
        page.get_by_test_id("new-secret").wait_for()
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("heading", name="Audit log").wait_for()
    assert page.get_by_role("cell", name="auth.sign_in").count() >= 1
    page.get_by_label("Action").fill("api_key.create")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/audit?action=api_key.create*")
    assert page.get_by_role("cell", name="auth.sign_in").count() == 0
    shot(page, console, "audit")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert [r["action"] for r in rows] == ["api_key.create", "api_key.create"]
    assert all(r["outcome"] == "ok" and r["target"].startswith("api_key:") for r in rows)
    assert {r["actor_user_id"] for r in rows} == {str(console.server.core.users.by_username(  # type: ignore[attr-defined]
        _operator(), username).id)}


def test_an_account_named_like_a_script_renders_as_text(page: Any, console: Console) -> None:
    sign_in(page, *console.user())
    page.get_by_label("Name").fill("<script>alert(1)</script>")
    page.get_by_label("API key").fill("demo-binance-key-2")
    page.get_by_label("Secret").fill("demo-binance-secret-2")
    page.get_by_role("button", name="Connect account").click()
    page.get_by_text("Account connected.").wait_for()
    assert page.get_by_role("heading", level=1).inner_text().startswith("<script>alert(1)</script>")
    page.goto("/console/accounts")
    assert page.get_by_role("link", name="<script>alert(1)</script>").is_visible()
    # no dialog opened (the fixture fails the test on any), and the page holds no such element
    assert page.evaluate("[...document.scripts].every(s => s.src)")


def test_a_form_posted_without_its_csrf_token_is_refused(page: Any, console: Console) -> None:
    sign_in(page, *console.user())
    page.goto("/console/keys")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => i.remove())")
    page.get_by_label("Name").fill("forged")
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name="Form refused").wait_for()
    page.goto("/console/keys")
    assert page.get_by_role("link", name="forged").count() == 0


def test_every_page_sends_the_csp(page: Any, console: Console) -> None:
    sign_in(page, *console.user(admin=True))
    for path in ("/console/accounts", "/console/keys", "/console/audit", "/console/portfolio", "/console/admin"):
        answer = page.goto(path)
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["cache-control"] == "no-store"
    # htmx added no inline style (includeIndicatorStyles: false): a violation would be a console error
    assert page.locator("style").count() == 0


def test_admin_manages_users_and_sees_the_master_key(page: Any, console: Console) -> None:
    sign_in(page, *console.user(admin=True))
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("heading", name="Admin", exact=True).wait_for()
    assert page.get_by_role("heading", name="Master key").is_visible()
    assert page.get_by_role("heading", name="Jobs").is_visible() and page.get_by_text("in every process").first.is_visible()
    page.get_by_label("Username").fill("newcomer-" + console.backend)
    page.get_by_label("Password", exact=False).first.fill("a long enough password")
    page.get_by_role("button", name="Create user").click()
    page.get_by_text("User created.").wait_for()
    shot(page, console, "admin")
    page.get_by_role("link", name="newcomer-" + console.backend).click()
    page.get_by_label("Level").select_option("premier")
    page.get_by_role("button", name="Save level").click()
    page.get_by_text("Usage level changed.").wait_for()
    page.get_by_label("New password").fill("another long password")
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("Password set").wait_for()
    shot(page, console, "admin-user")
    page.get_by_role("link", name="Delete user…").click()
    page.get_by_role("button", name="Delete user").click()
    page.get_by_text("User deleted.").wait_for()
    assert page.get_by_role("link", name="newcomer-" + console.backend).count() == 0


def test_admin_retries_a_dead_job_and_cancels_a_queued_one(page: Any, console: Console) -> None:
    from strongroom.jobs import enqueue

    core: Any = console.server.core
    with core.db.session() as session:
        enqueue(session, "webhooks.deliver", {"event": 1}, delay=600)
        queued = enqueue(session, "balances.refresh", {"account_id": 7}, delay=300)
        enqueue(session, "reports.daily", {}, max_attempts=1)
    [claimed] = core.jobs.claim(["reports.daily"], 1, 30)
    core.jobs.fail(claimed, "exchange unavailable", 0, permanent=True)
    sign_in(page, *console.user(admin=True))
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Durable jobs: list, retry, cancel »").click()
    page.get_by_role("heading", name="Jobs", exact=True, level=1).wait_for()
    assert page.get_by_text("exchange unavailable").is_visible()
    page.get_by_role("button", name=f"Retry job {claimed.id}").click()
    page.get_by_text("Job queued again.").wait_for()
    page.get_by_role("button", name=f"Cancel job {queued}").click()
    page.get_by_text("Job canceled.").wait_for()
    assert core.jobs.get(queued).status == "canceled" and core.jobs.get(claimed.id).status == "queued"
    page.get_by_label("Status").select_option("canceled")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/admin/jobs?status=canceled*")
    page.get_by_role("button", name=f"Retry job {queued}").wait_for()
    assert page.get_by_role("button", name=f"Cancel job {claimed.id}").count() == 0
    page.goto("/console/admin/jobs")  # last: a screenshot leaves a style attribute that a later swap would copy
    shot(page, console, "jobs")


def test_works_at_375_px_wide(browser: Any, console: Console) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, base_url=console.url)
    page = context.new_page()
    try:
        sign_in(page, *console.user())
        for path, name in (("/console/accounts", "accounts-375px"), ("/console/keys", None), ("/console/audit", None)):
            page.goto(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, (path, width)
            if name:
                shot(page, console, name)
    finally:
        context.close()


def record_history(console: Console, account_id: int) -> None:
    """Two days of stored totals before today's load (the service's own test hook): the charts have a line."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from strongroom.balances.valuation import AssetValue

    now = datetime.now(UTC)
    for hours_ago, usd in ((48, 24800), (40, 26100), (32, 25400), (24, 27900), (16, 29300), (8, 28700), (2, 30500)):
        value = Decimal(usd)
        asset = AssetValue("USDT", value, Decimal(0), value, value, value / 50000, Decimal(1))
        console.server.core.balance_store.record_snapshot(account_id, [asset], now - timedelta(hours=hours_ago))  # type: ignore[attr-defined]


def _operator() -> Any:
    from strongroom.principal import Principal

    return Principal(user_id=0, username="operator", is_admin=True)


def test_the_core_forms_work_without_javascript(browser: Any, console: Console) -> None:
    context = browser.new_context(java_script_enabled=False, base_url=console.url)
    page = context.new_page()
    try:
        sign_in(page, *console.user())
        # without htmx the exchange's fields come from the form itself ("Show its fields")
        page.get_by_label("Exchange", exact=True).select_option("okx")
        page.get_by_label("Name").fill("OKX without script")
        page.get_by_role("button", name="Show its fields").click()
        assert "?" not in page.url  # a POST: nothing typed goes into a URL
        assert page.get_by_label("Name").input_value() == "OKX without script"
        page.get_by_label("Passphrase").fill("demo-okx-passphrase")
        page.get_by_label("API key").fill("demo-okx-key")
        page.get_by_label("Secret").fill("demo-okx-secret")
        page.get_by_role("button", name="Connect account").click()
        page.get_by_text("Account connected.").wait_for()
        page.get_by_role("button", name="Refresh balances").click()
        page.get_by_text("Balances loaded from the exchange.").wait_for()
        page.goto("/console/keys")
        page.get_by_label("Name").fill("no script")
        page.get_by_role("button", name="Create key").click()
        assert page.get_by_test_id("new-secret").input_value().startswith("sr_")
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for()
    finally:
        context.close()
