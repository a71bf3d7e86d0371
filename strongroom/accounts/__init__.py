"""Exchange accounts and their stored credentials (Cadenza's credentials)."""
