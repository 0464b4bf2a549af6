"""LoRA adapters in PEFT's on-disk format, applied to a loaded network without changing its weights.

Several adapters can be attached to one network at once; the base weights are never merged,
so the base model's scores never change. Each attached adapter adds forward hooks:

* a LoRA target (`nn.Linear`) gets `output + B(A(x)) * scale`, exactly PEFT's unmerged LoRA
  forward at inference (dropout is off);
* a module PEFT saved in full (`modules_to_save`, e.g. a classification head) is re-run with
  the adapter's parameters in place of its own.

Which adapter a forward uses is `LoraHost.active`, set around one batch's forward. That is
only safe because one thread runs every forward of a network (the device's compute thread),
so attaching, detaching and switching must happen there too (or before the network is shared).

Only what the files define is applied: a key this module does not understand, or a PEFT
option that changes the forward in a way it does not implement (DoRA, aLoRA, trainable
tokens...), is refused rather than silently ignored.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rerankd.models.safetensors_files import PICKLE_REFUSED, PickledWeights

PEFT_PREFIX = "base_model.model."
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# PEFT options that change the forward pass in ways these hooks do not reproduce.
_UNSUPPORTED_OPTIONS = (
    "use_dora",
    "lora_bias",
    "use_qalora",
    "alora_invocation_tokens",
    "layer_replication",
    "trainable_token_indices",
    "target_parameters",
    "use_bdlora",
    "arrow_config",
)
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


class AdapterFormatError(ValueError):
    """The directory is not a LoRA adapter this module can apply exactly."""


@dataclass
class LoraAdapter:
    """An adapter read from disk (CPU tensors), not yet attached to any network."""

    source: str
    lora: dict[str, tuple[torch.Tensor, torch.Tensor, float]]  # module path -> (A, B, scale)
    saved: dict[str, torch.Tensor]  # other keys (full modules PEFT saved), by parameter path
    modules_to_save: list[str] = field(default_factory=list)


def _pattern_value(patterns: dict[str, Any], path: str, default: Any) -> Any:
    """PEFT's `rank_pattern`/`alpha_pattern` lookup: the first key matching the module path's end."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", path):
            return value
    return default


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise AdapterFormatError(f"adapter directory {str(directory)!r} does not exist")
    if not path.exists():
        raise AdapterFormatError(f"{str(directory)!r} has no {CONFIG_FILE}: not a PEFT adapter directory")
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise AdapterFormatError(f"{CONFIG_FILE} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise AdapterFormatError(f"{CONFIG_FILE} must hold a JSON object")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise AdapterFormatError(f"only LoRA adapters are supported, this one is {peft_type}")
    enabled = [name for name in _UNSUPPORTED_OPTIONS if config.get(name)]
    if enabled:
        raise AdapterFormatError(f"adapter uses PEFT options rerankd does not implement: {', '.join(enabled)}")
    return config


def _read_tensors(directory: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.exists():
            continue
        if not name.endswith(".safetensors") and not allow_pickle:
            raise PickledWeights(f"the adapter's weights are a pickle ({name}): {PICKLE_REFUSED}")
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:
            raise AdapterFormatError(f"cannot read {name}: {type(error).__name__}: {error}") from None
    raise AdapterFormatError(f"{str(directory)!r} has neither {' nor '.join(WEIGHT_FILES)}")


def read_adapter(directory: Path, *, allow_pickle: bool = False) -> LoraAdapter:
    """Read and check a PEFT LoRA adapter directory; runs in a worker thread."""
    config = _read_config(directory)
    tensors = _read_tensors(directory, allow_pickle)
    alpha = float(config.get("lora_alpha", 8))
    alpha_pattern = config.get("alpha_pattern") or {}
    rslora = bool(config.get("use_rslora"))
    halves: dict[str, dict[str, torch.Tensor]] = {}
    saved: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        path = key.removeprefix(PEFT_PREFIX)
        match = _LORA_KEY.match(path)
        if match:
            halves.setdefault(match["module"], {})[match["part"]] = tensor
        elif ".lora_" in path:
            raise AdapterFormatError(f"unsupported adapter tensor {key!r} (only LoRA on linear layers is supported)")
        else:
            saved[path] = tensor
    lora: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    for module, parts in halves.items():
        if set(parts) != {"A", "B"}:
            raise AdapterFormatError(f"module {module!r} has lora_{next(iter(parts))} without its pair")
        a, b = parts["A"], parts["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            shapes = f"lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}"
            raise AdapterFormatError(f"module {module!r}: {shapes} do not chain")
        rank = a.shape[0]
        module_alpha = float(_pattern_value(alpha_pattern, module, alpha))
        scale = module_alpha / math.sqrt(rank) if rslora else module_alpha / rank
        lora[module] = (a, b, scale)
    if not lora and not saved:
        raise AdapterFormatError("adapter holds no weights")
    return LoraAdapter(
        source=str(directory),
        lora=lora,
        saved=saved,
        modules_to_save=[str(name) for name in config.get("modules_to_save") or []],
    )


class _LoraHook:
    """Forward hook on one `nn.Linear`: adds the active adapter's low-rank update."""

    def __init__(self, host: LoraHost) -> None:
        self.host = host
        self.weights: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        weights = self.weights.get(self.host.active) if self.host.active is not None else None
        if weights is None:
            return None
        a, b, scale = weights
        x = args[0]
        return output + F.linear(F.linear(x.to(a.dtype), a), b).to(output.dtype) * scale


class _SavedModuleHook:
    """Forward hook on a module PEFT saved in full: re-runs it with the active adapter's parameters."""

    def __init__(self, host: LoraHost) -> None:
        self.host = host
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        self._inside = threading.local()

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        params = self.params.get(self.host.active) if self.host.active is not None else None
        if params is None or getattr(self._inside, "value", False):
            return None
        self._inside.value = True  # functional_call runs this module's hooks again: skip the re-entry
        try:
            return torch.func.functional_call(module, params, args, kwargs)
        finally:
            self._inside.value = False


@dataclass
class _Attached:
    lora_modules: list[str]
    saved_modules: list[str]
    nbytes: int


class LoraHost:
    """The adapters attached to one network, and which one (if any) the next forward uses."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self.active: str | None = None
        self._lora_hooks: dict[str, _LoraHook] = {}
        self._saved_hooks: dict[str, _SavedModuleHook] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._attached: dict[str, _Attached] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._attached

    def nbytes(self, key: str) -> int:
        return self._attached[key].nbytes

    def attach(self, key: str, adapter: LoraAdapter) -> int:
        """Attach `adapter` under `key`; returns the bytes its tensors hold on the device.

        Everything is checked before anything changes, so a refused adapter leaves the network
        exactly as it was.
        """
        if key in self._attached:
            raise ValueError(f"adapter key {key!r} is already attached")
        modules = dict(self.network.named_modules())
        lora: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
        for path, (a, b, scale) in adapter.lora.items():
            module = modules.get(path)
            if module is None:
                raise AdapterFormatError(f"adapter targets {path!r}, which this model does not have")
            if not isinstance(module, nn.Linear):
                raise AdapterFormatError(
                    f"adapter targets {path!r}, a {type(module).__name__}; only nn.Linear targets are supported"
                )
            if a.shape[1] != module.in_features or b.shape[0] != module.out_features:
                raise AdapterFormatError(
                    f"adapter for {path!r} is {b.shape[0]}x{a.shape[1]}, the model's layer is "
                    f"{module.out_features}x{module.in_features}: it was trained for another model"
                )
            weight = module.weight
            lora[path] = (a.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype), scale)
        saved = self._resolve_saved(adapter, modules)
        for path, weights in lora.items():
            hook = self._lora_hooks.get(path)
            if hook is None:
                hook = self._lora_hooks[path] = _LoraHook(self)
                self._handles.append(modules[path].register_forward_hook(hook))
            hook.weights[key] = weights
        for path, params in saved.items():
            saved_hook = self._saved_hooks.get(path)
            if saved_hook is None:
                saved_hook = self._saved_hooks[path] = _SavedModuleHook(self)
                self._handles.append(modules[path].register_forward_hook(saved_hook, with_kwargs=True))
            saved_hook.params[key] = params
        nbytes = sum(t.numel() * t.element_size() for a, b, _ in lora.values() for t in (a, b))
        nbytes += sum(t.numel() * t.element_size() for params in saved.values() for t in params.values())
        self._attached[key] = _Attached(list(lora), list(saved), nbytes)
        return nbytes

    def _resolve_saved(self, adapter: LoraAdapter, modules: dict[str, nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
        """Group non-LoRA tensors by the `modules_to_save` module they replace."""
        saved: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in adapter.saved.items():
            owner = self._saved_owner(key, adapter.modules_to_save, modules)
            if owner is None:
                raise AdapterFormatError(
                    f"adapter tensor {key!r} is neither LoRA nor part of a modules_to_save module "
                    f"({adapter.modules_to_save}); trained biases or embeddings are not supported"
                )
            name = key[len(owner) + 1 :]
            own = dict(modules[owner].named_parameters()) | dict(modules[owner].named_buffers())
            if name not in own:
                raise AdapterFormatError(f"adapter tensor {key!r}: module {owner!r} has no {name!r}")
            if tuple(own[name].shape) != tuple(tensor.shape):
                raise AdapterFormatError(
                    f"adapter tensor {key!r} has shape {tuple(tensor.shape)}, the model's is {tuple(own[name].shape)}"
                )
            target = own[name]
            saved.setdefault(owner, {})[name] = tensor.to(target.device, target.dtype)
        for owner, params in saved.items():
            expected = {name for name, _ in modules[owner].named_parameters()}
            missing = sorted(expected - set(params))
            if missing:
                raise AdapterFormatError(f"adapter saves module {owner!r} without {missing}")
        return saved

    @staticmethod
    def _saved_owner(key: str, modules_to_save: list[str], modules: dict[str, nn.Module]) -> str | None:
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            path = ".".join(parts[:cut])
            if path in modules and any(path == name or path.endswith("." + name) for name in modules_to_save):
                return path
        return None

    def detach(self, key: str) -> None:
        """Forget `key`'s tensors; hooks stay (they pass through when no adapter of theirs is active)."""
        attached = self._attached.pop(key, None)
        if attached is None:
            return
        for path in attached.lora_modules:
            self._lora_hooks[path].weights.pop(key, None)
        for path in attached.saved_modules:
            self._saved_hooks[path].params.pop(key, None)

    def close(self) -> None:
        """Detach every adapter, remove the hooks and let go of the network (its version is being freed)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._lora_hooks.clear()
        self._saved_hooks.clear()
        self._attached.clear()
        self.network = None  # type: ignore[assignment]

    @contextmanager
    def activate(self, key: str | None) -> Iterator[None]:
        """Use `key`'s adapter for forwards inside the block (on the compute thread only)."""
        previous = self.active
        self.active = key
        try:
            yield
        finally:
            self.active = previous
