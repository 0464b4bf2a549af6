"""Which optional parts of rerankd are installed: `pip install rerankd` is the SDK alone.

The commands (`rerankd serve`, `score`, `bench`) need the engine, the `server` extra. From a bare
install they would otherwise die on `import torch` with a traceback; the CLI asks here first and
says in one line what to install. The answer comes from rerankd's own metadata (the requirements
marked `extra == "server"`), so it stays true when the extra changes.
"""

from __future__ import annotations

import importlib.metadata
import re

SERVER_INSTALL = 'pip install "rerankd[server]"'

# A requirement's distribution name (PEP 508), before any extras, version or marker.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def missing_server_packages() -> list[str]:
    """The `server` extra's distributions that are not installed (empty when all are).

    Also empty when rerankd itself runs from a source tree without metadata: then nothing says
    what the extra holds, and the imports speak for themselves. The markers are read with a plain
    match on `extra == "server"` rather than `packaging` (not a dependency of the bare SDK install).
    """
    try:
        requirements = importlib.metadata.requires("rerankd") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if re.search(r"""extra\s*==\s*["']server["']""", marker):
            name = _NAME.match(spec.strip())
            if name and not _installed(name.group(0)):
                missing.append(name.group(0))
    return missing
