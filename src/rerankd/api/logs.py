"""Log formats: `text` for people at a terminal (the default), `json` for log pipelines.

JSON is one object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`, and
every field the code passed as `extra` (the access log's `request_id`, `route`, `status`...),
plus `exception` when there is one. Hand-written rather than python-json-logger: the
format is these twenty lines, and a dependency for it would be one more thing to install
and keep in step; `json.dumps(default=str)` copes with any extra value.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# What every LogRecord has: anything else on a record came in through `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    """The root logger for `rerankd serve`; uvicorn's loggers propagate to it (its own config is off)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
