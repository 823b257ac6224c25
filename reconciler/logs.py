"""JSON log lines with the keys `flux logs` reads: ts, level, logger, msg, error, name, namespace.

One object per line. Only the message and a fixed set of context keys are written; callers pass
them as `extra` (`controllerKind`, `objectName`, `objectNamespace`, `revision`, `reconcileID`:
logging reserves `name` for the logger) and they come out under flux's keys (`name`,
`namespace`, ...); an exception becomes its one-line message
under `error`, never a traceback. Callers must pass only names, revisions and reasons as context:
this formatter does not (and cannot) mask values it is handed; the third-party loggers that
print whole API bodies at DEBUG are held at INFO.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

__all__ = ["BODY_LOGGERS", "CONTEXT_KEYS", "JsonFormatter", "configure"]

# Record attribute -> JSON key.
CONTEXT_KEYS = {
    "controllerKind": "controllerKind",
    "objectName": "name",
    "objectNamespace": "namespace",
    "revision": "revision",
    "reconcileID": "reconcileID",
}


class JsonFormatter(logging.Formatter):
    """Format records as flux-style JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, keys in a stable order."""
        line: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for attribute, key in CONTEXT_KEYS.items():
            value = record.__dict__.get(attribute)
            if value is not None:
                line[key] = str(value)
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = str(record.exc_info[1])
        return json.dumps(line, ensure_ascii=False)


# Loggers that write whole request or response bodies at DEBUG (the Kubernetes client logs every
# response body, Secrets included): they stay at INFO whatever level the operator asks for.
BODY_LOGGERS = ("kubernetes.client.rest", "urllib3")


def configure(level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr as JSON lines.

    Even at DEBUG, the loggers in `BODY_LOGGERS` stay at INFO, so no object body (and no
    Secret value in one) reaches the log.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in BODY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
