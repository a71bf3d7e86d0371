"""The README's ten-line webhook receiver, run as written (but for its secret and port) in a process of its own,
verifies a real delivery from Strongroom's job runner and prints the event; a forged one gets no answer."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.services import new_user
from support.webhooks import FAST, emit, running, wait_status

from strongroom.enums import DeliveryStatus, EventType

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    [source] = [b for b in blocks if "from standardwebhooks import Webhook" in b]
    return source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_receiver_verifies_a_delivery(make_core, tmp_path):
    source = receiver_source()
    assert len([line for line in source.splitlines() if line.strip()]) <= 10
    core = make_core(**FAST)
    alice = new_user(core)
    port = free_port()
    endpoint, secret = core.webhooks.create(alice, url=f"http://127.0.0.1:{port}/hooks")
    script = tmp_path / "receiver.py"
    script.write_text(source.replace('"whsec_..."', repr(secret)).replace("9000", str(port)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the README receiver did not start"
                time.sleep(0.05)
        emit(core, alice.user_id, EventType.EXCHANGE_ACCOUNT_CONNECTED, account_id=7)
        with running(core):
            wait_status(core, alice, endpoint.id, DeliveryStatus.DELIVERED)
        try:
            httpx.post(f"http://127.0.0.1:{port}/hooks", content=b'{"type":"forged"}', timeout=5,
                       headers={"webhook-id": "evt_x", "webhook-timestamp": str(int(time.time())),
                                "webhook-signature": "v1,AAAA"})
            answered = True
        except httpx.HTTPError:
            answered = False
        assert not answered  # a forged delivery: no answer (Strongroom's would be retried)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "exchange_account.connected {'account_id': 7}" in out
    assert "forged" not in out
