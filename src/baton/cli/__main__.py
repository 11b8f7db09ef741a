"""``python -m baton.cli`` runs the ``baton`` command."""

from baton.cli import main

main()
