"""Log output of the command line and the daemon: readable text, or one JSON object a line.

JSON lines carry ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, and the ids a log shipper indexes when a call passes them::

    log.info("%s: stored", number, extra={"ticket": number, "source": name})

Only the names in ``FIELDS`` are taken from ``extra``: libraries add their
own attributes to records (uvicorn's ``color_message``), which are noise.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("ticket", "message_id", "sha256", "source", "source_ref", "outcome", "outbox_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # Japanese stays readable; anything not JSON (a Path) becomes its text.
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) in ``fmt``, unless logging is configured already.

    Like ``logging.basicConfig``, which it calls: a host that set up logging
    first (an embedding program, the test runner) keeps its own handlers.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
