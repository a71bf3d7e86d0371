"""The audit log and key usage counts."""
