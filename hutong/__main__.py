"""``python -m hutong`` is the ``hutong`` command."""

from hutong.cli import main

main()
