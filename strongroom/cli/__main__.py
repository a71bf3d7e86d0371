"""``python -m strongroom.cli``."""

from strongroom.cli import app

app()
