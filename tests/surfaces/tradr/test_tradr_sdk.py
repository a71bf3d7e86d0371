"""Issue 12: seed 003's TypeScript samples, verbatim, on Strongroom's client against a live server.

Each sample of seed 003 (copied below character for character; ``test_samples_are_the_seeds``
checks them against the seed file) is compiled by tsc (strict, type errors fail) with
``@tradrapi/trading-sdk`` mapped to clients/typescript in tests/surfaces/tradr/ts/package.json, and
run by node against a live server on SQLite and on PostgreSQL. The samples' ids are made real:
the user's exchange accounts are 1234567890 and 101000123, its keys 32452 and 23122. The only
change is the documented placeholder 'YOUR_ACCOUNT_API_KEY', replaced by a real account key (and
run once unreplaced: 401). ``tradrApi``, which the "Using an Account API Key" sample exports, is made
global by the runner (run_samples.mjs), which records what each call returned.

A second program (ts/client_flow.ts) drives every method of the client: user keys, access tokens,
every-page listing, typed errors. Both are skipped LOUDLY where node or the npm packages are missing
(``make ts-deps`` installs and builds them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from support import ROOT, SEEDS, Server, Users, drop_pg_schema, new_pg_schema, start_server

SEED_FILE = SEEDS / "003_dcb1c0a9a816ab2e.txt"
TS_DIR = ROOT / "tests" / "surfaces" / "tradr" / "ts"
CLIENT_DIR = ROOT / "clients" / "typescript"

# --- seed 003's samples, verbatim ---------------------------------------------------------------------

SAMPLE_CREATE = """import { AccountApiKey } from '@tradrapi/trading-sdk';
const key: AccountApiKey = await tradrApi.accounts.createApiKey({
accountId: 1234567890,
friendlyName: 'Reporting Key',
roles: ['read'],
ips: [],
});"""

SAMPLE_MODEL = """export enum UserRole {
Read = 'read',
Write = 'write',
Delete = 'delete',
}
interface AccountApiKey {
/** The TradrAPI ID of the entity */
id: number;
/**
* The date the entity was created
* @format date-time
*/
createdAt: string;
/**
* The date the entity was last updated
* @format date-time
*/
updatedAt: string;
/** The roles assigned to the key. Roles determine what actions the key can perform */
roles: UserRole[];
/** The id of the account the API key belongs to */
accountId: number;
/** A friendly name for the API key */
friendlyName?: string;
/** The API key (hashed) */
apiKey: string;
/** The IPs the API key can be used from. Empty array means any IP is allowed */
ips?: string[];
/**
* The last time the key was used
* @format date-time
*/
lastUsedAt?: string;
}"""

SAMPLE_MAKE = """import { Tradr } from '@tradrapi/trading-sdk';
export const tradrApi = Tradr.make({
// Bootstrap the SDK with your Account API key
auth: { apiKey: 'YOUR_ACCOUNT_API_KEY' }
});"""

SAMPLE_GET = """import { AccountApiKey } from '@tradrapi/trading-sdk';
const key: AccountApiKey = await tradrApi.accounts.getApiKey(32452);"""

SAMPLE_LIST = """import { AccountApiKey } from '@tradrapi/trading-sdk';
const keys: AccountApiKey[] = await tradrApi.accounts.listApiKeys(101000123);"""

SAMPLE_UPDATE = """const result: boolean = await tradrApi.accounts.updateApiKey({
accountApiKeyId: 23122,
friendlyName: 'My renamed key',
});"""

SAMPLE_DELETE = """const result: boolean = await tradrApi.accounts.deleteApiKey(23122);"""

SAMPLES = (SAMPLE_CREATE, SAMPLE_MODEL, SAMPLE_MAKE, SAMPLE_GET, SAMPLE_LIST, SAMPLE_UPDATE, SAMPLE_DELETE)
PLACEHOLDER = "'YOUR_ACCOUNT_API_KEY'"
# the ids the samples use
CREATE_ACCOUNT, LIST_ACCOUNT, GET_KEY, RENAMED_KEY = 1234567890, 101000123, 32452, 23122


def interface_fields(sample: str) -> dict[str, bool]:
    """The fields of the sample's interface: name -> required."""
    body = sample[sample.index("interface"):]
    return {m.group(1): not m.group(2) for m in re.finditer(r"^(\w+)(\?)?: ", body, re.MULTILINE)}


