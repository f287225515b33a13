"""Speed of the accounting core: epsilon for one run, for a 10^4-configuration grid, calibration,
and the tight PLD accountant against dp_accounting's PLD and Opacus's PRV accountant.

Prints tables, then (last) one JSON line of figures. When dp-accounting / Opacus are importable
they are timed on the same inputs (they are not dependencies: install them in a separate
environment to compare, as ``make bench`` does).

PLD rows: dp_accounting's certified bracket is its optimistic and pessimistic PLD on its default
grid (1e-4); its time is the pessimistic estimate alone (``PLDAccountant``'s answer, what its users
call); Opacus's PRV answer at ``eps_error`` e is an upper bound
with a bracket about 2e wide. For each, ours runs at the loosest tolerance of ``TOLERANCES``
whose bracket is no wider *and* whose upper bound is no larger than the peer's.

    python benchmarks/accounting_speed.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
from settings import SETTINGS  # the standard settings A-D: name -> (q, sigma, steps, delta)

import accounting

GRID_RATES = np.geomspace(1e-4, 0.1, 100)
GRID_NOISES = np.linspace(0.6, 5.0, 100)
GRID_STEPS, GRID_DELTA = 1000, 1e-5
#: Tolerances tried, loosest first, when matching a peer's width and upper bound.
TOLERANCES = (0.3, 0.1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
PLD_GRID = 1e-4  # dp_accounting's default value_discretization_interval
PRV_EPS_ERROR = 0.01


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        # Time the computation, not the caches of per-(q, sigma) results and per-sigma layouts
        # (the per-order binomial tables stay: they depend on the orders alone).
        accounting.clear_caches(tables=False)
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


def ours_pld(setting, tolerance: float):
    """Our certified bracket at ``tolerance`` for ``setting = (q, sigma, steps, delta)``."""
    q, sigma, steps, delta = setting
    return accounting.PldAccountant(tolerance=tolerance).compose(q, sigma, steps) \
        .get_epsilon_bounds(delta)


def matched_pld(setting, width: float, upper: float, repeats: int):
    """Ours at the loosest tolerance whose bracket is no wider than ``width`` and whose upper
    bound is no larger than ``upper``: ``(tolerance, median seconds, bounds)`` or ``None``."""
    for tolerance in TOLERANCES:
        bounds = ours_pld(setting, tolerance)
        if bounds.width <= width and bounds.upper <= upper:
            seconds = _median_seconds(lambda t=tolerance: ours_pld(setting, t), repeats)
            return tolerance, seconds, bounds
    return None


def dp_accounting_pld_epsilon(pld_module, setting, pessimistic: bool) -> float:
    """dp_accounting's PLD epsilon on its default grid ``PLD_GRID``: the pessimistic
    (connect-the-dots) estimate is its upper bound, the optimistic one its lower bound.
    ``pld_module`` is ``dp_accounting.pld.privacy_loss_distribution``."""
    q, sigma, steps, delta = setting
    pld = pld_module.from_gaussian_mechanism(
        standard_deviation=sigma, sampling_prob=q, pessimistic_estimate=pessimistic,
        value_discretization_interval=PLD_GRID, use_connect_dots=pessimistic,
    )
    return pld.self_compose(steps).get_epsilon_for_delta(delta)


def opacus_prv_epsilon(prv_accountant_class, setting, eps_error: float):
    """Opacus's certified upper bound (its public answer) at ``eps_error`` and the accountant
    that gave it. ``prv_accountant_class`` is ``opacus.accountants.PRVAccountant``."""
    q, sigma, steps, delta = setting
    accountant = prv_accountant_class()
    accountant.history = [(sigma, q, steps)]
    return accountant.get_epsilon(delta, eps_error=eps_error), accountant


def _pld_peers():
    """``{name: (timed(setting), bracket(setting) -> (lower, upper))}`` for the importable
    peers: ``timed`` is the call the peer's users make."""
    peers = {}
    try:
        from dp_accounting.pld import privacy_loss_distribution as pld_module
    except ImportError:
        pld_module = None
    if pld_module is not None:
        peers["dp_accounting PLD"] = (
            lambda s: dp_accounting_pld_epsilon(pld_module, s, True),
            lambda s: (dp_accounting_pld_epsilon(pld_module, s, False),
                       dp_accounting_pld_epsilon(pld_module, s, True)),
        )
    try:
        from opacus.accountants import PRVAccountant
    except ImportError:
        PRVAccountant = None  # noqa: N806
    if PRVAccountant is not None:

        def opacus_prv(setting):
            upper, _ = opacus_prv_epsilon(PRVAccountant, setting, PRV_EPS_ERROR)
            return upper - 2 * PRV_EPS_ERROR, upper

        peers[f"Opacus PRV {PRV_EPS_ERROR:g}"] = (opacus_prv, opacus_prv)
    return peers


def pld_rows(repeats: int):
    """Per setting: ours at the default tolerance, each peer, and ours matched to the peer."""
    rows = []
    peers = _pld_peers()
    for name, setting in SETTINGS.items():
        seconds = _median_seconds(lambda s=setting: ours_pld(s, 1e-3), repeats)
        bounds = ours_pld(setting, 1e-3)
        rows.append({"setting": name, "who": "ours tol 1e-3", "lower": bounds.lower,
                     "upper": bounds.upper, "ms": seconds * 1e3})
        for peer, (call, bracket) in peers.items():
            theirs = _median_seconds(lambda f=call, s=setting: f(s), max(1, repeats // 3))
            lower, upper = bracket(setting)
            rows.append({"setting": name, "who": peer, "lower": lower, "upper": upper,
                         "ms": theirs * 1e3})
            matched = matched_pld(setting, upper - lower, upper, repeats)
            if matched is None:
                rows.append({"setting": name, "who": f"ours vs {peer}: no tolerance matches"})
                continue
            tolerance, seconds, bounds = matched
            rows.append({"setting": name, "who": f"ours tol {tolerance:g} (vs {peer})",
                         "lower": bounds.lower, "upper": bounds.upper, "ms": seconds * 1e3,
                         "speedup": theirs / seconds})
    return rows


def _print_pld(rows) -> None:
    print(f"\n{'PLD setting / who':<46} {'lower':>9} {'upper':>9} {'width':>9} {'ms':>9} "
          f"{'speedup':>8}")
    for row in rows:
        label = f"{row['setting']} {row['who']}"
        if "upper" not in row:
            print(label)
            continue
        speedup = f"{row['speedup']:.1f}x" if "speedup" in row else ""
        print(f"{label:<46} {row['lower']:>9.5f} {row['upper']:>9.5f} "
              f"{row['upper'] - row['lower']:>9.2g} {row['ms']:>9.2f} {speedup:>8}")


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
    pld = pld_rows(max(3, args.repeats // 3))
    _print_pld(pld)
    for row in pld:
        if row["who"] == "ours tol 1e-3":
            figures[f"pld_{row['setting']}_ms"] = round(row["ms"], 2)
            figures[f"pld_{row['setting']}_width"] = float(f"{row['upper'] - row['lower']:.3g}")
        elif "speedup" in row:
            peer = "dp_accounting" if "dp_accounting" in row["who"] else "opacus_prv"
            figures[f"pld_{row['setting']}_speedup_vs_{peer}"] = round(row["speedup"], 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
