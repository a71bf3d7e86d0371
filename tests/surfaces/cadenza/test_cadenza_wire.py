"""Issue 11 (b): the wire contract of Cadenza's generated client (``cadenza_client`` 3.5.4), as
``shared/reference/cadenza_sdk.md`` describes it, on each backend: every operation called the way the
client calls it (headers, bodies with None left out, logout without a body, repeated query keys),
every 200 body read by models as strict as the client's, every error status raising with the envelope.

Where ``CADENZA_CLIENT_SRC`` points at a checkout of ``cyberapper/cadenza-client-python`` (it is not
on PyPI), ``test_cadenza_client`` also installs that client (into a temporary directory, never into
the project's environment) and runs the whole flow with it; otherwise it is skipped, loudly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from cadenza_helpers import install_cadenza_client, mock_key, mock_mode
from cadenza_wire import (
    ApiException,
    AuthSessionResponse,
    BaseResponse,
    Caller,
    TradingAccountListResponse,
)


@pytest.fixture
def caller(cadenza_server):
    c = Caller(cadenza_server.url)
    yield c
    c.close()


def signed_in(caller: Caller, user) -> AuthSessionResponse:
    session = caller.call("auth_login", {"email": user.username, "password": user.password})
    assert isinstance(session, AuthSessionResponse) and session.errno == 0 and session.success is True
    caller.access_token = session.data.accessToken
    return session


def raises(caller: Caller, name: str, body: Any = None, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        caller.call(name, body, **kwargs)
    return caught.value


def test_the_whole_flow_as_the_client_sees_it(caller, cadenza_users, mock_exchange) -> None:
    user = cadenza_users.create(sign_in=False)
    session = signed_in(caller, user)
    assert caller.sent[-1].headers.get("authorization") is None  # login declares no security
    me = caller.call("auth_get_user").data
    assert me.id == session.data.user.id and me.email == user.username
    assert caller.sent[-1].headers["authorization"] == f"Bearer {session.data.accessToken}"
    assert "content-type" not in caller.sent[-1].headers  # a GET carries no body

    key = mock_key(mock_exchange)
    # the client sends credentialType even when None (required but nullable): as null
    created = caller.call("create_trading_account_credential", {
        "venue": "BINANCE", "credentialType": None, "apiKey": key["apiKey"], "apiSecret": key["apiSecret"]}).data
    assert created.status == "ACTIVE" and created.credentialType is None and created.venue == "BINANCE"
    created = caller.call("create_trading_account_credential", {
        "venue": "BINANCE", "credentialType": "API_KEY", "nickname": "main", **mock_key(mock_exchange)}).data
    (new,) = caller.call("verify_trading_account_credential", {"credentialIds": [str(created.credentialId)]}).data
    assert new.status == "NEW" and new.credentials[0].credentialId == created.credentialId
    account = caller.call("connect_trading_account", {
        "venue": "BINANCE", "credentialIds": [str(created.credentialId)],
        "externalTradingAccountId": new.externalTradingAccountId, "nickname": "desk"}).data
    assert account.status == "ACTIVE" and account.nickname == "desk" and account.accountType == "SPOT"
    # the seed page's body works through the same operation
    inline = caller.call("connect_trading_account", {"venue": "OKX", **mock_key(mock_exchange, "okx")}).data
    assert inline.venue == "OKX" and len(inline.credentials) == 1

    query = [("tradingAccountId", account.tradingAccountId), ("venue", "BINANCE"), ("accountStatus", "ACTIVE"),
             ("userId", None), ("tenantId", None), ("limit", 10), ("offset", 0)]
    listed = caller.call("list_trading_accounts", query=query)
    assert caller.sent[-1].url.query.decode() == (
        f"tradingAccountId={account.tradingAccountId}&venue=BINANCE&accountStatus=ACTIVE&limit=10&offset=0")
    assert [a.tradingAccountId for a in listed.data] == [account.tradingAccountId]
    assert listed.pagination.total == 1 and listed.pagination.hasNext is False
    everything = caller.call("list_trading_accounts")
    assert isinstance(everything, TradingAccountListResponse) and len(everything.data) == 2

    target = {"tradingAccountId": str(account.tradingAccountId)}
    assert caller.call("update_trading_account", {**target, "nickname": "renamed"}).data.nickname == "renamed"
    assert caller.call("disable_trading_account", target).data.status == "INACTIVE"
    assert caller.call("enable_trading_account", target).data.status == "ACTIVE"

    credentials = caller.call("list_trading_account_credentials",
                              query=[("credentialType", "API_KEY"), ("credentialStatus", "ACTIVE"),
                                     ("credentialIds", [str(created.credentialId), str(uuid.uuid4())])])
    assert caller.sent[-1].url.query.decode().count("credentialIds=") == 2
    assert [c.credentialId for c in credentials.data] == [created.credentialId]
    rotated = caller.call("rotate_trading_account_credential",
                          {"credentialId": str(created.credentialId), **mock_key(mock_exchange)}).data
    assert rotated.credentialId == created.credentialId and rotated.status == "ACTIVE"

    gone = caller.call("disconnect_trading_account", target).data
    assert gone.status == "DISCONNECTED"
    revoked = caller.call("revoke_trading_account_credential", {"credentialId": str(created.credentialId)}).data
    assert revoked.status == "REVOKED" and isinstance(revoked.revokedAt, int)

    refreshed = caller.call("auth_refresh_token", {"refreshToken": session.data.refreshToken})
    assert caller.sent[-1].headers.get("authorization") is None
    caller.access_token = refreshed.data.accessToken
    out = caller.call("auth_logout")
    assert out.data is None and "content-type" not in caller.sent[-1].headers and caller.sent[-1].content == b""
    assert raises(caller, "auth_get_user").status == 401


def test_every_error_is_the_envelope_the_client_parses(caller, cadenza_users, mock_exchange) -> None:
    stranger = cadenza_users.create(sign_in=False)
    signed_in(caller, stranger)
    theirs = caller.call("connect_trading_account", {"venue": "BINANCE", **mock_key(mock_exchange)}).data
    signed_in(caller, cadenza_users.create(sign_in=False))

    def envelope(error: ApiException, status: int, errno: int) -> None:
        assert error.status == status, error.body
        parsed = BaseResponse.model_validate_json(error.body)  # every error body is the envelope
        assert parsed.errno == errno and parsed.success is False and json.loads(error.body)["data"] is None
        if status in OPERATION_MAPS[error_op[0]]:
            assert error.data is not None and error.data.errno == errno  # what the client puts in e.data

    OPERATION_MAPS = {"connect_trading_account": (400, 401, 403, 404, 409, 500),
                      "enable_trading_account": (400, 401, 403, 404, 500),
                      "list_trading_accounts": (400, 401, 403, 404, 500),
                      "auth_login": (400, 401, 429, 500)}
    error_op = ["connect_trading_account"]
    # the client called without its request object: a POST with Content-Type and an empty body
    envelope(raises(caller, "connect_trading_account", None, send_body=True), 400, -19004)
    envelope(raises(caller, "connect_trading_account", {}), 400, -19004)
    key = mock_key(mock_exchange)
    envelope(raises(caller, "connect_trading_account", {"venue": "BINANCE", **key, "apiSecret": "no"}), 400, -120001)
    unknown = {"venue": "BINANCE", "apiKey": f"unknown-{uuid.uuid4().hex}", "apiSecret": "x"}
    envelope(raises(caller, "connect_trading_account", unknown), 400, -120001)
    with mock_mode(mock_exchange, "down"):
        unreachable = raises(caller, "connect_trading_account", {"venue": "BINANCE", **key})
    assert unreachable.status == 503 and unreachable.data is None and int(unreachable.headers["retry-after"]) > 0
    assert BaseResponse.model_validate_json(unreachable.body).errno == -18012
    caller.call("connect_trading_account", {"venue": "BINANCE", **key})
    envelope(raises(caller, "connect_trading_account", {"venue": "BINANCE", **key}), 409, -22017)

    error_op[0] = "enable_trading_account"
    envelope(raises(caller, "enable_trading_account", {"tradingAccountId": str(theirs.tradingAccountId)}), 404,
             -22016)
    envelope(raises(caller, "enable_trading_account", {"tradingAccountId": "5"}), 400, -19004)
    error_op[0] = "list_trading_accounts"
    envelope(raises(caller, "list_trading_accounts", query=[("limit", 0)]), 400, -19004)
    token, caller.access_token = caller.access_token, None
    envelope(raises(caller, "list_trading_accounts"), 401, -19002)
    caller.access_token = token
    error_op[0] = "auth_login"
    envelope(raises(caller, "auth_login", {"email": stranger.username, "password": "wrong-password"}), 401, -100001)
    envelope(raises(caller, "auth_login", {}), 400, -19004)


CLIENT_FLOW = textwrap.dedent('''
    import json, sys, uuid
    import cadenza_client as c

    base, username, password, key, secret = sys.argv[1:6]
    out = {"version": getattr(c, "__version__", "?")}
    cfg = c.Configuration(host=base)
    api = c.ApiClient(cfg)
    auth = c.AuthenticationApi(api)
    session = auth.auth_login(auth_login_request=c.AuthLoginRequest(email=username, password=password))
    cfg.access_token = session.data.access_token
    out["user_id"] = str(session.data.user.id)
    out["me"] = auth.auth_get_user().data.email
    creds = c.TradingAccountCredentialApi(api)
    credential = creds.create_trading_account_credential(
        create_trading_account_credential_request=c.CreateTradingAccountCredentialRequest(
            venue=c.Venue.BINANCE, credential_type=c.CredentialType.API_KEY, api_key=key, api_secret=secret)).data
    reach = creds.verify_trading_account_credential(
        verify_trading_account_credential_request=c.VerifyTradingAccountCredentialRequest(
            credential_ids=[credential.credential_id])).data
    out["verify"] = [r.status.value for r in reach]
    accounts = c.TradingAccountApi(api)
    account = accounts.connect_trading_account(connect_trading_account_request=c.ConnectTradingAccountRequest(
        venue=c.Venue.BINANCE, credential_ids=[credential.credential_id],
        external_trading_account_id=reach[0].external_trading_account_id, nickname="client")).data
    out["connected"] = [account.status.value, account.nickname, account.account_type.value]
    listed = accounts.list_trading_accounts(trading_account_id=account.trading_account_id, venue=c.Venue.BINANCE,
                                            account_status=c.TradingAccountStatus.ACTIVE, limit=10, offset=0)
    out["listed"] = [str(a.trading_account_id) for a in listed.data] == [str(account.trading_account_id)]
    target = {"trading_account_id": account.trading_account_id}
    out["disabled"] = accounts.disable_trading_account(
        disable_trading_account_request=c.DisableTradingAccountRequest(**target)).data.status.value
    out["enabled"] = accounts.enable_trading_account(
        enable_trading_account_request=c.EnableTradingAccountRequest(**target)).data.status.value
    out["updated"] = accounts.update_trading_account(update_trading_account_request=c.UpdateTradingAccountRequest(
        nickname="renamed", **target)).data.nickname
    # str(): older generations type credential_ids as List[StrictStr]; 3.5.4's UUID list takes the string too
    out["credentials"] = len(creds.list_trading_account_credentials(credential_ids=[str(credential.credential_id)]).data)
    try:
        accounts.connect_trading_account(connect_trading_account_request=c.ConnectTradingAccountRequest(
            venue=c.Venue.BINANCE, credential_ids=[credential.credential_id],
            external_trading_account_id=reach[0].external_trading_account_id))
        out["conflict"] = None
    except c.ApiException as exc:
        out["conflict"] = [exc.status, exc.data.errno if exc.data is not None else None]
    try:
        accounts.connect_trading_account()
        out["empty"] = None
    except c.ApiException as exc:
        out["empty"] = [exc.status, exc.data.errno if exc.data is not None else None]
    out["rotated"] = creds.rotate_trading_account_credential(
        rotate_trading_account_credential_request=c.RotateTradingAccountCredentialRequest(
            credential_id=credential.credential_id, api_key=key, api_secret=secret)).data.status.value
    out["disconnected"] = accounts.disconnect_trading_account(
        disconnect_trading_account_request=c.DisconnectTradingAccountRequest(**target)).data.status.value
    out["revoked"] = creds.revoke_trading_account_credential(
        revoke_trading_account_credential_request=c.RevokeTradingAccountCredentialRequest(
            credential_id=credential.credential_id)).data.status.value
    refreshed = auth.auth_refresh_token(
        auth_refresh_token_request=c.AuthRefreshTokenRequest(refresh_token=session.data.refresh_token))
    out["refreshed"] = refreshed.data.access_token != session.data.access_token
    cfg.access_token = refreshed.data.access_token
    auth.auth_logout()
    try:
        auth.auth_get_user()
        out["after_logout"] = None
    except c.ApiException as exc:
        out["after_logout"] = exc.status
    print(json.dumps(out))
''')


def test_cadenza_client(cadenza_server, cadenza_users, mock_exchange, tmp_path: Path) -> None:
    """Cadenza's own generated client, installed from CADENZA_CLIENT_SRC, through the whole flow."""
    target = install_cadenza_client(
        tmp_path / "site", "Only its wire contract was checked (test_the_whole_flow_as_the_client_sees_it).")
    user = cadenza_users.create(sign_in=False)
    key = mock_key(mock_exchange)
    script = tmp_path / "flow.py"
    script.write_text(CLIENT_FLOW, encoding="utf-8")
    run = subprocess.run([sys.executable, str(script), cadenza_server.url, user.username, user.password,
                          key["apiKey"], key["apiSecret"]], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(target)}, check=False)
    assert run.returncode == 0, f"the client failed:\n{run.stdout}\n{run.stderr}"
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["me"] == user.username and uuid.UUID(out["user_id"])
    assert out["verify"] == ["NEW"] and out["connected"] == ["ACTIVE", "client", "SPOT"] and out["listed"] is True
    assert (out["disabled"], out["enabled"], out["updated"]) == ("INACTIVE", "ACTIVE", "renamed")
    assert out["credentials"] == 1
    assert out["conflict"] == [409, -22017] and out["empty"] == [400, -19004]
    assert out["rotated"] == "ACTIVE" and out["refreshed"] is True
    assert (out["disconnected"], out["revoked"], out["after_logout"]) == ("DISCONNECTED", "REVOKED", 401)