def enum_values(sample: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) = '(\w+)',$", sample, re.MULTILINE))


def test_samples_are_the_seeds():
    """The samples above are the seed's text, character for character (and all of its code)."""
    if not SEED_FILE.exists():
        warnings.warn(f"SEED 003 NOT FOUND at {SEED_FILE}: samples not re-checked against it", UserWarning,
                      stacklevel=1)
        pytest.skip(f"seed file not present at {SEED_FILE}")
    seed = SEED_FILE.read_text()
    for sample in SAMPLES:
        assert sample in seed, sample
    # every line of the seed that is code is in one of the samples
    code = [line for line in seed.splitlines() if line.startswith(("import ", "const ", "export "))]
    assert code and all(any(line in sample for sample in SAMPLES) for line in code), code


# --- running TypeScript ---------------------------------------------------------------------------------

def skip_loudly(reason: str) -> None:
    """Skip, and also warn, so the reason shows in the warnings summary of a run without -rs."""
    message = f"TRADR TYPESCRIPT TEST NOT RUN: {reason}"
    warnings.warn(message, UserWarning, stacklevel=2)
    pytest.skip(message)


def toolchain() -> str:
    """Return node's path; skip loudly without node or the installed packages; fail on a stale build."""
    node = shutil.which("node")
    if node is None:
        skip_loudly("`node` is not on PATH (install Node.js >= 18 and npm, then `make ts-deps`)")
    dist = CLIENT_DIR / "dist" / "index.js"
    linked = TS_DIR / "node_modules" / "@tradrapi" / "trading-sdk" / "package.json"
    if not (dist.is_file() and linked.is_file() and (TS_DIR / "node_modules" / "typescript").is_dir()):
        skip_loudly("the client is not built or tests/surfaces/tradr/ts/node_modules is missing (run `make ts-deps`)")
    newest = max(p.stat().st_mtime for p in (CLIENT_DIR / "src").glob("*.ts"))
    assert dist.stat().st_mtime >= newest, "clients/typescript/dist is older than its sources: run `make ts-deps`"
    return node


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory under ts/ (where node_modules maps @tradrapi/trading-sdk) for one run; removed after."""
    path = TS_DIR / "runs" / uuid.uuid4().hex
    path.mkdir(parents=True)
    (path / "tsconfig.json").write_text(json.dumps({"extends": "../../tsconfig.base.json",
                                                    "include": ["**/*.ts", "../../globals.d.ts"]}))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def compile_ts(node: str, directory: Path) -> None:
    done = subprocess.run([node, str(TS_DIR / "node_modules" / "typescript" / "bin" / "tsc"), "-p",
                           str(directory / "tsconfig.json")], capture_output=True, text=True, timeout=240,
                          check=False, cwd=TS_DIR)
    assert done.returncode == 0, f"tsc failed:\n{done.stdout}\n{done.stderr}"


def run_node(node: str, args: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run([node, *args], capture_output=True, text=True, timeout=240, check=False, cwd=TS_DIR,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- a server of its own -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seed_server(backend, mock_exchange, tmp_path_factory) -> Iterator[Server]:
    """A live server on a fresh database of ``backend``'s kind: the samples' fixed ids are renumbered
    rows, kept out of the database the other tests share."""
    from strongroom.migrations import upgrade

    schema = None
    if backend.name == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('tradr-sqlite') / 'strongroom.db'}"
    else:
        schema, url = new_pg_schema()
    try:
        upgrade(url)
        srv = start_server(data_dir=tmp_path_factory.mktemp(f"tradr-data-{backend.name}"), database_url=url,
                           exchange_base_urls={"binance": mock_exchange.url, "okx": mock_exchange.url})
        yield srv
        srv.stop()
    finally:
        if schema:
            drop_pg_schema(schema)


def renumber(server: Server, table: str, old: int, new: int) -> None:
    """Give a row the id a sample uses (test set-up: ids are otherwise the database's to choose)."""
    assert table in ("exchange_accounts", "api_keys")
    with server.core.db.engine.begin() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE id = :new"), {"new": new}).scalar() == 0
        assert conn.execute(text(f"UPDATE {table} SET id = :new WHERE id = :old"), {"new": new, "old": old}).rowcount == 1


def connect_account(client, user, number: int, server: Server) -> int:
    creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    response = client.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds},
                           headers=user.headers)
    assert response.status_code == 201, response.text
    renumber(server, "exchange_accounts", response.json()["id"], number)
    return number


