"""SoftHSM2 tokens for tests (Debian package ``softhsm2``).

SoftHSM2 reads its token directory once per process (at C_Initialize), so a process's tokens are
all made at once, in one directory, before the first use (a pool); each test takes a fresh one.
Other processes (``strongroom`` commands) reach the same tokens through ``SOFTHSM2_CONF``.

With ``CI=true`` a missing SoftHSM2 fails the test (CI installs it); elsewhere the test is skipped
with a loud reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

LIBRARIES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
             "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
POOL_SIZE = 24
PIN = "1234"


@dataclass
class Token:
    library: str
    label: str
    pin: str
    conf: Path

    @property
    def settings(self) -> dict[str, str]:
        """The ``Settings`` fields that reach this token (as keyword arguments)."""
        return {"pkcs11_library": self.library, "pkcs11_token_label": self.label, "pkcs11_pin": self.pin}

    @property
    def env(self) -> dict[str, str]:
        """The environment a ``strongroom`` process needs to reach this token."""
        return {"SOFTHSM2_CONF": str(self.conf), "STRONGROOM_PKCS11_LIBRARY": self.library,
                "STRONGROOM_PKCS11_TOKEN_LABEL": self.label, "STRONGROOM_PKCS11_PIN": self.pin}

    def session(self) -> Any:
        import pkcs11

        token = pkcs11.lib(self.library).get_token(token_label=self.label)
        try:
            return token.open(user_pin=self.pin, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:  # a store of this process logged in already
            return token.open(rw=True)


class _Pool:
    def __init__(self, library: str, util: str) -> None:
        self.library = library
        self.dir = Path(tempfile.mkdtemp(prefix="strongroom-softhsm-"))
        (self.dir / "tokens").mkdir()
        self.conf = self.dir / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.dir / 'tokens'}\nobjectstore.backend = file\n"
                             "log.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)  # this process's library reads it at its first use
        self.labels = [f"strongroom-test-{i}" for i in range(POOL_SIZE)]
        for label in self.labels:
            subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "5678"],
                           check=True, capture_output=True, env={**os.environ})

    def take(self) -> Token:
        if not self.labels:
            pytest.fail(f"the SoftHSM2 pool of {POOL_SIZE} tokens is used up: raise POOL_SIZE in tests/support/hsm.py")
        return Token(self.library, self.labels.pop(0), PIN, self.conf)


_pool: _Pool | None = None


def new_token() -> Token:
    """Return a fresh, empty SoftHSM2 token (no key on it) that this process and its children reach."""
    global _pool
    library = next((lib for lib in LIBRARIES if Path(lib).exists()), None)
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        message = "SoftHSM2 is not installed (apt-get install softhsm2; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(f"HSM TESTS NOT RUN: {message}")
    if _pool is None:
        _pool = _Pool(library, util)
    return _pool.take()
