"""Background work: what runs beside the requests, never on their path.

* :class:`Job` is the protocol of a periodic job: a ``name``, an ``interval`` in seconds, a
  blocking ``run()`` (it writes to the database; the runner calls it in a worker thread) and
  ``leased``: whether it must run once per deployment rather than once per process.
* :class:`~strongroom.jobs.periodic.Housekeeping` runs a process's jobs, each on its own interval.
  Per-process jobs (flushes of in-memory batches: key usage, refusal counts) run in every
  process; leased jobs (snapshot pruning) run in whichever process takes the job's lease
  (:mod:`strongroom.jobs.leases`, a row of ``job_leases``) for the interval.
* Seam for durable jobs (webhooks, retries, a ``strongroom worker`` process): they are not
  periodic and need persistence; they come as a module of this package beside ``periodic``, with
  its own runner, and reuse the lease store for anything one process of a deployment must do.
"""

from __future__ import annotations

from strongroom.jobs.leases import LeaseStore
from strongroom.jobs.periodic import Housekeeping, Job, PeriodicJob

__all__ = ["Housekeeping", "Job", "LeaseStore", "PeriodicJob"]