def account_key(client, server: Server, user, account: int, roles: list[str], name: str,
                number: int | None = None) -> dict:
    response = client.post("/tradr/accounts/api-keys", headers=user.headers,
                           json={"accountId": account, "roles": roles, "friendlyName": name})
    assert response.status_code == 201, response.text
    key = response.json()
    if number is not None:
        renumber(server, "api_keys", key["id"], number)
        key["id"] = number
    return key


def only_call(record: dict, method: str) -> dict:
    assert record["error"] is None, record
    assert [c["method"] for c in record["calls"]] == [method], record
    return record["calls"][0]


def test_seed_samples_run_verbatim(seed_server, run_dir):
    node = toolchain()
    server = seed_server
    user = Users(server).create()
    with server.client() as client:
        connect_account(client, user, CREATE_ACCOUNT, server)
        connect_account(client, user, LIST_ACCOUNT, server)
        # the samples' keys, made real; and an account key of each account to run the samples with
        k1 = account_key(client, server, user, CREATE_ACCOUNT, ["read", "write"], "bootstrap 1")
        fetched = account_key(client, server, user, CREATE_ACCOUNT, ["read", "write"], "Key 32452", GET_KEY)
        k2 = account_key(client, server, user, LIST_ACCOUNT, ["read", "write", "delete"], "bootstrap 2")
        renamed = account_key(client, server, user, LIST_ACCOUNT, ["read"], "Key 23122", RENAMED_KEY)
        other = account_key(client, server, user, LIST_ACCOUNT, ["read"], "another key of 101000123")

        steps = []

        def step(name: str, sample: str, key: str | None = None, *, make: bool = True) -> None:
            directory = run_dir / name
            directory.mkdir()
            (directory / "sample.ts").write_text(sample + "\n")
            if make:
                source = SAMPLE_MAKE if key is None else SAMPLE_MAKE.replace(PLACEHOLDER, f"'{key}'")
                assert key is None or (source != SAMPLE_MAKE and re.fullmatch(r"sr_\w+", key))
                (directory / "tradr.ts").write_text(source + "\n")
            steps.append({"name": name, "dir": name, "make": make})

        step("model", SAMPLE_MODEL, make=False)
        step("create", SAMPLE_CREATE, k1["apiKey"])
        step("get", SAMPLE_GET, k1["apiKey"])
        step("list", SAMPLE_LIST, k2["apiKey"])
        step("update", SAMPLE_UPDATE, k2["apiKey"])
        step("delete", SAMPLE_DELETE, k2["apiKey"])
        step("placeholder", SAMPLE_GET)  # the make sample exactly as the seed has it
        step("other_account", SAMPLE_LIST, k1["apiKey"])  # k1 is bound to 1234567890 only
        (run_dir / "steps.json").write_text(json.dumps(steps))
        compile_ts(node, run_dir)
        out = run_node(node, ["run_samples.mjs", str(run_dir)], {"TRADR_API_URL": server.url})
        runs = out["steps"]

        # the model: its enum is the client's; the keys below have exactly its fields
        fields = interface_fields(SAMPLE_MODEL)
        assert runs["model"]["error"] is None and runs["model"]["UserRole"] == enum_values(SAMPLE_MODEL)
        assert out["UserRole"] == enum_values(SAMPLE_MODEL)

        def model_shaped(key: dict) -> None:
            assert {f for f, required in fields.items() if required} <= set(key) <= set(fields), key

        # create: the plaintext key, once; later reads show its hash
        call = only_call(runs["create"], "accounts.createApiKey")
        assert runs["create"]["madeTradr"] is True
        assert call["args"] == [{"accountId": CREATE_ACCOUNT, "friendlyName": "Reporting Key", "roles": ["read"],
                                 "ips": []}]
        created = call["result"]
        model_shaped(created)
        assert (created["accountId"], created["friendlyName"], created["roles"], created["ips"]) == \
            (CREATE_ACCOUNT, "Reporting Key", ["read"], [])
        assert created["apiKey"].startswith("sr_")
        again = client.get(f"/tradr/accounts/api-keys/{created['id']}", headers=user.headers).json()
        assert again["apiKey"] == server.core.hasher.token(created["apiKey"])
        assert again["friendlyName"] == "Reporting Key"

        # get: key 32452, its hash
        call = only_call(runs["get"], "accounts.getApiKey")
        assert call["args"] == [GET_KEY]
        model_shaped(call["result"])
        assert call["result"]["id"] == GET_KEY and call["result"]["accountId"] == CREATE_ACCOUNT
        assert call["result"]["friendlyName"] == "Key 32452" and call["result"]["roles"] == ["read", "write"]
        assert call["result"]["apiKey"] == server.core.hasher.token(fetched["apiKey"])

        # list: the keys bound to 101000123, as an array
        call = only_call(runs["list"], "accounts.listApiKeys")
        assert call["args"] == [LIST_ACCOUNT] and call["type"] == "array"
        for key in call["result"]:
            model_shaped(key)
        assert sorted(k["id"] for k in call["result"]) == sorted([k2["id"], RENAMED_KEY, other["id"]])
        assert all(k["accountId"] == LIST_ACCOUNT and re.fullmatch(r"[0-9a-f]{64}", k["apiKey"])
                   for k in call["result"])

        # update: true, and renamed
        call = only_call(runs["update"], "accounts.updateApiKey")
        assert call["args"] == [{"accountApiKeyId": RENAMED_KEY, "friendlyName": "My renamed key"}]
        assert call["result"] is True and call["type"] == "boolean"

        # delete: true; then the key is gone and refused
        call = only_call(runs["delete"], "accounts.deleteApiKey")
        assert call["args"] == [RENAMED_KEY] and call["result"] is True and call["type"] == "boolean"
        assert client.get(f"/tradr/accounts/api-keys/{RENAMED_KEY}", headers=user.headers).status_code == 404
        assert client.get(f"/tradr/accounts/{LIST_ACCOUNT}/api-keys",
                          headers={"x-api-key": renamed["apiKey"]}).status_code == 401
        native = client.get("/v1/api-keys", headers=user.headers, params={"limit": 200}).json()["items"]
        assert "My renamed key" not in {k["name"] for k in native} and "Key 23122" not in {k["name"] for k in native}

        # the seed's placeholder is no key: a typed 401; an account key on another account: a typed 403
        for name, status, kind in (("placeholder", 401, "TradrUnauthorizedError"),
                                   ("other_account", 403, "TradrForbiddenError")):
            record = runs[name]
            assert record["error"] is not None and record["error"]["isTradrError"], record
            assert (record["error"]["status"], record["error"]["name"]) == (status, kind), record
            assert record["calls"][0]["error"]["status"] == status and "result" not in record["calls"][0]

    # the rename happened before the delete (the server's audit log, in order)
    with server.client() as client:
        events = client.get("/v1/audit-events", headers=user.headers, params={"limit": 200}).json()["items"]
    actions = [e["action"] for e in sorted(events, key=lambda e: e["id"])
               if e.get("target") and e["target"].startswith("api_key:") and e["action"] != "api_key.create"]
    assert actions == ["api_key.update", "api_key.delete"], actions


