"""The console's Admin → Jobs page over HTTP, on both databases: the durable jobs (never their payloads), filters,
pages and the queue's figures; Retry and Cancel as CSRF-protected forms, audited as the CLI's are; admins only."""

from __future__ import annotations

import re
import uuid
from typing import Any

from conftest import Console, csrf_of

from strongroom.enums import JobStatus
from strongroom.jobs import enqueue
from strongroom.principal import Principal

OPERATOR = Principal(user_id=0, username="op", is_admin=True)


def _kind() -> str:
    return f"console.{uuid.uuid4().hex[:8]}"


def _jobs(console: Console, kind: str, n: int = 1, payload: dict[str, Any] | None = None) -> list[int]:
    core: Any = console.server.core
    with core.db.session() as session:
        return [enqueue(session, kind, payload or {}, delay=3600) for _ in range(n)]


def _dead(console: Console, kind: str) -> int:
    """A job whose only attempt failed for good (claimed and failed the way a runner does)."""
    core: Any = console.server.core
    with core.db.session() as session:
        job_id = enqueue(session, kind, {}, max_attempts=1)
    [claimed] = core.jobs.claim([kind], 1, 30)
    assert core.jobs.fail(claimed, "upstream refused", 0, permanent=True) == JobStatus.DEAD
    return int(job_id)


def _audit(console: Console, action: str, job_id: int) -> list[Any]:
    core: Any = console.server.core
    events = core.audit.list(OPERATOR, cursor=None, limit=200, action=action).items
    return [e for e in events if e.target == f"job:{job_id}"]


def test_an_admin_sees_the_jobs_with_the_queue_figures_never_the_payload(console: Console) -> None:
    kind = _kind()
    [queued] = _jobs(console, kind, payload={"token": "payload-secret-7f3a"})
    dead = _dead(console, kind)
    client = console.signed_in(*console.user(admin=True))
    assert 'href="/console/admin/jobs"' in client.get("/console/admin").text
    page = client.get("/console/admin/jobs", params={"kind": kind})
    assert page.status_code == 200
    text = page.text
    assert "<h1>Jobs</h1>" in text and "payload-secret-7f3a" not in text
    assert f"/admin/jobs/{queued}/cancel" in text and f"/admin/jobs/{queued}/retry" not in text
    assert f"/admin/jobs/{dead}/retry" in text and f"/admin/jobs/{dead}/cancel" not in text
    assert "upstream refused" in text and "Due (waiting for a worker)" in text
    only_dead = client.get("/console/admin/jobs", params={"kind": kind, "status": "dead"}).text
    assert f"/admin/jobs/{dead}/retry" in only_dead and f"/admin/jobs/{queued}/" not in only_dead
    assert client.get("/console/admin/jobs", params={"status": "bogus"}).status_code == 422


def test_the_jobs_list_pages_with_its_filters(console: Console) -> None:
    kind = _kind()
    ids = _jobs(console, kind, 30)
    client = console.signed_in(*console.user(admin=True))
    first = client.get("/console/admin/jobs", params={"kind": kind}).text
    nxt = re.search(r'href="(/console/admin/jobs\?[^"]*cursor=[^"]+)">Next page', first)
    assert nxt, "no next page link"
    assert f"kind={kind}" in nxt.group(1)
    second = client.get(nxt.group(1).replace("&amp;", "&")).text
    shown = {int(n) for n in re.findall(r"/admin/jobs/(\d+)/cancel", first + second)}
    assert shown == set(ids) and "Next page" not in second


def test_retry_and_cancel_work_and_are_audited_like_the_cli(console: Console) -> None:
    kind = _kind()
    [queued] = _jobs(console, kind)
    dead = _dead(console, kind)
    username, password = console.user(admin=True)
    client = console.signed_in(username, password)
    token = csrf_of(client.get("/console/admin/jobs").text)
    core: Any = console.server.core

    answer = client.post(f"/console/admin/jobs/{dead}/retry", data={"csrf": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/admin/jobs?done=job_retry"
    job = core.jobs.get(dead)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    [event] = _audit(console, "job.retry", dead)
    assert event.outcome == "ok" and event.actor_user_id == core.users.by_username(OPERATOR, username).id

    answer = client.post(f"/console/admin/jobs/{queued}/cancel", data={"csrf": token})
    assert answer.status_code == 303 and core.jobs.get(queued).status == JobStatus.CANCELED
    [event] = _audit(console, "job.cancel", queued)
    assert event.outcome == "ok"

    # the wrong state is a 409 page, nothing written or audited; an unknown job or action is a 404
    again = client.post(f"/console/admin/jobs/{queued}/cancel", data={"csrf": token})
    assert again.status_code == 409 and "only a queued or running job is canceled" in again.text
    assert len(_audit(console, "job.cancel", queued)) == 1
    assert client.post("/console/admin/jobs/2147483000/retry", data={"csrf": token}).status_code == 404
    assert client.post(f"/console/admin/jobs/{queued}/delete", data={"csrf": token}).status_code == 404


def test_retry_and_cancel_without_the_csrf_token_are_refused(console: Console) -> None:
    kind = _kind()
    [queued] = _jobs(console, kind)
    dead = _dead(console, kind)
    client = console.signed_in(*console.user(admin=True))
    for data in ({}, {"csrf": "0" * 64}):
        assert client.post(f"/console/admin/jobs/{queued}/cancel", data=data).status_code == 403
        assert client.post(f"/console/admin/jobs/{dead}/retry", data=data).status_code == 403
    core: Any = console.server.core
    assert core.jobs.get(queued).status == JobStatus.QUEUED and core.jobs.get(dead).status == JobStatus.DEAD
    assert _audit(console, "job.cancel", queued) == [] and _audit(console, "job.retry", dead) == []


def test_a_user_who_is_not_an_admin_neither_sees_nor_changes_the_jobs(console: Console) -> None:
    kind = _kind()
    [queued] = _jobs(console, kind)
    client = console.signed_in(*console.user())
    assert client.get("/console/admin/jobs").status_code == 404  # as every admin page: not shown to others
    token = csrf_of(client.get("/console/accounts").text)
    assert client.post(f"/console/admin/jobs/{queued}/cancel", data={"csrf": token}).status_code == 404
    core: Any = console.server.core
    assert core.jobs.get(queued).status == JobStatus.QUEUED and _audit(console, "job.cancel", queued) == []
    with console.client() as anonymous:
        assert anonymous.get("/console/admin/jobs").headers["location"] == "/console/sign-in"
