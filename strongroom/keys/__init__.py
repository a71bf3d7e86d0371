"""Platform API keys: issue, verify, roll, bind; the key-power rule."""

from __future__ import annotations

from strongroom.keys.services import ApiKeyService, KeyRecord

__all__ = ["ApiKeyService", "KeyRecord"]
