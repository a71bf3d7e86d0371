"""Background work: what runs beside the requests, never on their path.

* :class:`Job` is the protocol of a periodic job: a ``name``, an ``interval`` in seconds, a
  blocking ``run()`` (it writes to the database; the runner calls it in a worker thread) and
  ``leased``: whether it must run once per deployment rather than once per process.
* :class:`~strongroom.jobs.periodic.Housekeeping` runs a process's jobs, each on its own interval.
  Per-process jobs (flushes of in-memory batches: key usage, refusal counts) run in every
  process; leased jobs (snapshot pruning) run in whichever process takes the job's lease
  (:mod:`strongroom.jobs.leases`, a row of ``job_leases``) for the interval.
* Durable jobs (:mod:`strongroom.jobs.queue`): rows of ``jobs`` enqueued with :func:`enqueue` in the
  caller's transaction, claimed under expiring leases, retried with backoff, dead after the last
  attempt; ``schedules`` fire once per interval per deployment. :mod:`strongroom.jobs.runner` runs
  them (inside ``serve`` with ``STRONGROOM_JOBS=inline``, or ``strongroom worker``); it is imported
  only where a runner starts.
"""

from __future__ import annotations

from strongroom.jobs.leases import LeaseStore
from strongroom.jobs.periodic import Housekeeping, Job, PeriodicJob
from strongroom.jobs.queue import ClaimedJob, JobFailed, JobQueue, JobView, QueueStats, enqueue, lease_held

__all__ = ["ClaimedJob", "Housekeeping", "Job", "JobFailed", "JobQueue", "JobView", "LeaseStore", "PeriodicJob", "QueueStats",
           "enqueue", "lease_held"]
