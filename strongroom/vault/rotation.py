"""Master key rotation: add a KEK version, then re-wrap every data key (resumable)."""

from __future__ import annotations

from collections.abc import Callable

from strongroom.vault.services import Vault


class KeyRotationService:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def rotate(self, batch: int = 100, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Add a master key version and re-wrap every data key under it.

        Returns ``(new_version, rewrapped)``. Each batch commits on its own, and a record's
        version changes with its wrapped key, so a run killed half way leaves every record
        readable (old versions stay decrypt-only) and ``rewrap`` (or another ``rotate``) finishes.
        Raises KeyringError (keys from the environment cannot be rotated here) and what
        :meth:`Vault.rewrap` raises.
        """
        version = self.vault.envelope.keys.rotate()
        return version, self.rewrap(batch, progress)

    def pending(self) -> int:
        """Return how many records are wrapped under an older master key version."""
        return self.vault.pending()

    def rewrap(self, batch: int = 100, progress: Callable[[int], None] | None = None) -> int:
        """Re-wrap every data key under an older version with the current one; return the count.

        Safe against concurrent credential rotations and key rolls (see :meth:`Vault.rewrap`).
        """
        return self.vault.rewrap(batch, progress)
