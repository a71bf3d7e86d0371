"""Strongroom benchmarks: ``python -m bench`` (or ``make bench``).

Measures, in one run, what issue 3 point 7 asks for:

1. requests/s of authenticated ``GET /v1/me`` per key kind against ``GET /healthz`` on one
   ``strongroom serve`` process (wrk as the load generator, signed requests pre-signed);
2. instructions per request under ``valgrind --tool=callgrind`` (in-process ASGI calls);
3. in-process verification time per kind against the bare crypto operation;
4. cold-cache verification latency with 1,000 and 1,000,000 keys in PostgreSQL.

Results are printed as a table and written to ``bench/results/latest.md``.
"""
