"""Exchange accounts and their stored credentials (Cadenza's credentials)."""

from __future__ import annotations

from strongroom.accounts.credentials import CredentialService, Reach, venue_credentials
from strongroom.accounts.services import ExchangeAccountService, authorize_connect

__all__ = ["CredentialService", "ExchangeAccountService", "Reach", "authorize_connect", "venue_credentials"]
