"""The audit log and key usage counts."""

from __future__ import annotations

from strongroom.audit.services import AuditService
from strongroom.audit.usage import OUTCOMES, UsageRecorder

__all__ = ["OUTCOMES", "AuditService", "UsageRecorder"]
