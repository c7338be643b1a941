"""bench/migration.py's bootstrap interval of the module/virsh ratio (pure; no lab)."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "kvmfleet_bench_migration_stats", Path(__file__).resolve().parents[2] / "bench" / "migration.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def rows(pairs, key="downtime_ms"):
    out = []
    for i, (module, virsh) in enumerate(pairs):
        out += [{"round": i, "tool": "module", key: module}, {"round": i, "tool": "virsh", key: virsh}]
    return out


def test_too_few_rounds_give_no_interval():
    assert bench.bootstrap_ratio_ci(rows([(10, 10)] * 3), "downtime_ms") is None


def test_an_interval_brackets_a_steady_ratio_and_is_reproducible():
    data = rows([(20 + i, 10 + i / 2) for i in range(12)])
    ci = bench.bootstrap_ratio_ci(data, "downtime_ms")
    assert ci == bench.bootstrap_ratio_ci(data, "downtime_ms")
    assert ci[0] <= 2.0 <= ci[1] and ci[1] - ci[0] < 0.2, ci


def test_rounds_missing_a_tool_are_left_out():
    data = rows([(10, 10)] * 4) + [{"round": 9, "tool": "module", "downtime_ms": 1000}]
    assert bench.bootstrap_ratio_ci(data, "downtime_ms") == [1.0, 1.0]
