"""The results table, the machine description, and bench/results/latest.md."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = ("fastapi", "starlette", "uvicorn", "h11", "httptools", "uvloop", "pydantic", "pydantic-core",
            "sqlalchemy", "psycopg", "cryptography", "limits", "anyio")


@dataclass
class Row:
    measure: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    verdict: str = "info"  # PASS, FAIL, info, NOT MEASURED


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    fields = {}
    for key in ("model name", "cpu family", "model", "cpu MHz", "cache size"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            fields[key] = m.group(1).strip()
    name = fields.pop("model name", "unknown")
    extra = ", ".join(f"{k} {v}" for k, v in fields.items())
    return f"{name} ({extra})" if extra else name


def ram_gib() -> str:
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        return f"{int(m.group(1)) / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        return "unknown"


def _version(cmd: list[str], pattern: str) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (other work on the machine skews timings)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        t1, i1 = sample()
        time.sleep(seconds)
        t2, i2 = sample()
    except OSError:
        return 0.0
    return 1 - (i2 - i1) / max(1, t2 - t1)


def machine() -> dict[str, str]:
    packages = []
    for name in PACKAGES:
        try:
            packages.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    return {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": ram_gib(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(packages),
        "wrk": _version(["wrk", "--version"], r"wrk (\S+)"),
        "valgrind": _version(["valgrind", "--version"], r"valgrind-(\S+)"),
    }


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable as plain text)."""
    head = Row("measure", "value", "baseline", "ratio", "target", "pass/fail")
    cells = [[r.measure, r.value, r.baseline, r.ratio, r.target, r.verdict] for r in [head, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]

    def line(c: list[str]) -> str:
        return "| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)


def markdown(rows: list[Row], info: dict[str, str], notes: list[str], command: str, started: float,
             elapsed: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
    parts = [
        "# Strongroom benchmark results",
        "",
        f"Run: {when}, {elapsed:.0f} s. Command: `{command}`",
        "",
        table(rows),
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
    ]
    if notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(parts) + "\n"


def command_line() -> str:
    return " ".join(["python -m bench", *sys.argv[1:]])
