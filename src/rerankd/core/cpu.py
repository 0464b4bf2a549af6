"""What this x86 (or other) CPU can do, read once at start-up from `/proc/cpuinfo` and sysfs.

rerankd lands on very different CPUs: Sapphire Rapids with AMX (bf16 ~8x fp32), EPYCs with
AVX-512-BF16 (bf16 ~2.5x fp32) and EPYCs with AVX2 only, where bf16 is emulated and far slower
than fp32. Every dtype and backend choice starts from this record, so it is also what
`GET /v1/models` and `rerankd bench` print.

The kernels' own caps count as well: `ONEDNN_MAX_CPU_ISA` and `ATEN_CPU_CAPABILITY` stop
oneDNN and PyTorch from using instructions the CPU has, so a feature above either cap is
reported as absent (this is also how an AVX2-only machine is emulated on a bigger one).
Standard library only: the core knows no torch.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

# Flags (as /proc/cpuinfo spells them) that decide numerics and kernels.
FEATURES = (
    "sse4_2",
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# Instruction-set tiers, lowest first; a cap keeps the features of its tier and below.
_TIERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("sse", frozenset({"sse4_2"})),
    ("avx2", frozenset({"avx2", "fma"})),
    ("avx2_vnni", frozenset({"avx_vnni"})),
    ("avx512", frozenset({"avx512f", "avx512bw", "avx512vl"})),
    ("avx512_vnni", frozenset({"avx512_vnni"})),
    ("avx512_bf16", frozenset({"avx512_bf16", "avx512_fp16"})),
    ("amx", frozenset({"amx_tile", "amx_bf16", "amx_int8"})),
)

# oneDNN's ONEDNN_MAX_CPU_ISA values and PyTorch's ATEN_CPU_CAPABILITY values -> tier.
_ONEDNN_CAPS = {
    "SSE41": "sse",
    "AVX": "sse",
    "AVX2": "avx2",
    "AVX2_VNNI": "avx2_vnni",
    "AVX2_VNNI_2": "avx2_vnni",
    "AVX512_CORE": "avx512",
    "AVX512_CORE_VNNI": "avx512_vnni",
    "AVX512_CORE_BF16": "avx512_bf16",
    "AVX10_1_512": "avx512_bf16",
    "AVX512_CORE_FP16": "avx512_bf16",
    "AVX10_1_512_AMX": "amx",
    "AVX512_CORE_AMX": "amx",
    "AVX10_1_512_AMX_FP16": "amx",
    "AVX512_CORE_AMX_FP16": "amx",
}
_ATEN_CAPS = {"default": "sse", "avx2": "avx2", "avx512": "avx512_bf16"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the kernels may use it."""

    model: str | None
    vendor: str | None
    features: frozenset[str]  # of FEATURES, after the caps
    hardware_features: frozenset[str]  # of FEATURES, as the CPU reports them
    cap: str | None  # the env cap in force ("ONEDNN_MAX_CPU_ISA=AVX2"), if any
    logical_cpus: int
    usable_cpus: int  # this process's affinity mask
    physical_cores: int | None
    caches: dict[str, int]  # "L1d", "L2", "L3": bytes per instance

    @property
    def amx(self) -> bool:
        return {"amx_tile", "amx_bf16"} <= self.features

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix products in hardware (AMX or AVX-512-BF16); elsewhere bf16 is emulated."""
        return self.amx or "avx512_bf16" in self.features

    @property
    def bf16_kernel(self) -> str | None:
        if self.amx:
            return "amx"
        return "avx512_bf16" if "avx512_bf16" in self.features else None

    @property
    def int8_kernel(self) -> str | None:
        """The int8 dot product instructions: AMX, VNNI (512 or 256 bit), or AVX2's slower pairwise form."""
        if "amx_int8" in self.features:
            return "amx_int8"
        for name in ("avx512_vnni", "avx_vnni", "avx2"):
            if name in self.features:
                return name
        return None

    @property
    def vector_isa(self) -> str:
        if "avx512f" in self.features:
            return "avx512"
        return "avx2" if "avx2" in self.features else "sse"

    @property
    def signature(self) -> str:
        """What makes a timing measured on this CPU valid on another: model, usable CPUs, features."""
        return f"{self.model or 'unknown'}|{self.usable_cpus}|{','.join(sorted(self.features))}"

    def summary(self) -> dict:
        return {
            "model": self.model,
            "vendor": self.vendor,
            "logical_cpus": self.logical_cpus,
            "usable_cpus": self.usable_cpus,
            "physical_cores": self.physical_cores,
            "caches_bytes": dict(self.caches),
            "features": sorted(self.features),
            "cap": self.cap,
            "vector_isa": self.vector_isa,
            "native_bf16": self.native_bf16,
            "bf16_kernel": self.bf16_kernel,
            "int8_kernel": self.int8_kernel,
        }

    def describe(self) -> str:
        """One log line."""
        bf16 = f"bf16 native ({self.bf16_kernel})" if self.native_bf16 else "bf16 emulated"
        cores = f"{self.usable_cpus} usable CPUs" + (f" of {self.physical_cores} cores" if self.physical_cores else "")
        cap = f", capped by {self.cap}" if self.cap else ""
        l3 = self.caches.get("L3")
        cache = f", L3 {l3 // 2**20} MiB" if l3 else ""
        return (
            f"{self.model or 'unknown CPU'}: {cores}, {self.vector_isa}, {bf16}, "
            f"int8 {self.int8_kernel or 'none'}{cache}{cap}"
        )


