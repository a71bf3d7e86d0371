"""Run the mock: in a background thread of this process (tests, bench) or in the foreground (demo)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Self

from devtools.mock_exchange.app import create_app
from devtools.mock_exchange.state import DEMO_ACCOUNTS, MockState


class MockExchangeServer:
    """Run the mock with uvicorn in a background thread.

    ``with MockExchangeServer() as mock: mock.url`` -> ``"http://127.0.0.1:<port>"``.
    ``port=0`` picks a free port. ``state`` is the live ``MockState`` (same process).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.app = create_app()
        self.state: MockState = self.app.state.mock
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start serving; returns self once the server accepts connections. Raises RuntimeError on failure."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="mock-exchange", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mock exchange failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most a few seconds)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8100, log_level: str = "info") -> None:
    """Serve the mock in the foreground until interrupted (``python -m devtools.mock_exchange``)."""
    import uvicorn

    print(f"mock exchange on http://{host}:{port}; demo keys: {json.dumps(DEMO_ACCOUNTS)}", flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level)
