"""A write whose row was changed or deleted by another request between the service's check and the write
(a race no service lock covers) is a 409 "try again" in the surface's shape, never a 500: the ORM's
StaleDataError (an UPDATE that matched no row) and a foreign key violation (a row referring to one deleted
meanwhile), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from support.interleave import commit_after
from support.problems import assert_problem
from support.services import new_user

from strongroom.errors import Conflict
from strongroom.http.errors import domain_error
from strongroom.principal import Principal


def test_a_row_referring_to_one_deleted_meanwhile_is_a_409(make_core):
    """A webhook endpoint created for a user an admin deleted after the request was authenticated: the insert
    fails on its foreign key, answered as a conflict to retry (the retry is then refused: the user is gone)."""
    core = make_core(webhook_allow_private=True)
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    gone = new_user(core)
    core.users.delete(admin, gone.user_id)
    with pytest.raises(IntegrityError) as caught:
        core.webhooks.create(gone, url="http://127.0.0.1:9/hook")
    error = domain_error(caught.value)
    assert isinstance(error, Conflict) and error.status == 409
    assert "try again" in str(error) and "INSERT" not in str(error)


def test_an_update_of_a_row_deleted_meanwhile_is_a_409(make_core):
    """A usage level set while the user is deleted (after the service read the user): the ORM's UPDATE matches
    no row (StaleDataError), answered as a conflict to retry."""
    core = make_core()
    admin = Principal(user_id=new_user(core).user_id, username="root", is_admin=True)
    gone = new_user(core)
    with commit_after(core.db.engine, 0, lambda: core.users.delete(admin, gone.user_id)), \
            pytest.raises(StaleDataError) as caught:
        core.users.set_usage_level(admin, gone.user_id, "premier")
    error = domain_error(caught.value)
    assert isinstance(error, Conflict) and error.status == 409


def test_over_http_a_409_problem_not_a_500(server, users):
    """The same race over HTTP: the /v1 problem document with code ``conflict``, and no traceback logged."""
    from strongroom.core import build_core

    admin, target = users.create(admin=True), users.create()
    engine = server.core.db.engine
    other = build_core(server.settings)  # another process's view of the database: its own connections
    deleted: list[bool] = []
    admin_principal = Principal(user_id=admin.id, username=admin.username, is_admin=True)

    def delete_first(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        # before the request's first write (its audit row: the user's UPDATE is flushed after it), so that the
        # deletion does not wait for the request's own write lock on SQLite
        if not deleted and statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS") \
                and "user.usage_level" in str(parameters):
            deleted.append(True)
            other.users.delete(admin_principal, target.id)  # committed

    event.listen(engine, "before_cursor_execute", delete_first)
    try:
        response = httpx.patch(f"{server.url}/v1/users/{target.id}", json={"usage_level": "premier"},
                               headers=admin.headers, timeout=30)
    finally:
        event.remove(engine, "before_cursor_execute", delete_first)
        other.close()
    assert deleted == [True]
    assert_problem(response, 409, "conflict")
    assert "Traceback" not in response.text
    again = httpx.patch(f"{server.url}/v1/users/{target.id}", json={"usage_level": "premier"},
                        headers=admin.headers, timeout=30)
    assert_problem(again, 404)
