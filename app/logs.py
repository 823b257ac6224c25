"""JSON log lines for the service: one object per line, with the delivery and job ids it concerns.

A record's `delivery`, `job`, `event` and `result` extras become fields, so a delivery can be
followed from acknowledgement to published report. Only what the code logs is written: payloads,
tokens and keys are never logged by the service, and this formatter adds nothing from the
environment.
"""

from __future__ import annotations

import json
import logging
import time

__all__ = ["FIELDS", "JsonFormatter", "configure"]

FIELDS = ("delivery", "job", "event", "result", "attempt", "state", "seconds")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as `{"time", "level", "logger", "message", ...extras}`."""
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["trace"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send every log record of the process to standard error as JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
