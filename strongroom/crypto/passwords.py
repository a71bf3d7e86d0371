"""Human passwords: argon2id (argon2-cffi). Never used for high-entropy keys."""

from __future__ import annotations

from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)

    @cached_property
    def _dummy(self) -> str:
        """Verified against when a user does not exist, so a miss costs as much as a hit (made on
        first use: hashing it at start-up cost ~0.2 s of every cold start)."""
        return self._hasher.hash("strongroom-dummy-password")

    def hash(self, password: str) -> str:
        """Return an argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Return True if ``password`` matches; a missing hash still costs one verification."""
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
