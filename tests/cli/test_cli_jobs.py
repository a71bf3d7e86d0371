"""``strongroom jobs list|retry|cancel`` on a fresh installation (SQLite and PostgreSQL): jobs are put in
the database directly (as a service's transaction would), then handled by the operator's commands."""

from __future__ import annotations

import time

import pytest

from strongroom.db import Database
from strongroom.enums import JobStatus
from strongroom.jobs import JobQueue, enqueue


def test_jobs_list_retry_cancel(installed):
    db = Database(installed.url)
    try:
        with db.session() as session:
            queued = enqueue(session, "test.later", {"account_id": 7}, delay=3600)
            dead = enqueue(session, "test.failing", max_attempts=1)
        queue = JobQueue(db)
        [claimed] = queue.claim(["test.failing"], 1, lease_seconds=30)
        assert queue.fail(claimed, "receiver answered 500", 1) == JobStatus.DEAD

        listed = installed.run("jobs", "list", "--json").json()
        assert [(j["id"], j["kind"], j["status"], j["attempts"]) for j in listed] == [
            (dead, "test.failing", "dead", 1), (queued, "test.later", "queued", 0)]
        assert listed[0]["last_error"] == "receiver answered 500"
        assert "payload" not in listed[0]  # a handler's business: shown nowhere
        assert listed[1]["run_at"].endswith("Z")
        assert [j["id"] for j in installed.run("jobs", "list", "--status", "dead", "--json").json()] == [dead]
        assert installed.run("jobs", "list", "--kind", "nope", "--json").json() == []
        text = installed.run("jobs", "list").ok().stdout.splitlines()  # not a terminal: tab-separated rows
        assert text[0].split("\t")[:3] == [str(dead), "test.failing", "dead"]

        retried = installed.run("jobs", "retry", str(dead), "--json").json()
        assert (retried["status"], retried["attempts"]) == ("queued", 0)
        assert installed.run("jobs", "retry", str(dead)).error == \
            f"job {dead} is queued: only a dead or canceled job is retried"
        assert installed.run("jobs", "cancel", str(queued)).ok().stdout.strip() == f"job {queued} (test.later) canceled"
        assert queue.get(queued).status == JobStatus.CANCELED
        assert queue.claim(["test.later"], 1, 30, now=time.time() + 7200) == []  # canceled: never runs
        assert installed.run("jobs", "cancel", str(queued)).error == \
            f"job {queued} is canceled: only a queued or running job is canceled"
        assert installed.run("jobs", "retry", "999999").error == "no job 999999"
        audit = installed.run("audit", "tail", "--json").json()
        assert [(e["action"], e["target"], e["actor_user_id"]) for e in audit if e["action"].startswith("job.")] == [
            ("job.retry", f"job:{dead}", 0), ("job.cancel", f"job:{queued}", 0)]  # each success once, oldest first
        assert installed.run("jobs", "retry", "x").returncode == 2
    finally:
        db.dispose()


# The installed command, run in subprocesses: `make test`, not the quick loop (`make test-quick`).
pytestmark = pytest.mark.slow
