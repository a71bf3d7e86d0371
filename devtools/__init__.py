"""Developer tools that ship with the source tree but are not part of the installed ``strongroom`` package.

Run them from a checkout (``python -m devtools.mock_exchange``); nothing under ``strongroom/`` imports them
at start-up.
"""
