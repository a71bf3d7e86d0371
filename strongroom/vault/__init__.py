"""Sealed secrets: the vault (registry of sealed tables), master-key rotation and retirement."""
