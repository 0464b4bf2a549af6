"""Where compiled networks and calibration choices are kept between runs, keyed by what they depend on.

A compiled network depends on the checkpoint's bytes (weights, config), the graph rerankd
builds from it and the library versions that built it; a calibration choice also depends on
the tokenizer, the calibration texts and the CPU it was timed on. Keys hash exactly those, so
a changed file or an upgrade compiles afresh and nothing stale is ever read. Writes are atomic
(written aside, then renamed), so concurrent processes never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the graph rerankd builds (models/graphs.py) or how it is compiled changes.
GRAPH_VERSION = 1

# Files whose bytes decide the network and the scores.
_CHECKPOINT_PATTERNS = ("config.json", "tokenizer.json", "*.safetensors", "*.bin")
_CHUNK = 1 << 22


def cache_root(configured: Path | None) -> Path:
    """`--cache-dir`, else `$XDG_CACHE_HOME/rerankd` (~/.cache/rerankd)."""
    if configured is not None:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerankd"


def checkpoint_digest(model_dir: Path) -> str:
    """sha256 over the names and bytes of the files that make the checkpoint (first 16 hex digits)."""
    digest = hashlib.sha256()
    files = sorted({path for pattern in _CHECKPOINT_PATTERNS for path in model_dir.glob(pattern) if path.is_file()})
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def key(*parts: Any) -> str:
    """A short stable hash of `parts` (their JSON form)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Write atomically; a cache that cannot be written is only a slower next start."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text(json.dumps(data, indent=1, sort_keys=True))
        staging.replace(path)
    except OSError as error:
        log.warning("could not write %s (%s): the next start calibrates again", path, error)
