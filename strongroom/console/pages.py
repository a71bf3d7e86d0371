"""The console's pages: sessions, CSRF, and one handler per page or form. Shapes only: every rule is the
services' (through :mod:`strongroom.console.backend`).

Sessions: signing in (the users service: its failure budget and audit rows) starts an ordinary Strongroom
session; the cookie ``sr_console`` (HttpOnly, SameSite=Strict, Secure over https or with an https
STRONGROOM_PUBLIC_URL, path /console) holds a random seed and the session's access and refresh tokens. An
expired access token is refreshed (rotated) on the next page; the session ends when the refresh token
expires unused (STRONGROOM_REFRESH_TOKEN_TTL_SECONDS) or at sign-out, which revokes it on the server. Every
form that changes something carries a CSRF token, a keyed digest of the seed (the sign-in form's seed is
a cookie of its own, replaced at sign-in: no fixation); a form without it is refused (403).
"""

from __future__ import annotations

import csv
import hmac
import io
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom import scopes as scope_rules
from strongroom.audit import OUTCOMES
from strongroom.auth.facts import client_ip
from strongroom.console import backend
from strongroom.console.charts import bar_chart, line_chart, money
from strongroom.core import Core
from strongroom.enums import AccountStatus, JobStatus, KeyKind, UsageLevel
from strongroom.errors import DomainError, NotFound, RateLimited, Unauthenticated, ValidationFailed
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.http.errors import domain_error
from strongroom.pagination import valid_id
from strongroom.principal import Principal
from strongroom.settings import Settings
from strongroom.users import TokenPair

log = logging.getLogger("strongroom.console")

HERE = Path(__file__).parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SESSION_COOKIE = "sr_console"
SIGN_IN_COOKIE = "sr_console_signin"
PATH = "/console"
CSV_LIMIT = 10_000  # rows of one audit export

# what ?done= may say after a form (a fixed table: nothing from the query string is shown)
DONE = {
    "connected": "Account connected.", "renamed": "Account renamed.", "disabled": "Account disabled.",
    "enabled": "Account enabled.", "revalidated": "Credentials checked with the exchange.",
    "rotated": "Credentials replaced.", "disconnected": "Account disconnected; its credentials are destroyed.",
    "refreshed": "Balances loaded from the exchange.", "key_disabled": "Key disabled.", "key_enabled": "Key enabled.",
    "revoked": "Key revoked.", "user_created": "User created.", "password_set": "Password set; the user's sessions "
    "are ended.", "level_set": "Usage level changed.", "user_deleted": "User deleted.",
    "signed_out": "You are signed out.", "job_retry": "Job queued again.", "job_cancel": "Job canceled.",
}
JOB_STATUSES = [s.value for s in JobStatus]


@dataclass
class Visit:
    """One request to a signed-in page."""

    request: Request
    core: Core
    principal: Principal
    seed: str
    access: str
    renewed: TokenPair | None  # the session's new tokens, when its access token was refreshed

    @property
    def csrf(self) -> str:
        return backend.csrf_token(self.core, self.seed)


Handler = Callable[[Visit], Awaitable[Response]]


# --------------------------------------------------------------------------- rendering


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["money"] = money
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["field"] = lambda name: FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
    env.filters["detail"] = _detail
    return env


# the catalogue's credential names as people read them
FIELD_LABELS = {"api_key": "API key", "secret": "Secret", "passphrase": "Passphrase", "uid": "UID",
                "address": "Wallet address", "private_key": "Private key", "account_id": "Account ID",
                "login": "Login", "password": "Password", "token": "Token"}


