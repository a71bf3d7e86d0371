"""The vault's façade (:class:`strongroom.vault.interfaces.MasterKeys`, whose docstrings are the contract):
async, over the synchronous :class:`~strongroom.vault.masterkeys.MasterKeyService`, whose database work runs
here in a worker thread."""

from __future__ import annotations

import anyio.to_thread

from strongroom.errors import Forbidden
from strongroom.principal import Principal
from strongroom.vault.masterkeys import MasterKeyService, MasterKeyStatus


class MasterKeysFacade:
    """The master keys façade over ``engine`` (see :class:`strongroom.vault.interfaces.MasterKeys`)."""

    def __init__(self, engine: MasterKeyService) -> None:
        self.engine = engine

    async def status(self, principal: Principal) -> MasterKeyStatus:
        if not principal.is_admin:
            raise Forbidden("only admins see the master key status")
        return await anyio.to_thread.run_sync(self.engine.status)
