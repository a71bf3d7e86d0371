"""Helpers of the in-process service tests (tests/services): a gateway that accepts any key, and users.

(Kept here, not in a conftest: ``from conftest import ...`` resolves to whichever conftest module was
imported first in a run, another directory's when several are collected.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.principal import Principal
from support import TEST_SETTINGS


@dataclass
class Outcome:
    """What the gateway's validate returns: checked, and no withdrawal permission."""

    verified: bool = True
    can_withdraw: bool | None = False


class FakeGateway:
    """Accepts any credentials (the exchange is not the subject of these tests)."""

    async def validate(self, info: Any, credentials: dict[str, str]) -> Outcome:
        return Outcome()

    async def aclose(self) -> None:
        pass


def new_user(core: Any) -> Principal:
    """Create a user through the service; return a session-like principal (no key) for them."""
    user = core.users.create(f"u{uuid.uuid4().hex[:10]}", "password-123")
    return Principal(user_id=user.id, username=user.username, client_ip="127.0.0.1")


@dataclass
class Fresh:
    """A migrated, empty database and a data dir (master key file) of its own."""

    backend: str
    url: str
    data_dir: Path

    def core(self, gateway: Any = None, **overrides: Any) -> Any:
        """Return a new core on this database (call ``close()`` on it); exchanges answer through ``gateway``."""
        from strongroom.core import build_core
        from strongroom.settings import Settings

        settings = Settings(**{**TEST_SETTINGS, "data_dir": self.data_dir, "database_url": self.url, **overrides})
        return build_core(settings, gateway=gateway or FakeGateway())
