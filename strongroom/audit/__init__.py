"""The audit log and key usage counts: the façade :class:`Audit` (``interfaces.py``: its docstrings are the
contract), implemented by :class:`AuditFacade` over the synchronous engine :class:`AuditService` (which the
other capabilities write to in their own transactions)."""

from __future__ import annotations

from strongroom.audit.facade import AuditFacade
from strongroom.audit.interfaces import Audit
from strongroom.audit.services import AuditService
from strongroom.audit.usage import OUTCOMES, UsageRecorder

__all__ = ["OUTCOMES", "Audit", "AuditFacade", "AuditService", "UsageRecorder"]
