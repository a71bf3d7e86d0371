"""Platform API keys: issue, verify, roll, bind; the key-power rule."""
