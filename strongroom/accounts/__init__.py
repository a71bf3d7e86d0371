"""Exchange accounts and their stored credentials (Cadenza's credentials).

The façades are :class:`Accounts` and :class:`Credentials` (``interfaces.py``: their docstrings are the
contract), implemented by :class:`AccountsFacade` and :class:`CredentialsFacade`; surfaces ask them with an
:class:`AccountQuery` and pass a :class:`ConnectPolicy`.
"""

from __future__ import annotations

from strongroom.accounts.credentials import CredentialService, venue_credentials
from strongroom.accounts.facade import CredentialsFacade
from strongroom.accounts.interfaces import AccountQuery, Accounts, ByCursor, ByOffset, ConnectPolicy, Credentials, Reach
from strongroom.accounts.services import AccountsFacade, ExchangeAccountService, authorize_connect

__all__ = ["AccountQuery", "Accounts", "AccountsFacade", "ByCursor", "ByOffset", "ConnectPolicy", "CredentialService",
           "Credentials", "CredentialsFacade", "ExchangeAccountService", "Reach", "authorize_connect",
           "venue_credentials"]
