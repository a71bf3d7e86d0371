"""Where a capability's database work runs: the façades promise a worker thread, never the event loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest


class SessionThreads:
    """Records the thread of every database session ``core``'s engines open (they share ``core.db``)."""

    def __init__(self, core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[int] = []
        original = core.db.session

        def session(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            return original(*args, **kwargs)

        monkeypatch.setattr(core.db, "session", session)

    def mark(self) -> int:
        """Return how many sessions were opened so far (to look at the ones a call opens)."""
        return len(self.threads)

    def assert_off_loop(self, since: int, what: str) -> None:
        """Assert that the sessions opened after ``since`` exist and none ran on this (the event loop's) thread."""
        opened = self.threads[since:]
        assert opened, f"{what}: opened no database session (the test would prove nothing)"
        loop = threading.get_ident()
        assert loop not in opened, f"{what}: database work on the event loop's thread"
