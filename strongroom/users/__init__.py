"""Users and their sessions (access and refresh tokens)."""
