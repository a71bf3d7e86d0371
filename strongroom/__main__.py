"""``python -m strongroom``: the ``strongroom`` command."""

from strongroom.launch import main

main()
