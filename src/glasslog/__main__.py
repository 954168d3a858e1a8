"""``python -m glasslog`` runs the CLI."""

from glasslog.cli import main

main()
