"""The acceptance targets a bench run computes, per precision, from its rows.

exact: the HTTP server at the highest concurrency serves ≥ 1.5× the pairs/s of the fastest
*exact* peer (scores within 1e-5 of fp32), its concurrency-1 p50 latency is ≤ 1/1.5 of that
peer's, and rerankd's scores stay within 1e-5 of the fp32 reference. fast: ≥ 1.5× the fastest
peer of any precision, with τ and top-10 agreement no worse than that peer's. Both: a
1,000-item request costs ≤ 11× a 100-item one, the server keeps ≥ 0.9× the in-process
engine's throughput, and the model runs at ≥ 0.4× the fastest native matmul rate measured in a
dtype the precision may use: fp32 for exact (holding fp32 to an AMX bf16 peak, 4× higher,
would measure the CPU, not rerankd), any native dtype for fast.
"""

from __future__ import annotations

from rerankd.bench.agreement import EXACT_TOLERANCE
from rerankd.bench.measure import ModeResult, Target

SPEEDUP = 1.5


def _fastest(rows: list[ModeResult]) -> ModeResult | None:
    return max(rows, key=lambda r: r.pairs_per_s, default=None)


def _by_concurrency(rows: list[ModeResult], mode: str) -> dict[int, ModeResult]:
    return {r.concurrency: r for r in rows if r.mode == mode}


def _against_peer(precision: str, http: dict[int, ModeResult], peer: ModeResult, kind: str) -> list[Target]:
    """Throughput at the highest concurrency and (exact only) p50 latency at concurrency 1 against `peer`."""
    targets: list[Target] = []
    top = max(http)
    detail = f"{peer.name}: {peer.pairs_per_s:.1f} pairs/s, p50 {1000 * peer.latency(50):.0f} ms"
    targets.append(
        Target(
            f"{precision}: http c={top} throughput / fastest {kind}peer",
            http[top].pairs_per_s / peer.pairs_per_s,
            SPEEDUP,
            True,
            precision,
            detail,
        )
    )
    if precision == "exact" and 1 in http:
        ratio = http[1].latency(50) / peer.latency(50)
        name = f"{precision}: http c=1 p50 latency / fastest exact peer"
        targets.append(Target(name, ratio, 1 / SPEEDUP, False, precision, detail))
    return targets


def _agreement_targets(precision: str, row: ModeResult, peer: ModeResult) -> list[Target]:
    """fast: ranking agreement with fp32 no worse than the fastest peer's."""
    if row.agreement is None or peer.agreement is None:
        return []
    mine, theirs = row.agreement, peer.agreement
    return [
        Target(
            f"{precision}: Kendall tau mean vs fp32 / fastest peer's",
            mine.tau_mean,
            round(theirs.tau_mean, 6),
            True,
            precision,
            f"{peer.name}: τ mean {theirs.tau_mean:.4f} (min {theirs.tau_min:.4f}); rerankd min {mine.tau_min:.4f}",
        ),
        Target(
            f"{precision}: top-10 overlap vs fp32 / fastest peer's",
            mine.top10_overlap,
            round(theirs.top10_overlap, 6),
            True,
            precision,
            f"{peer.name}: {theirs.top10_overlap:.3f}",
        ),
    ]


def _matmul_reference(precision: str, machine: dict) -> dict | None:
    """The matmul rate `precision` is held to: float32's for exact, the fastest native dtype's otherwise."""
    if precision == "exact":
        fp32 = [rate for rate in machine.get("matmul_rates", []) if rate.get("dtype") == "float32"]
        if fp32:
            return fp32[0]
    return machine.get("matmul_reference")


def _common(precision: str, rows: list[ModeResult], scale: dict | None, machine: dict) -> list[Target]:
    targets: list[Target] = []
    http, engine = _by_concurrency(rows, "http"), _by_concurrency(rows, "engine")
    shared = sorted(set(http) & set(engine))
    if shared:
        c = shared[-1]
        ratio = http[c].pairs_per_s / engine[c].pairs_per_s
        targets.append(Target(f"{precision}: http c={c} throughput / engine c={c}", ratio, 0.9, True, precision))
    best = max(rows, key=lambda r: r.flops_per_s, default=None)
    reference = _matmul_reference(precision, machine)
    if best is not None and reference:
        ratio = best.flops_per_s / reference["flops_per_s"]
        detail = f"{best.flops_per_s / 1e9:.0f} of {reference['flops_per_s'] / 1e9:.0f} GFLOP/s ({best.label})"
        name = f"{precision}: model FLOP/s / fastest native matmul FLOP/s ({reference['dtype']})"
        targets.append(Target(name, ratio, 0.4, True, precision, detail))
    if scale:
        name = f"{precision}: {scale['big_items']}-item / {scale['small_items']}-item request cost"
        detail = f"{scale['big_s']:.2f}s vs {scale['small_s']:.2f}s (linear {scale['linear_ratio']:.0f}x)"
        targets.append(Target(name, scale["ratio"], 1.1 * scale["linear_ratio"], False, precision, detail))
    return targets


def compute_targets(results: list[ModeResult], scales: dict[str, dict], machine: dict) -> list[Target]:
    """Every target this run's rows allow (one precision's without peers has only the common ones)."""
    peers = [r for r in results if r.mode == "peer"]
    precisions = list(dict.fromkeys(r.precision for r in results if r.precision))
    targets: list[Target] = []
    for precision in precisions:
        rows = [r for r in results if r.precision == precision]
        http = _by_concurrency(rows, "http")
        if precision == "exact":
            peer = _fastest([p for p in peers if p.agreement is not None and p.agreement.exact])
            if peer is not None and http:
                targets += _against_peer(precision, http, peer, "exact ")
            deltas = [r.agreement.max_abs_delta for r in rows if r.agreement is not None]
            if deltas:
                targets.append(
                    Target("exact: max |Δ score| vs fp32 reference", max(deltas), EXACT_TOLERANCE, False, precision)
                )
        elif precision == "fast":
            peer = _fastest(peers)
            if peer is not None and http:
                targets += _against_peer(precision, http, peer, "")
                targets += _agreement_targets(precision, http[max(http)], peer)
        targets += _common(precision, rows, scales.get(precision), machine)
    return targets
