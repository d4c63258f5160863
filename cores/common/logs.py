"""Logging for the cores: one line per event, the module's name in every line, ``-v`` levels.

Every logger is named ``kubeedge.<module>`` (``kubeedge.cloudhub``, ``kubeedge.edged`` ...); the
line shows the part after ``kubeedge.``. Verbosity 0 logs INFO and up, 1 adds our DEBUG lines,
2 adds DEBUG from the libraries underneath (websockets, asyncio ...).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-5s %(module_name)s: %(message)s"


class _ModuleNameFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        record.module_name = name[len("kubeedge.") :] if name.startswith("kubeedge.") else name
        return True


def setup(verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send log lines to ``stream`` (stderr by default) at the level ``verbosity`` asks for."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = logging.Formatter(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_ModuleNameFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    logging.getLogger("kubeedge").setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
    # Libraries log each connection at INFO; our modules already say what matters about them.
    for noisy in ("websockets", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
