"""Sealed secrets: the vault (registry of sealed tables), master-key rotation and retirement."""

from __future__ import annotations

from strongroom.vault.masterkeys import MasterKeyService, MasterKeyStatus

__all__ = ["MasterKeyService", "MasterKeyStatus"]