def parse_cpuinfo(text: str) -> tuple[str | None, str | None, frozenset[str], int, int | None]:
    """(model, vendor, flags of FEATURES, logical CPUs, physical cores) from /proc/cpuinfo's text."""
    model = vendor = None
    flags: set[str] = set()
    logical = 0
    cores: set[tuple[str, str]] = set()
    physical = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            logical += 1
        elif key == "model name" and model is None:
            model = value
        elif key == "vendor_id" and vendor is None:
            vendor = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        if key == "core id" and physical is not None:
            cores.add((physical, core or ""))
    return model, vendor, frozenset(flags) & frozenset(FEATURES), logical, (len(cores) or None)


def _tier_of(env: dict[str, str]) -> tuple[int | None, str | None]:
    """The lowest tier an env cap allows, and which variable set it."""
    best: tuple[int | None, str | None] = (None, None)
    names = [tier for tier, _ in _TIERS]
    for variable, table in (("ONEDNN_MAX_CPU_ISA", _ONEDNN_CAPS), ("ATEN_CPU_CAPABILITY", _ATEN_CAPS)):
        value = env.get(variable)
        if not value:
            continue
        tier = table.get(value.upper() if table is _ONEDNN_CAPS else value.lower())
        if tier is None:
            continue
        index = names.index(tier)
        if best[0] is None or index < best[0]:
            best = (index, f"{variable}={value}")
    return best


def apply_caps(features: frozenset[str], env: dict[str, str]) -> tuple[frozenset[str], str | None]:
    """`features` without those above the tier that `ONEDNN_MAX_CPU_ISA` / `ATEN_CPU_CAPABILITY` allow."""
    index, cap = _tier_of(env)
    if index is None:
        return features, None
    allowed: set[str] = set()
    for _, names in _TIERS[: index + 1]:
        allowed |= names
    return features & frozenset(allowed), cap


def read_caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, int]:
    """Sizes of cpu0's data and unified caches, by level ("L1d", "L2", "L3")."""
    caches: dict[str, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        name = f"L{level}d" if kind == "Data" else f"L{level}"
        caches[name] = _size_bytes(size)
    return caches


def _size_bytes(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def build_info(cpuinfo_text: str, env: dict[str, str], caches: dict[str, int], usable: int) -> CpuInfo:
    model, vendor, flags, logical, physical = parse_cpuinfo(cpuinfo_text)
    features, cap = apply_caps(flags, env)
    return CpuInfo(
        model=model,
        vendor=vendor,
        features=features,
        hardware_features=flags,
        cap=cap,
        logical_cpus=logical or (os.cpu_count() or 1),
        usable_cpus=usable,
        physical_cores=physical,
        caches=caches,
    )


@functools.cache
def detect() -> CpuInfo:
    """This machine's CPU (cached for the process: the flags do not change while it runs)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return build_info(text, dict(os.environ), read_caches(), usable)