def test_client_flow(server, users, client, run_dir):
    """Every method of the client, with an access token and with keys, against the shared live server."""
    node = toolchain()
    user = users.create()
    accounts = []
    for _ in range(2):
        creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
        response = client.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds},
                               headers=user.headers)
        assert response.status_code == 201, response.text
        accounts.append(response.json()["id"])
    shutil.copy(TS_DIR / "client_flow.ts", run_dir / "client_flow.ts")
    compile_ts(node, run_dir)
    out = run_node(node, [str(run_dir / "client_flow.js")], {
        "TRADR_API_URL": server.url, "TRADR_TEST_ACCESS_TOKEN": user.token, "TRADR_TEST_USER_ID": str(user.id),
        "TRADR_TEST_ACCOUNT_ID": str(accounts[0]), "TRADR_TEST_OTHER_ACCOUNT_ID": str(accounts[1])})

    assert out["baseUrl"] == server.url
    user_key = out["userKey"]
    assert user_key["userId"] == user.id and user_key["accountIds"] == [] and user_key["apiKey"].startswith("sr_")
    assert user_key["roles"] == ["read", "write", "delete"] and user_key["friendlyName"] == "My Personal Key"
    assert out["userKeyGet"]["apiKey"] == server.core.hasher.token(user_key["apiKey"])

    made = out["made"]
    assert len(made) == 12 and out["madePlaintext"] is True
    assert out["listAll"] == sorted(made, reverse=True)  # every page, newest first
    assert out["listAllBy5"] == sorted(made)  # three pages of five, ascending
    assert out["listPage2"] == sorted(made)[5:10]
    page = out["listPage"]
    assert (page["page"], page["limit"], page["total"]) == (3, 5, 12)
    assert [k["friendlyName"] for k in page["data"]] == ["flow-01", "flow-00"]
    assert set(out["userList"]) == {user_key["id"], *made}
    assert out["userListPage"]["total"] == 13 and len(out["userListPage"]["data"]) == 1

    assert out["renameAccountKey"] is True and out["renamedAccountKey"] == "renamed account key"
    assert out["renameUserKey"] is True and out["renamedUserKey"] == "Renamed personal key"
    assert out["deleteAccountKey"] is True

    def refused(name: str, status: int, kind: str) -> dict:
        error = out[name]["error"]
        assert error["isTradrError"] and (error["status"], error["type"]) == (status, kind), (name, error)
        assert error["message"]
        return error

    refused("getDeleted", 404, "TradrNotFoundError")
    refused("deleteAgain", 404, "TradrNotFoundError")
    assert "roles" in refused("invalid", 422, "TradrValidationError")["message"]
    refused("otherUser", 403, "TradrForbiddenError")
    assert out["narrowOwn"] == 11
    refused("narrowOther", 403, "TradrForbiddenError")
    refused("narrowCreate", 403, "TradrForbiddenError")
    refused("narrowUserKey", 403, "TradrForbiddenError")
    assert out["deleteUserKey"] is True
    refused("deletedKeyRefused", 401, "TradrUnauthorizedError")
    refused("unreachable", 0, "TradrConnectionError")
    assert out["badOptions"]["error"]["type"] == "TypeError"
    assert out["badId"]["error"]["type"] == "TypeError"


