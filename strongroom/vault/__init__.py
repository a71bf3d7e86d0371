"""Sealed secrets: the vault (registry of sealed tables), master-key rotation and retirement; the façade
:class:`MasterKeys` (``interfaces.py``) for the master key's status over HTTP, implemented by
:class:`MasterKeysFacade` over :class:`MasterKeyService` (the operator's, on the command line)."""

from __future__ import annotations

from strongroom.vault.facade import MasterKeysFacade
from strongroom.vault.interfaces import MasterKeys
from strongroom.vault.masterkeys import MasterKeyService, MasterKeyStatus

__all__ = ["MasterKeyService", "MasterKeyStatus", "MasterKeys", "MasterKeysFacade"]
