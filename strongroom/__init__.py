"""Strongroom: exchange-account vault and platform API keys for trading platforms."""

__version__ = "0.1.0"
