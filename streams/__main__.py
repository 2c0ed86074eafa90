"""``python -m streams [--worker N]``: run stream worker N (the hub starts them as children).

Each worker keeps its RocksDB tables in its own folder under the data dir, so
several workers can run on one machine; give each the same number on restart
and it recovers from its local files plus the changelog tail.
"""

from __future__ import annotations

import argparse
import logging
import sys

import faust
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
    quiet_worker(app, settings.log_level).execute_from_commandline()


def quiet_worker(app: faust.App, log_level: str) -> Worker:
    """Faust's worker for ``app``, without its terminal spinner.

    At a log level of WARNING or above Faust keeps a progress spinner, and to feed it
    sets the root logger to DEBUG: every ``log.debug`` of Faust and aiokafka then builds
    a record that no handler writes (9 % of the worker's main thread under the
    end-to-end bench). A child process of the hub has no terminal to spin on.
    """
    worker = Worker(app, loglevel=logging.getLevelName(log_level), quiet=True)
    worker.spinner = None
    return worker


if __name__ == "__main__":
    main()