def _detail(value: Any) -> str:
    """An audit detail's value as text (lists joined, booleans and null as in JSON)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, tuple)):
        return ", ".join(_detail(v) for v in value)
    return str(value)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never loaded"
    seconds = max(seconds, 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = _environment()
        self.trusted = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]

    # --- plumbing ------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        done = DONE.get(request.query_params.get("done", ""))
        html = self.env.get_template(template).render(
            base=PATH, done=done, request_path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)

    def page(self, request: Request, visit: Visit, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.render(request, template, status, principal=visit.principal, csrf=visit.csrf, **context)

    @staticmethod
    def core(request: Request) -> Core:
        core: Core = request.scope["strongroom.core"]
        return core

    def ip(self, request: Request) -> str | None:
        peer = request.client.host if request.client else None
        return client_ip(peer, request.headers.get("x-forwarded-for") if self.trusted else None, self.trusted)

    def secure(self, request: Request) -> bool:
        return request.url.scheme == "https" or (self.settings.public_url or "").startswith("https://")

    def set_cookie(self, request: Request, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                            secure=self.secure(request))

    def session_cookie(self, request: Request, response: Response, seed: str, pair: TokenPair) -> None:
        self.set_cookie(request, response, SESSION_COOKIE, f"{seed}.{pair.access_token}.{pair.refresh_token}",
                        self.settings.refresh_token_ttl_seconds)

    @staticmethod
    def to_sign_in(request: Request) -> Response:
        target = f"{PATH}/sign-in"
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @staticmethod
    def redirect(path: str, done: str | None = None) -> Response:
        return RedirectResponse(f"{PATH}{path}" + (f"?done={done}" if done else ""), status_code=303)

    async def visit(self, request: Request) -> Visit | None:
        """The signed-in visit of ``request``, or None (no cookie, or a session that is over)."""
        parts = request.cookies.get(SESSION_COOKIE, "").split(".")
        if len(parts) != 3 or not all(parts):
            return None
        seed, access, refresh = parts
        core = self.core(request)
        try:
            principal, renewed = await backend.resume(core, access, refresh, self.ip(request))
        except Unauthenticated:
            return None
        return Visit(request, core, principal, seed, renewed.access_token if renewed else access, renewed)

    def signed_in(self, handler: Handler, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: sign-in required (else a redirect to the sign-in page), a CSRF token on every POST
        (else 403), the renewed cookie when the session was refreshed, and a domain error as a page in its
        status."""
        async def endpoint(request: Request) -> Response:
            visit = await self.visit(request)
            if visit is None:
                return self.to_sign_in(request)
            if request.method == "POST":
                form = await request.form()
                if not hmac.compare_digest(str(form.get("csrf", "")).encode(), visit.csrf.encode()):
                    response: Response = self.refused(request)
                    return response
            try:
                if admin and not visit.principal.is_admin:
                    raise NotFound("not found")
                response = await handler(visit)
            except Exception as exc:
                error = domain_error(exc)
                if error is None:
                    raise
                response = self.error_page(request, visit, error)
            return self.keep(visit, response)
        return endpoint

    def keep(self, visit: Visit, response: Response) -> Response:
        """Return ``response`` carrying the session's new cookie when the visit refreshed it (every answer to
        a signed-in visit must: the old refresh token is spent, and sending it again ends the session)."""
        if visit.renewed is not None:
            self.session_cookie(visit.request, response, visit.seed, visit.renewed)
        return response

    def refused(self, request: Request) -> Response:
        return self.render(request, "refused.html", 403, principal=None, csrf="")

    def error_page(self, request: Request, visit: Visit, error: DomainError) -> Response:
        response = self.page(request, visit, "error.html", error.status, error=error)
        if error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    # --- sign-in -------------------------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        visit = await self.visit(request)
        if visit is not None:
            return self.keep(visit, self.redirect("/accounts"))
        seed = request.cookies.get(SIGN_IN_COOKIE) or backend.new_seed()
        response = self.render(request, "sign_in.html", principal=None,
                               csrf=backend.csrf_token(self.core(request), seed), username="", error=None)
        self.set_cookie(request, response, SIGN_IN_COOKIE, seed, 3600)
        return response

    async def sign_in(self, request: Request) -> Response:
        core = self.core(request)
        form = await request.form()
        seed = request.cookies.get(SIGN_IN_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not seed or not hmac.compare_digest(sent.encode(), backend.csrf_token(core, seed).encode()):
            return self.refused(request)
        username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
        try:
            _, pair = await backend.sign_in(core, username, password, self.ip(request))
        except RateLimited as exc:
            response: Response = self.render(request, "sign_in.html", 429, principal=None, csrf=backend.csrf_token(core, seed),
                                   username=username, error="Too many failed sign-ins from your address: wait a "
                                                             "minute and try again.")
            response.headers["Retry-After"] = str(exc.retry_after or 60)
            return response
        except Unauthenticated:
            return self.render(request, "sign_in.html", 401, principal=None, csrf=backend.csrf_token(core, seed),
                               username=username, error="Wrong username or password.")
        response = self.redirect("/accounts")
        self.session_cookie(request, response, backend.new_seed(), pair)  # a new seed: no fixation
        response.delete_cookie(SIGN_IN_COOKIE, path=PATH)
        return response

    async def sign_out(self, visit: Visit) -> Response:
        await backend.sign_out(visit.core, visit.principal, visit.access)
        response = self.redirect("/sign-in", "signed_out")
        response.delete_cookie(SESSION_COOKIE, path=PATH)
        visit.renewed = None
        return response

    async def home(self, request: Request) -> Response:
        visit = await self.visit(request)
        return self.redirect("/sign-in") if visit is None else self.keep(visit, self.redirect("/accounts"))

    # --- exchange accounts ---------------------------------------------------------------------

    def _venue(self, core: Core, name: str | None) -> ExchangeInfo | None:
        if not name:
            return None
        try:
            return backend.exchange(core, name)
        except NotFound:
            return None

    async def accounts(self, visit: Visit, *, status: int = 200, connect_error: DomainError | None = None,
                       form: FormData | None = None) -> Response:
        request, core = visit.request, visit.core
        cursor = request.query_params.get("cursor") or None
        wanted = request.query_params.get("status") or None
        page, snapshots = await backend.list_accounts(core, visit.principal, cursor, status=wanted)
        now = backend.now(core)
        chosen = form.get("exchange") if form is not None else request.query_params.get("exchange")
        venue = self._venue(core, str(chosen or "binance"))
        rows = [{"account": a, "snapshot": snapshots.get(a.id),
                 "age": snapshots[a.id].age_seconds(now) if a.id in snapshots else None} for a in page.items]
        return self.page(request, visit, "accounts.html", status, rows=rows, next_cursor=page.next_cursor,
                         cursor=cursor, wanted=wanted, venues=backend.exchanges(core), venue=venue,
                         connect_error=connect_error, values=_safe_values(form), account_statuses=list(AccountStatus))

    async def accounts_page(self, visit: Visit) -> Response:
        return await self.accounts(visit)

    async def connect_fields(self, visit: Visit) -> Response:
        venue = self._venue(visit.core, visit.request.query_params.get("exchange"))
        return self.page(visit.request, visit, "_connect_fields.html", venue=venue, values={}, prefix="")

    async def connect(self, visit: Visit) -> Response:
        form = await visit.request.form()
        venue = self._venue(visit.core, str(form.get("exchange", "")))
        if form.get("step") == "fields" and venue is not None:
            # without JavaScript: the chosen exchange's fields (a POST: typed credentials never go into a URL)
            return await self.accounts(visit, form=form)
        if venue is None:
            return await self.accounts(visit, status=422, form=form,
                                       connect_error=ValidationFailed("Choose an exchange from the list."))
        credentials = _credentials(form, venue.allowed_credentials)
        try:
            account = await backend.connect_account(
                visit.core, visit.principal, venue.id, credentials, name=str(form.get("name", "")).strip() or None,
                account_type=str(form.get("account_type", "")) or None)
        except DomainError as exc:
            return await self.accounts(visit, status=exc.status, connect_error=exc, form=form)
        return self.redirect(f"/accounts/{account.id}", "connected")

    async def account(self, visit: Visit, *, status: int = 200, error: DomainError | None = None) -> Response:
        request, core = visit.request, visit.core
        account_id = _id(request.path_params["account_id"])
        account = await backend.get_account(core, visit.principal, account_id)
        snapshot, history = await backend.balances(core, visit.principal, account_id)
        now = backend.now(core)
        chart = line_chart([(p.at, p.usd) for p in history])
        return self.page(request, visit, "account.html", status, account=account, snapshot=snapshot,
                         age=snapshot.age_seconds(now) if snapshot else None, chart=chart,
                         venue=self._venue(core, account.exchange), error=error, values={})

    async def account_page(self, visit: Visit) -> Response:
        return await self.account(visit)

    async def account_action(self, visit: Visit) -> Response:
        request, core, principal = visit.request, visit.core, visit.principal
        account_id = _id(request.path_params["account_id"])
        action = request.path_params["action"]
        form = await request.form()
        try:
            if action == "rename":
                await backend.rename_account(core, principal, account_id, str(form.get("name", "")))
                done = "renamed"
            elif action in ("enable", "disable"):
                await backend.set_account_enabled(core, principal, account_id, action == "enable")
                done = action + "d"
            elif action == "revalidate":
                await backend.revalidate_account(core, principal, account_id)
                done = "revalidated"
            elif action == "rotate":
                account = await backend.get_account(core, principal, account_id)
                venue = backend.exchange(core, account.exchange)
                await backend.rotate_account(core, principal, account_id, _credentials(form, venue.allowed_credentials))
                done = "rotated"
            elif action == "refresh":
                await backend.refresh_balances(core, principal, account_id)
                done = "refreshed"
            elif action == "disconnect":
                await backend.disconnect_account(core, principal, account_id)
                return self.redirect("/accounts", "disconnected")
            else:
                raise NotFound("not found")
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            return await self.account(visit, status=exc.status, error=exc)
        return self.redirect(f"/accounts/{account_id}", done)

    async def confirm_disconnect(self, visit: Visit) -> Response:
        account = await backend.get_account(visit.core, visit.principal, _id(visit.request.path_params["account_id"]))
        return self.page(visit.request, visit, "confirm.html", title=f"Disconnect {account.name}?",
                         heading="Disconnect this exchange account?", subject=account.name,
                         explain="Its credentials are destroyed at once and cannot be recovered; the account is kept "
                                 "in the history as disconnected.",
                         action=f"{PATH}/accounts/{account.id}/disconnect", button="Disconnect",
                         back=f"{PATH}/accounts/{account.id}")

    async def portfolio(self, visit: Visit) -> Response:
        held, series = await backend.portfolio(visit.core, visit.principal)
        now = backend.now(visit.core)
        rows = [{"totals": a, "age": a.snapshot.age_seconds(now) if a.snapshot else None} for a in held.accounts]
        return self.page(visit.request, visit, "portfolio.html", held=held, rows=rows,
                         chart=line_chart([(p.at, p.usd) for p in series]))

    # --- API keys ------------------------------------------------------------------------------

    async def keys(self, visit: Visit, *, status: int = 200, error: DomainError | None = None,
                   created: dict[str, Any] | None = None, form: FormData | None = None) -> Response:
        request, core = visit.request, visit.core
        cursor = request.query_params.get("cursor") or None
        page = await backend.list_keys(core, visit.principal, cursor)
        accounts, _ = await backend.list_accounts(core, visit.principal, None, limit=100, balances=False)
        return self.page(request, visit, "keys.html", status, keys=page.items, next_cursor=page.next_cursor,
                         cursor=cursor, error=error, created=created, accounts=accounts.items,
                         kinds=list(KeyKind), scopes=list(scope_rules.BASE), values=_safe_values(form),
                         chosen_scopes=form.getlist("scopes") if form else list(scope_rules.DEFAULT),
                         chosen_accounts=form.getlist("account_ids") if form else [])

    async def keys_page(self, visit: Visit) -> Response:
        return await self.keys(visit)

    async def create_key(self, visit: Visit) -> Response:
        form = await visit.request.form()
        try:
            kind = str(form.get("kind", "bearer"))
            key, secret, private_key = await backend.create_key(
                visit.core, visit.principal, kind=kind, name=str(form.get("name", "")),
                scopes=[str(s) for s in form.getlist("scopes")],
                ip_allowlist=_lines(str(form.get("ip_allowlist", ""))) or None,
                expires_at=_datetime(str(form.get("expires_at", "")), "expires_at"),
                account_ids=[_id(str(a)) for a in form.getlist("account_ids")] or None)
        except DomainError as exc:
            return await self.keys(visit, status=exc.status, error=exc, form=form)
        return await self.keys(visit, status=201, created={"key": key, "secret": secret, "private_key": private_key})

    async def key(self, visit: Visit, *, status: int = 200, error: DomainError | None = None,
                  rolled: str | None = None) -> Response:
        request, core = visit.request, visit.core
        key_id = request.path_params["key_id"]
        key = await backend.get_key(core, visit.principal, key_id)
        since = datetime.now(UTC) - timedelta(days=7)
        usage = await backend.key_usage(core, visit.principal, key_id, since)
        return self.page(request, visit, "key.html", status, key=key, chart=bar_chart(usage, OUTCOMES), error=error,
                         rolled=rolled)

    async def key_page(self, visit: Visit) -> Response:
        return await self.key(visit)

    async def key_action(self, visit: Visit) -> Response:
        request, core, principal = visit.request, visit.core, visit.principal
        key_id = request.path_params["key_id"]
        action = request.path_params["action"]
        form = await request.form()
        try:
            if action == "roll":
                grace = str(form.get("grace_seconds", "0")).strip() or "0"
                if not grace.isdigit() or len(grace) > 9:
                    raise ValidationFailed("the grace period is a number of seconds",
                                           fields={"grace_seconds": "a whole number of seconds"})
                _, secret = await backend.roll_key(core, principal, key_id, int(grace))
                return await self.key(visit, rolled=secret)
            if action in ("enable", "disable"):
                await backend.set_key_enabled(core, principal, key_id, action == "enable")
                return self.redirect(f"/keys/{key_id}", f"key_{action}d")
            if action == "revoke":
                await backend.revoke_key(core, principal, key_id)
                return self.redirect("/keys", "revoked")
            raise NotFound("not found")
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            return await self.key(visit, status=exc.status, error=exc)

    async def confirm_revoke(self, visit: Visit) -> Response:
        key = await backend.get_key(visit.core, visit.principal, visit.request.path_params["key_id"])
        return self.page(visit.request, visit, "confirm.html", title=f"Revoke {key.name}?",
                         heading="Revoke this API key?", subject=key.name,
                         explain="Every request made with it is refused at once, by every Strongroom process. "
                                 "This cannot be undone.",
                         action=f"{PATH}/keys/{key.key_id}/revoke", button="Revoke", back=f"{PATH}/keys/{key.key_id}")

    # --- audit ---------------------------------------------------------------------------------

    def _audit_filters(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        return {"action": (q.get("action") or "").strip()[:64] or None,
                "outcome": (q.get("outcome") or "").strip()[:32] or None,
                "username": (q.get("user") or "").strip()[:64] or None,
                "since": _datetime(q.get("from") or "", "from"), "until": _datetime(q.get("to") or "", "to")}

    async def audit(self, visit: Visit) -> Response:
        request = visit.request
        filters = self._audit_filters(request)
        cursor = request.query_params.get("cursor") or None
        page = await backend.audit_page(visit.core, visit.principal, cursor, **filters)
        names = await backend.usernames(visit.core, visit.principal,
                                        {e.actor_user_id for e in page.items if e.actor_user_id})
        query = {k: request.query_params.get(k, "") for k in ("action", "outcome", "user", "from", "to")}
        return self.page(request, visit, "audit.html", events=page.items, next_cursor=page.next_cursor, cursor=cursor,
                         names=names, query=query, export=_query_string(query))

    async def audit_csv(self, visit: Visit) -> Response:
        filters = self._audit_filters(visit.request)
        first = await backend.audit_page(visit.core, visit.principal, None, limit=200, **filters)

        async def rows() -> AsyncIterator[str]:
            buffer = io.StringIO()
            out = csv.writer(buffer)
            out.writerow(["id", "at", "actor_user_id", "actor_key_id", "action", "target", "client_ip", "outcome",
                          "details"])
            page, written = first, 0
            while True:
                for e in page.items:
                    out.writerow([e.id, e.at.astimezone(UTC).isoformat(), e.actor_user_id or "", e.actor_key_id or "",
                                  *map(_cell, (e.action, e.target or "", e.client_ip or "", e.outcome,
                                               _details(e.details)))])
                    written += 1
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if not page.next_cursor or written >= CSV_LIMIT:
                    return
                page = await backend.audit_page(visit.core, visit.principal, page.next_cursor, limit=200, **filters)

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'})

    # --- admin ---------------------------------------------------------------------------------

    async def admin(self, visit: Visit, *, status: int = 200, error: DomainError | None = None,
                    form: FormData | None = None) -> Response:
        request = visit.request
        cursor = request.query_params.get("cursor") or None
        page = await backend.list_users(visit.core, visit.principal, cursor)
        master = await backend.master_key_status(visit.core, visit.principal)
        jobs = await backend.jobs(visit.core, visit.principal)
        return self.page(request, visit, "admin.html", status, users=page.items, next_cursor=page.next_cursor,
                         cursor=cursor, master=master, jobs=jobs, error=error, values=_safe_values(form),
                         levels=list(UsageLevel))

    async def admin_page(self, visit: Visit) -> Response:
        return await self.admin(visit)

    async def create_user(self, visit: Visit) -> Response:
        form = await visit.request.form()
        try:
            await backend.create_user(visit.core, visit.principal, username=str(form.get("username", "")).strip(),
                                      password=str(form.get("password", "")),
                                      email=str(form.get("email", "")).strip() or None,
                                      is_admin=form.get("is_admin") == "on",
                                      usage_level=str(form.get("usage_level", "basic")))
        except DomainError as exc:
            return await self.admin(visit, status=exc.status, error=exc, form=form)
        return self.redirect("/admin", "user_created")

    async def user(self, visit: Visit, *, status: int = 200, error: DomainError | None = None) -> Response:
        user = await backend.get_user(visit.core, visit.principal, _id(visit.request.path_params["user_id"]))
        return self.page(visit.request, visit, "user.html", status, user=user, error=error, levels=list(UsageLevel))

    async def user_page(self, visit: Visit) -> Response:
        return await self.user(visit)

    async def user_action(self, visit: Visit) -> Response:
        request, core, principal = visit.request, visit.core, visit.principal
        user_id = _id(request.path_params["user_id"])
        action = request.path_params["action"]
        form = await request.form()
        try:
            if action == "password":
                await backend.set_password(core, principal, user_id, str(form.get("password", "")))
                return self.redirect(f"/admin/users/{user_id}", "password_set")
            if action == "level":
                await backend.set_usage_level(core, principal, user_id, str(form.get("usage_level", "")))
                return self.redirect(f"/admin/users/{user_id}", "level_set")
            if action == "delete":
                await backend.delete_user(core, principal, user_id)
                return self.redirect("/admin", "user_deleted")
            raise NotFound("not found")
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            return await self.user(visit, status=exc.status, error=exc)

    async def confirm_delete_user(self, visit: Visit) -> Response:
        user = await backend.get_user(visit.core, visit.principal, _id(visit.request.path_params["user_id"]))
        return self.page(visit.request, visit, "confirm.html", title=f"Delete {user.username}?",
                         heading="Delete this user?", subject=user.username,
                         explain="Their sessions, API keys and exchange accounts are deleted with them. This cannot "
                                 "be undone.", action=f"{PATH}/admin/users/{user.id}/delete", button="Delete user",
                         back=f"{PATH}/admin/users/{user.id}")

    async def jobs(self, visit: Visit, *, status: int = 200, error: DomainError | None = None) -> Response:
        request = visit.request
        cursor = request.query_params.get("cursor") or None
        wanted = request.query_params.get("status") or ""
        if wanted and wanted not in JOB_STATUSES:
            raise ValidationFailed("Choose a status from the list.", fields={"status": ", ".join(JOB_STATUSES)})
        kind = (request.query_params.get("kind") or "").strip()[:100]
        page, stats = await backend.job_page(visit.core, visit.principal, cursor, status=wanted or None,
                                             kind=kind or None)
        rows = [{"job": j, "run_at": datetime.fromtimestamp(j.run_at, UTC)} for j in page.items]
        query = {"status": wanted, "kind": kind}
        return self.page(request, visit, "jobs.html", status, rows=rows, next_cursor=page.next_cursor, cursor=cursor,
                         stats=stats, query=query, filters=_query_string(query), statuses_of_jobs=JOB_STATUSES,
                         error=error)

    async def jobs_page(self, visit: Visit) -> Response:
        return await self.jobs(visit)

    async def job_action(self, visit: Visit) -> Response:
        request, core, principal = visit.request, visit.core, visit.principal
        job_id = _id(request.path_params["job_id"])
        action = request.path_params["action"]
        try:
            if action == "retry":
                await backend.retry_job(core, principal, job_id)
            elif action == "cancel":
                await backend.cancel_job(core, principal, job_id)
            else:
                raise NotFound("not found")
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            return await self.jobs(visit, status=exc.status, error=exc)
        return self.redirect("/admin/jobs", f"job_{action}")

    async def not_found(self, request: Request) -> Response:
        visit = await self.visit(request)
        if visit is None:
            return self.to_sign_in(request)
        return self.keep(visit, self.error_page(request, visit, NotFound("There is no such page.")))


# --------------------------------------------------------------------------- form helpers


def _id(value: str) -> int:
    """A row id from a path or form (NotFound for anything else)."""
    number = int(value) if value.isdigit() and len(value) <= 10 else 0
    if not valid_id(number):
        raise NotFound("not found")
    return number


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _datetime(text: str, field: str) -> datetime | None:
    """A ``datetime-local`` (or ISO 8601) value, read as UTC when it names no zone."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{field}: not a date and time", fields={field: "YYYY-MM-DDTHH:MM"}) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _credentials(form: FormData, names: Iterable[str]) -> dict[str, str]:
    return {name: str(form.get(f"cred_{name}", "")).strip() for name in names
            if str(form.get(f"cred_{name}", "")).strip()}


def _safe_values(form: FormData | None) -> dict[str, str]:
    """A form's values to show again after an error, never a secret (credentials, passwords)."""
    if form is None:
        return {}
    return {k: str(v) for k, v in form.items() if isinstance(v, str) and not k.startswith("cred_")
            and k not in ("password", "csrf")}


def _query_string(query: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in query.items() if v})


def _details(details: dict[str, Any]) -> str:
    import json

    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP: a leading quote before = + - @ tab CR)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- the app


