"""Memory given back: `malloc_trim` returns freed heap pages, and the engine trims once when idle."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path

import pytest

from rerankd.core import memory
from rerankd.core.memory import IdleTrim, malloc_trim

glibc_only = pytest.mark.skipif(memory._LIBC is None, reason="needs glibc's malloc_trim")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@glibc_only
def test_malloc_trim_returns_freed_heap_pages():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, count = 64 * 1024, 2400  # 150 MiB of heap blocks (under the mmap threshold: they stay in the arena)
    blocks = [libc.malloc(size) for _ in range(count)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    for block in blocks[:-1]:  # the last one keeps the heap's top: free() alone cannot shrink it
        libc.free(block)
    kept = rss_bytes()
    malloc_trim()
    trimmed = rss_bytes()
    libc.free(blocks[-1])
    assert kept - trimmed > 100 * 2**20, (kept, trimmed)


@glibc_only
async def test_idle_trim_runs_once_when_the_last_request_ends():
    trim = IdleTrim(0.05)
    trim.enter()
    trim.enter()
    trim.leave()
    await asyncio.sleep(0.2)
    assert trim.trims == 0  # one request still running
    trim.leave()
    await asyncio.sleep(0.5)
    assert trim.trims == 1
    trim.enter()
    trim.leave()
    trim.enter()  # a request came before the delay ran out: no trim under load
    await asyncio.sleep(0.2)
    assert trim.trims == 1
    trim.leave()


def test_no_delay_means_never():
    assert IdleTrim(None).delay is None
