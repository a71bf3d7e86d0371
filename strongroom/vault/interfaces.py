"""The vault's contract for its callers over HTTP (the console): the master key's status (the docstrings are
the contract).

Every method is async: the database work runs in a worker thread inside the façade, never in a caller.
Rotating, re-wrapping, migrating and retiring master key versions are the operator's, on the command line
(``strongroom master-key``), through the synchronous :class:`~strongroom.vault.masterkeys.MasterKeyService`.
"""

from __future__ import annotations

from typing import Protocol

from strongroom.principal import Principal
from strongroom.vault.masterkeys import MasterKeyStatus


class MasterKeys(Protocol):
    """The master key (KEK) versions and what is sealed under each."""

    async def status(self, principal: Principal) -> MasterKeyStatus:
        """Return the current version, every version with its count of sealed records (every table of the
        vault's registry), what is pending re-wrap and the versions records use that the key source does not
        hold. Admins only: raises Forbidden otherwise."""
        ...
