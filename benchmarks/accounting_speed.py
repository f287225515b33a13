"""Speed of the accounting core: epsilon for one run, for a 10^4-configuration grid, calibration.

Prints a table, then (last) one JSON line of figures. When dp-accounting is importable it is timed
on the same inputs (it is not a dependency: install it in a separate environment to compare).

    python benchmarks/accounting_speed.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import accounting
from accounting.accountants import _step_rdp_store
from accounting.rdp import _cached_trapezoid_layout

SETTINGS = {
    "A": (256 / 60000, 1.1, 14063, 1e-5),
    "B": (250 / 60000, 1.3, 3600, 1e-5),
    "C": (4 / 100000, 1.2, 500000, 1e-5),
    "D": (1e-3, 0.8, 100000, 1e-6),
}
GRID_RATES = np.geomspace(1e-4, 0.1, 100)
GRID_NOISES = np.linspace(0.6, 5.0, 100)
GRID_STEPS, GRID_DELTA = 1000, 1e-5


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        # Time the computation, not the caches of per-(q, sigma) results and per-sigma layouts
        # (the per-order binomial tables stay: they depend on the orders alone).
        _step_rdp_store.cache_clear()
        _cached_trapezoid_layout.cache_clear()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _ours_epsilon(setting):
    q, sigma, steps, delta = setting
    return accounting.RdpAccountant().compose(q, sigma, steps).get_epsilon(delta)


def _ours_grid():
    return accounting.epsilon_grid(GRID_RATES[:, None], GRID_NOISES[None, :], GRID_STEPS,
                                   GRID_DELTA)[0]


def _peer():
    try:
        import dp_accounting
        from dp_accounting.rdp import rdp_privacy_accountant
    except ImportError:
        return None

    def epsilon(setting):
        q, sigma, steps, delta = setting
        accountant = rdp_privacy_accountant.RdpAccountant()
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
        return accountant.get_epsilon(delta)

    return epsilon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    peer = _peer()
    rows, figures = [], {"machine": f"{platform.machine()} {platform.processor() or ''}".strip()}

    for name, setting in SETTINGS.items():
        ours = _median_seconds(lambda s=setting: _ours_epsilon(s), args.repeats)
        value = _ours_epsilon(setting)
        row = {"case": f"epsilon {name}", "ours_ms": ours * 1e3, "value": value}
        if peer is not None:
            theirs = _median_seconds(lambda s=setting: peer(s), max(3, args.repeats // 3))
            row.update(peer_ms=theirs * 1e3, speedup=theirs / ours, peer_value=peer(setting))
        rows.append(row)
        figures[f"epsilon_{name}_ms"] = round(ours * 1e3, 4)

    grid_seconds = _median_seconds(_ours_grid, max(1, args.repeats // 5))
    per_config = grid_seconds / (GRID_RATES.size * GRID_NOISES.size)
    grid_row = {"case": "grid 10^4 configs, per config", "ours_ms": per_config * 1e3,
                "value": float(np.median(_ours_grid()))}
    if peer is not None:
        sample = [
            (q, s, GRID_STEPS, GRID_DELTA) for q in GRID_RATES[::20] for s in GRID_NOISES[::20]
        ]
        start = time.perf_counter()
        for setting in sample:
            peer(setting)
        peer_per_config = (time.perf_counter() - start) / len(sample)
        grid_row.update(peer_ms=peer_per_config * 1e3, speedup=peer_per_config / per_config)
        figures["grid_speedup_vs_dp_accounting"] = round(peer_per_config / per_config, 2)
    rows.append(grid_row)
    figures["grid_per_config_ms"] = round(per_config * 1e3, 5)

    q, _, steps, delta = SETTINGS["A"]
    for target in (1.0, 3.0, 8.0):
        seconds = _median_seconds(
            lambda t=target: accounting.calibrate_noise_multiplier(t, delta, q, steps),
            max(3, args.repeats // 3),
        )
        sigma = accounting.calibrate_noise_multiplier(target, delta, q, steps)
        rows.append({"case": f"calibrate sigma for eps {target:g} (A)", "ours_ms": seconds * 1e3,
                     "value": sigma})
        figures[f"calibrate_eps{target:g}_ms"] = round(seconds * 1e3, 3)
    if peer is not None:
        figures["epsilon_A_speedup_vs_dp_accounting"] = round(rows[0]["speedup"], 2)

    header = f"{'case':<38} {'ours ms':>10} {'value':>12}"
    if peer is not None:
        header += f" {'dp_acc ms':>10} {'dp_acc value':>13} {'speedup':>8}"
    print(header)
    for row in rows:
        line = f"{row['case']:<38} {row['ours_ms']:>10.4f} {row['value']:>12.6g}"
        if "peer_ms" in row:
            peer_value = f"{row['peer_value']:.6g}" if "peer_value" in row else "-"
            line += f" {row['peer_ms']:>10.4f} {peer_value:>13} {row['speedup']:>7.1f}x"
        print(line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
