"""A local Ray cluster with rerankd's Serve application, for tests and benchmarks run inside `unshare -n`.

Ray listens on every interface whatever address it is given, so the callers run it in a private
network namespace with only the loopback up (`netns_command`); usage stats are off and no
dashboard is started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

NETNS_ENV = "RERANKD_RAY_NETNS"  # set to 1 inside the namespace the runner made


def netns_command(argv: Sequence[str]) -> list[str]:
    """`argv` run inside a new network namespace with the loopback up (and nothing else)."""
    quoted = " ".join(_quote(arg) for arg in argv)
    return ["unshare", "-n", "bash", "-c", f"ip link set lo up && exec {quoted}"]


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def netns_unavailable() -> str | None:
    """Why a private network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    probe = subprocess.run(netns_command(["true"]), capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here: {probe.stderr.strip() or probe.returncode}"
    return None


def start_ray(num_cpus: int = 4) -> None:
    """A local cluster on the loopback (only ever called inside the namespace)."""
    if os.environ.get(NETNS_ENV) != "1":
        raise RuntimeError("Ray is started only inside the private network namespace (tests/test_ray.py)")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        namespace="rerankd-tests",
        logging_level="warning",
        log_to_driver=False,
    )
