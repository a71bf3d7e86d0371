"""Exchange accounts and their stored credentials (Cadenza's credentials).

The façade is :class:`Accounts` (``interfaces.py``: its docstrings are the contract), implemented by
:class:`AccountsFacade`; surfaces ask it with an :class:`AccountQuery` and pass a :class:`ConnectPolicy`.
"""

from __future__ import annotations

from strongroom.accounts.credentials import CredentialService, Reach, venue_credentials
from strongroom.accounts.interfaces import AccountQuery, Accounts, ByCursor, ByOffset, ConnectPolicy
from strongroom.accounts.services import AccountsFacade, ExchangeAccountService, authorize_connect

__all__ = ["AccountQuery", "Accounts", "AccountsFacade", "ByCursor", "ByOffset", "ConnectPolicy", "CredentialService",
           "ExchangeAccountService", "Reach", "authorize_connect", "venue_credentials"]
