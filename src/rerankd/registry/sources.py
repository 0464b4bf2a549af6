"""Turn a model SOURCE into a local directory in Hugging Face format.

A SOURCE is, in the order tried: a local directory; an installed offline model package
(a catalog entry's `package`, or the package's own name); a Hugging Face id already in the
local cache; a Hugging Face id downloaded from the hub (only when downloads are allowed).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from rerankd.core.errors import Forbidden
from rerankd.models.catalog import catalog

log = logging.getLogger(__name__)

# What a scorer needs from a repository: configs, tokenizers, safetensors weights.
_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*/*.json"]
# Pickled weights only where a repository has no safetensors (loaded with weights_only).
_FALLBACK_PATTERNS = ["pytorch_model*.bin"]


class SourceNotFound(FileNotFoundError):
    """The SOURCE is none of the things it may be."""


# The same words for every source outside the roots: whether the path exists is not the client's to learn.
OUTSIDE_ROOTS = "'source' is outside the directories this server loads models from (--model-root)"


def _explicit_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def _looks_like_path(source: str, roots: Sequence[Path] = ()) -> bool:
    # With roots, only the spelling decides: a lookup relative to the working directory would
    # both load from outside the roots and tell a client which relative paths exist there.
    return _explicit_path(source) or (not roots and Path(source).expanduser().exists())


def check_inside_roots(source: str, roots: Sequence[Path], *, local: bool = False) -> None:
    """With model roots, a source that names a local path must resolve (symlinks, `..`) inside one.

    A model source spelled otherwise (a catalog id, a package, a Hugging Face id) names no local
    path and passes; an adapter source is always `local`. Raises `Forbidden` with one message
    for every refused path, existing or not.
    """
    if not roots or not (local or _explicit_path(source)):
        return
    try:
        real = Path(os.path.realpath(Path(source).expanduser()))
    except (OSError, RuntimeError, ValueError):  # `~nobody`, a NUL byte...
        raise Forbidden(OUTSIDE_ROOTS, param="source") from None
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise Forbidden(OUTSIDE_ROOTS, param="source")


def local_directory(source: str, roots: Sequence[Path] = ()) -> Path:
    """The directory a local source names, checked against the roots (for adapters, always local)."""
    check_inside_roots(source, roots, local=True)
    return Path(source).expanduser()


def package_model_dir(package: str) -> Path | None:
    """Model directory shipped inside an installed Python package, or None if not installed."""
    module_name = package.replace("-", "_")
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    getter = getattr(module, "get_model_path", None)
    if callable(getter):
        return Path(getter())
    for attribute in ("MODEL_DIR", "MODEL_PATH"):
        value = getattr(module, attribute, None)
        if value:
            return Path(value)
    candidate = Path(module.__file__).parent / "model"
    return candidate if candidate.is_dir() else None


def _package_for(source: str) -> str | None:
    spec = catalog().get(source)
    if spec is not None and spec.package:
        return spec.package
    normalized = source.replace("-", "_")
    known = {entry.package for entry in catalog().values() if entry.package}
    return normalized if normalized in known else None


def resolve_source(
    source: str, *, allow_download: bool, revision: str | None = None, roots: Sequence[Path] = ()
) -> Path:
    """A local directory holding the model named by `source` (inside `roots`, when there are any)."""
    if _looks_like_path(source, roots):
        path = local_directory(source, roots)
        if not path.is_dir():
            raise SourceNotFound(f"model directory {source!r} does not exist")
        if not (path / "config.json").exists():
            raise SourceNotFound(f"{source!r} has no config.json: not a Hugging Face model directory")
        return path.resolve()
    package = _package_for(source)
    if package is not None and revision is None:
        directory = package_model_dir(package)
        if directory is not None and directory.is_dir():
            return directory
    return _hub_snapshot(source, allow_download=allow_download, revision=revision)


def _hub_snapshot(repo_id: str, *, allow_download: bool, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as cached_error:
        if not allow_download:
            raise SourceNotFound(
                f"{repo_id!r} is not a local directory, an installed model package or in the Hugging Face "
                f"cache, and downloading is not allowed here ({type(cached_error).__name__})"
            ) from None
    # A download can take minutes: say so when it starts (huggingface_hub draws its progress bars on
    # stderr meanwhile, unless HF_HUB_DISABLE_PROGRESS_BARS=1) and how much it was when it ends.
    log.info("downloading %s from the Hugging Face hub ...", repo_id)
    started = time.perf_counter()
    try:
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_WEIGHT_PATTERNS))
        if not any(path.glob("*.safetensors")):
            path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_FALLBACK_PATTERNS))
        size = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
        log.info("downloaded %s (%.1f MB) in %.1fs", repo_id, size / 1e6, time.perf_counter() - started)
        return path
    except Exception as error:
        raise SourceNotFound(
            f"could not download {repo_id!r} from the Hugging Face hub: {type(error).__name__}: {error}"
        ) from None