class Headers:
    """Every console answer: the Content-Security-Policy, no framing, no referrer beyond the site
    (``Cache-Control: no-store`` is the edge guard's, on every answer of the application)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", CSP.encode()),
                                      (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build(settings: Settings) -> ASGIApp:
    pages = Pages(settings)
    s = pages.signed_in
    routes = [
        Route("/", pages.home),
        Route("/sign-in", pages.sign_in_page, methods=["GET"]),
        Route("/sign-in", pages.sign_in, methods=["POST"]),
        Route("/sign-out", s(pages.sign_out), methods=["POST"]),
        Route("/accounts", s(pages.accounts_page), methods=["GET"]),
        Route("/accounts", s(pages.connect), methods=["POST"]),
        Route("/accounts/fields", s(pages.connect_fields), methods=["GET"]),
        Route("/accounts/{account_id}", s(pages.account_page), methods=["GET"]),
        Route("/accounts/{account_id}/disconnect", s(pages.confirm_disconnect), methods=["GET"]),
        Route("/accounts/{account_id}/{action}", s(pages.account_action), methods=["POST"]),
        Route("/portfolio", s(pages.portfolio), methods=["GET"]),
        Route("/keys", s(pages.keys_page), methods=["GET"]),
        Route("/keys", s(pages.create_key), methods=["POST"]),
        Route("/keys/{key_id}", s(pages.key_page), methods=["GET"]),
        Route("/keys/{key_id}/revoke", s(pages.confirm_revoke), methods=["GET"]),
        Route("/keys/{key_id}/{action}", s(pages.key_action), methods=["POST"]),
        Route("/audit", s(pages.audit), methods=["GET"]),
        Route("/audit.csv", s(pages.audit_csv), methods=["GET"]),
        Route("/admin", s(pages.admin_page, admin=True), methods=["GET"]),
        Route("/admin/jobs", s(pages.jobs_page, admin=True), methods=["GET"]),
        Route("/admin/jobs/{job_id}/{action}", s(pages.job_action, admin=True), methods=["POST"]),
        Route("/admin/users", s(pages.create_user, admin=True), methods=["POST"]),
        Route("/admin/users/{user_id}", s(pages.user_page, admin=True), methods=["GET"]),
        Route("/admin/users/{user_id}/delete", s(pages.confirm_delete_user, admin=True), methods=["GET"]),
        Route("/admin/users/{user_id}/{action}", s(pages.user_action, admin=True), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)

    async def missing(request: Request, exc: Exception) -> Response:
        return await pages.not_found(request)

    app.add_exception_handler(404, missing)
    return Headers(app)
