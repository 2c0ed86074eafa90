"""``python -m streams``: run the stream worker (the hub starts it as a child)."""

from __future__ import annotations

import logging

from faust import Worker

from hutong.config import load_settings
from schemas.registry import resolver
from streams.app import create_app


def main() -> None:
    settings = load_settings()
    app = create_app(settings, resolver(settings.schema_registry_url))
    worker = Worker(app, loglevel=logging.getLevelName(settings.log_level), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
