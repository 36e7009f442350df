"""``fraudstream bench``'s result as text: the latency figures per offered load, the load's
shape, the slowest seconds, the machine's core speed, throughput and where the CPU went."""

from __future__ import annotations

__all__ = ["table"]


def table(result: dict) -> str:
    """The latency figures as a small text table."""
    lines = [f"{'offered tx/s':>12} {'achieved':>9} {'pipe p50':>9} {'pipe p99':>9} "
             f"{'hist p99<=':>10} {'loop p99<=':>10} {'pass p50':>9} {'pass p99':>9} "
             f"{'p99 ratio':>9}"]
    for rate, row in result["latency_by_offered_tps"].items():
        p, t = row["pipeline"], row["passthrough"]
        lines.append(f"{rate:>12} {p['achieved_tps'] or 0:>9,.0f} {p['p50']:>9.1f} {p['p99']:>9.1f} "
                     f"{p['histogram_p99_le'] or 0:>10} {p.get('loop_lag_p99_le') or 0:>10} "
                     f"{t['p50']:>9.1f} {t['p99']:>9.1f} "
                     f"{row['p99_ratio'] or 0:>9}")
    if result["latency_by_offered_tps"]:
        bursts = ", ".join(f"{rate}: {row['pipeline'].get('burst_10ms_p99', 0):g}"
                           for rate, row in result["latency_by_offered_tps"].items())
        lines.append(f"load: {result.get('arrivals', 'pv')} arrivals, "
                     f"{result.get('load_streams', 1)} paced stream(s) per topic, "
                     f"{result.get('warmup_seconds', 0):g} s warm-up; "
                     f"transactions per 10 ms, p99 ({bursts})")
        for rate, row in result["latency_by_offered_tps"].items():
            cores = [(side, row[side].get("cpu_cores")) for side in ("pipeline", "passthrough")]
            if all(c for _, c in cores):
                lines.append(f"cores busy at {rate} tx/s: " + "; ".join(
                    f"{side} {c['total']:g} (scoring {c['scoring']:g}, label process "
                    f"{c['labels']:g}, broker {c['broker']:g})" for side, c in cores))
            worst = row["pipeline"].get("slowest_seconds") or []
            if worst:
                lines.append(f"pipeline at {rate} tx/s, slowest seconds of the load: " + ", ".join(
                    f"s{w['second']} p99 {w['p99']:g} max {w['max']:g} "
                    f"({w['over_p99']} over the load's p99)" for w in worst))
    speed = result.get("core_speed_ms")
    if speed:
        lines.append(f"core speed (a fixed Python workload, lower is faster; runs compare where "
                     f"it agrees): {speed['before']:g} ms before, {speed['after']:g} ms after")
    if result["pipeline_tps"] is not None:
        lines.append(f"throughput (labels {result['labels']}, label process "
                     f"{result['label_process']}): pipeline {result['pipeline_tps']:,.0f} tx/s "
                     f"({result['pipeline_scoring_tps']:,.0f} to the last score), passthrough "
                     f"{result['passthrough_tps']:,.0f} tx/s, ratio {result['ratio']} "
                     f"(scores only {result['scoring_ratio']})")
    for side, c in (result.get("cpu_per_tx") or {}).items():
        if c:
            lines.append(f"CPU a transaction, {side}: {c['total_us']:g} us (scoring "
                         f"{c['scoring_us']:g}, label process {c['labels_us']:g}, broker "
                         f"{c['broker_us']:g}, bench {c['harness_us']:g}), "
                         f"{c['busy_cores']} cores busy over {c['seconds']:g} s")
    if result.get("ratio_cpu_bound") is not None:
        lines.append(f"the throughput ratio the pipeline's CPU a transaction allows on "
                     f"{result['cores']} busy cores: {result['ratio_cpu_bound']}")
    return "\n".join(lines)
