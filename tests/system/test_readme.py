"""Issue 22 item 9: the README runs in order, top to bottom, as a new user would run it.

The test extracts every shell block of README.md (```sh, ```bash, ```shell, ```console) and runs them
in order against ``make demo``, started by make itself (``make demo VENV=<this venv> -o
<venv>/.runtime``: the venv running the tests, taken as built, so make never reinstalls it) on free
ports (``PORT``, ``MOCK_PORT``) with its own ``STRONGROOM_DATA_DIR`` (a temporary directory), on
SQLite and, with ``STRONGROOM_DATABASE_URL`` set to a fresh schema, on PostgreSQL. The README's
addresses (127.0.0.1:8000 and :8100) and its password placeholders are replaced by the real ones;
the bootstrap admin's password is read from ``<data_dir>/initial-admin-password`` when ``serve``
wrote that file, else from the ``password:`` line ``serve`` prints.

Blocks share one shell's variables, as in one terminal: each runs in ``bash`` with ``set -e -o
pipefail`` and must exit 0. Where the README shows what a command prints (a ``# → …`` line, continued
on ``#   `` lines; ``…`` stands for anything), the block's output must have a line that matches, in the
order shown. ``curl`` is wrapped to end its output with a newline, so each answer is one line. A
block preceded by ``<!-- readme-test: not run (reason) -->`` is not run (``make run`` itself, the
command synopsis, a terminal prompt...).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import ROOT, drop_pg_schema, free_port, new_pg_schema, postgres_available

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
SHELLS = ("sh", "bash", "shell", "console")
NOT_RUN = re.compile(r"<!--\s*readme-test:\s*not run\s*\(([^)]*)\)\s*-->")
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    line: int          # where the block starts in README.md (1-based), for messages
    text: str
    skip_reason: str | None

    @property
    def expectations(self) -> list[str]:
        """The ``# → …`` outputs the README shows in this block, each joined from its lines."""
        found: list[str] = []
        continuing = False
        for line in self.text.splitlines():
            if line.startswith("# → "):
                found.append(line[len("# → "):].strip())
                continuing = True
            elif continuing and line.startswith("#   "):
                found[-1] += line[len("#   "):].strip()
            else:
                continuing = False
        return found


def shell_blocks(markdown: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(markdown):
        if match.group(1) not in SHELLS:
            continue
        before = markdown[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        blocks.append(Block(markdown.count("\n", 0, match.start()) + 1, match.group(2),
                            marker.group(1) if marker else None))
    return blocks


def pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in expected.split("…")))


def test_the_readme_marks_every_block_it_does_not_run() -> None:
    """The extraction itself: the README has runnable blocks with outputs, and `make run` is marked."""
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    run = [b for b in blocks if b.skip_reason is None]
    assert len(run) >= 6 and sum(len(b.expectations) for b in run) >= 20
    for block in blocks:
        if "make run" in block.text or "make demo  " in block.text or "set-password" in block.text:
            assert block.skip_reason, f"README.md:{block.line} must be marked readme-test: not run"
        if block.skip_reason is not None:
            assert block.skip_reason.strip(), f"README.md:{block.line}: say why it is not run"


@dataclass
class Demo:
    url: str
    mock_url: str
    password: str


def _password(data_dir: Path, output: Path) -> str | None:
    written = data_dir / "initial-admin-password"
    if written.is_file() and written.read_text().strip():
        return written.read_text().strip()
    found = re.search(r"^\s*password: (\S+)\s*$", output.read_text(errors="replace"), re.MULTILINE)
    return found.group(1) if found else None


@pytest.fixture(params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Demo]:
    # a clean environment for the user's `make demo`: no settings of this run, and not the flags of the
    # `make test` running this (its jobserver's descriptors are not inherited)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRONGROOM_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    data_dir = tmp_path / "data"
    env["STRONGROOM_DATA_DIR"] = str(data_dir)
    schema = None
    if request.param == "postgresql":
        problem = postgres_available()
        if problem:
            pytest.skip(f"POSTGRESQL PASS NOT RUN: PostgreSQL does not answer ({problem})")
        schema, env["STRONGROOM_DATABASE_URL"] = new_pg_schema()
    port, mock_port = free_port(), free_port()
    venv = Path(sys.prefix)
    output = tmp_path / "make-demo.log"
    with output.open("wb") as sink:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "demo", f"VENV={venv}", "-o", f"{venv}/.runtime",
             "HOST=127.0.0.1", f"PORT={port}", f"MOCK_PORT={mock_port}"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url, mock_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mock_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert make.poll() is None, f"make demo exited {make.returncode}:\n{output.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make demo did not answer:\n{output.read_text()[-3000:]}"
            try:
                ready = httpx.get(url + "/readyz", timeout=2).status_code == 200
                ready = ready and httpx.get(mock_url + "/_mock/stats", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            password = _password(data_dir, output) if ready else None
            if password:
                break
            time.sleep(0.3)
        yield Demo(url, mock_url, password)
    finally:
        os.killpg(make.pid, signal.SIGTERM)   # make's process group: make, the mock and the server
        try:
            make.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(10)
        if schema:
            drop_pg_schema(schema)


PRELUDE = """set -e -o pipefail
curl() { command curl "$@" && printf '\\n'; }
if [ -f ./.readme-state ]; then . ./.readme-state; fi
set -a
"""
EPILOGUE = "\nset +a\nexport -p > ./.readme-state\n"


def test_the_readme_runs_top_to_bottom(demo: Demo, tmp_path: Path) -> None:
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    work = tmp_path / "terminal"   # the user's working directory: anything a block writes lands here
    work.mkdir()
    ran = 0
    for block in blocks:
        if block.skip_reason is not None:
            continue
        script = (block.text.replace("http://127.0.0.1:8000", demo.url)
                  .replace("http://127.0.0.1:8100", demo.mock_url)
                  .replace("<printed password>", demo.password).replace("<password>", demo.password))
        result = subprocess.run(["bash", "-c", PRELUDE + script + EPILOGUE], cwd=work, capture_output=True,
                                text=True, timeout=120, check=False)
        where = f"README.md:{block.line}"
        assert result.returncode == 0, (f"{where} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
                                        f"\n--- stderr\n{result.stderr[-2000:]}")
        lines = [line.strip() for line in result.stdout.splitlines()]
        at = 0
        for expected in block.expectations:
            wanted = pattern(expected)
            for index in range(at, len(lines)):
                if wanted.fullmatch(lines[index]):
                    at = index + 1
                    break
            else:
                raise AssertionError(f"{where}: no line (after line {at} of its output) is what the README "
                                     f"shows:\n  {expected}\n--- output\n" + "\n".join(lines)[-6000:])
        ran += 1
    assert ran >= 6
