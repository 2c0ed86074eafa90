"""``python -m streams [--worker N]``: run stream worker N (the hub starts them as children).

Each worker keeps its RocksDB tables in its own folder under the data dir, so
several workers can run on one machine; give each the same number on restart
and it recovers from its local files plus the changelog tail.
"""

from __future__ import annotations

import argparse
import logging
import sys

from faust import Worker

from hutong.config import load_settings
from schemas.registry import resolver
from streams.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    parser.add_argument("--worker", type=int, default=0, help="worker number (default 0)")
    args = parser.parse_args()
    sys.argv[1:] = []  # Faust's worker must not read our options
    settings = load_settings()
    app = create_app(settings, resolver(settings.schema_registry_url), worker=args.worker)
    worker = Worker(app, loglevel=logging.getLevelName(settings.log_level), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