def readme_example() -> str:
    """The TypeScript block of the README's TradrAPI section."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### TradrAPI (`/tradr`)"):]
    return section[section.index("```ts\n") + len("```ts\n"):section.index("```\n", section.index("```ts\n") + 6)]


def test_readme_example_runs(server, users, client, run_dir):
    """The README's TypeScript example, with a real key (from the CLI's service) and account id filled in."""
    node = toolchain()
    user = users.create()
    creds = {"api_key": f"bm-{uuid.uuid4().hex}", "secret": uuid.uuid4().hex}
    account = client.post("/v1/exchange-accounts", json={"exchange": "bitmex", "credentials": creds},
                          headers=user.headers).json()["id"]
    first = client.post("/v1/api-keys", headers=user.headers, json={"name": "first", "scopes": ["read", "write",
                                                                                              "delete"]})
    assert first.status_code == 201, first.text
    source = readme_example()
    filled = (source.replace("'sr_…'", f"'{first.json()['secret']}'").replace("accountId: 1,", f"accountId: {account},")
              .replace("listApiKeys(1)", f"listApiKeys({account})"))
    assert filled.count(first.json()["secret"]) == 1
    assert f"accountId: {account}," in filled and f"listApiKeys({account})" in filled
    (run_dir / "readme.ts").write_text(filled)
    compile_ts(node, run_dir)
    done = subprocess.run([node, str(run_dir / "readme.js")], capture_output=True, text=True, timeout=120,
                          check=False, cwd=TS_DIR, env={**os.environ, "TRADR_API_URL": server.url})
    assert done.returncode == 0, done.stderr
    # it created, renamed and deleted one key: only the first key is left, and the log says so
    names = [k["name"] for k in client.get("/v1/api-keys", headers=user.headers).json()["items"]]
    assert names == ["first"]
    events = client.get("/v1/audit-events", headers=user.headers, params={"limit": 200}).json()["items"]
    assert [e["action"] for e in sorted(events, key=lambda e: e["id"]) if e["action"].startswith("api_key.")] == \
        ["api_key.create", "api_key.create", "api_key.update", "api_key.delete"]
