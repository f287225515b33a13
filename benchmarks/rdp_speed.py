"""Speed of the RDP core side by side with dp-accelerator 0.1.0 and dp_accounting's RDP.

Rows (each peer timed on the same inputs in the same process, in interleaved rounds; medians):

- ``curve K``: epsilon for K step counts at one (q, sigma), setting A's (q, sigma, delta).
  Ours: :func:`accounting.rdp.epsilon_curve`. dp-accelerator: ``compute_epsilon_batch`` with its
  own orders (those of its ``DPSGDAccountant``). dp_accounting: a fresh ``RdpAccountant`` per
  step count (its documented use), timed on at most 50 of the counts and scaled to K.
- ``single X``: one epsilon for setting X. Ours: ``epsilon_curve`` with one step count and the
  public ``compute_epsilon`` (RdpAccountant); the peers as above with one count.
- ``grid``: the 100 x 100 (q, sigma) grid of ``accounting_speed.py`` at 1000 steps. Ours:
  ``accounting.epsilon_grid`` (all at once); the peers per configuration on an evenly spread
  sample, per configuration.

Our caches of per-(q, sigma) results are cleared before every call of ours. Epsilon ratios
ours / peer are reported per row (min and max): our default orders differ from the peers', so at
a given step count either side can land closer to the best order; with the peer's orders added
to ours our epsilon is never above the peer's (checked in ``tests/test_peers_rdp_speed.py``).

    python benchmarks/rdp_speed.py [--repeats N] [--quick]

Prints a table, then (last) one JSON line with every row.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
import warnings

import numpy as np
from accounting_speed import GRID_DELTA, GRID_NOISES, GRID_RATES, GRID_STEPS
from settings import SETTINGS

import accounting
from accounting.rdp import epsilon_curve

SETTING_A = SETTINGS["A"]
STEPS_PER_EPOCH_A = 235  # ceil(60000 / 256)


def _import(name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a peer that fails to import is skipped
        return None


def _peer_orders(dp_accelerator) -> list[float]:
    return list(dp_accelerator.DPSGDAccountant(1.0, 1, 2).orders)


def _dp_accounting_epsilon(dpa, q, sigma, steps, delta) -> float:
    accountant = dpa.rdp.RdpAccountant()
    accountant.compose(dpa.SelfComposedDpEvent(
        dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), int(steps)))
    return accountant.get_epsilon(delta)


def _interleaved(functions: dict, repeats: int) -> tuple[dict, dict]:
    """Median seconds and last result of each function, called in turn in every round."""
    times = {name: [] for name in functions}
    results = {}
    for _ in range(repeats):
        for name, function in functions.items():
            accounting.clear_caches(tables=False)
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, results


def _ratios(ours, theirs) -> tuple[float, float]:
    ratio = np.asarray(ours, dtype=float) / np.asarray(theirs, dtype=float)
    return float(ratio.min()), float(ratio.max())


def curve_rows(peers: dict, repeats: int, quick: bool) -> list[dict]:
    q, sigma, _, delta = SETTING_A
    cases = {
        "curve 100 (epochs 1..100)": STEPS_PER_EPOCH_A * np.arange(1, 101),
        "curve 100 (100..1e5 steps)": np.linspace(100, 100_000, 100).round().astype(np.int64),
        "curve 10^4 (100..1e6 steps)": np.linspace(100, 1_000_000, 10_000).round()
        .astype(np.int64),
    }
    rows = []
    for name, steps in cases.items():
        counts = steps.tolist()
        functions = {"ours": lambda steps=steps: epsilon_curve(q, sigma, steps, delta)[0]}
        if "dp_accelerator" in peers:
            batch, orders = peers["dp_accelerator"].compute_epsilon_batch, peers["dpacc_orders"]
            functions["dp_accelerator"] = (
                lambda batch=batch, counts=counts, orders=orders:
                batch(q, sigma, counts, orders, delta))
        seconds, results = _interleaved(functions, repeats if steps.size < 1000 else
                                        max(3, repeats // 3))
        row = {"case": name, "K": int(steps.size), "ours_ms": seconds["ours"] * 1e3}
        if "dp_accelerator" in functions:
            row["dp_accelerator_ms"] = seconds["dp_accelerator"] * 1e3
            row["speedup_vs_dp_accelerator"] = seconds["dp_accelerator"] / seconds["ours"]
            row["eps_ratio_min"], row["eps_ratio_max"] = _ratios(results["ours"],
                                                                 results["dp_accelerator"])
        if "dp_accounting" in peers:
            sample = steps[:: max(1, steps.size // (10 if quick else 50))]
            start = time.perf_counter()
            theirs = [_dp_accounting_epsilon(peers["dp_accounting"], q, sigma, t, delta)
                      for t in sample]
            row["dp_accounting_ms"] = (time.perf_counter() - start) / sample.size * steps.size * 1e3
            row["speedup_vs_dp_accounting"] = row["dp_accounting_ms"] / row["ours_ms"]
            row["dp_accounting_eps_ratio_min"], row["dp_accounting_eps_ratio_max"] = _ratios(
                epsilon_curve(q, sigma, sample, delta)[0], theirs)
        rows.append(row)
    return rows


def single_rows(peers: dict, repeats: int) -> list[dict]:
    rows = []
    for label, (q, sigma, steps, delta) in SETTINGS.items():
        def ours(q=q, sigma=sigma, steps=steps, delta=delta):
            return float(epsilon_curve(q, sigma, steps, delta)[0])

        # each peer interleaved with ours alone: a slow peer's call in between would evict our
        # (call-bound) code from the processor's caches and charge that to us
        # ours_ms is taken from the first pair: dp-accelerator's when it imports
        pairs = {}
        if "dp_accelerator" in peers:
            batch, orders = peers["dp_accelerator"].compute_epsilon_batch, peers["dpacc_orders"]
            pairs["dp_accelerator"] = (
                lambda q=q, sigma=sigma, steps=steps, delta=delta, batch=batch, orders=orders:
                batch(q, sigma, [steps], orders, delta)[0])
        pairs["ours_compute_epsilon"] = (
            lambda q=q, sigma=sigma, steps=steps, delta=delta:
            accounting.compute_epsilon(q, sigma, steps, delta))
        if "dp_accounting" in peers:
            pairs["dp_accounting"] = (
                lambda q=q, sigma=sigma, steps=steps, delta=delta, dpa=peers["dp_accounting"]:
                _dp_accounting_epsilon(dpa, q, sigma, steps, delta))
        row = {"case": f"single {label}"}
        for peer, function in pairs.items():
            seconds, results = _interleaved({"ours": ours, peer: function},
                                            repeats if peer != "dp_accounting" else 5)
            row.setdefault("ours_ms", seconds["ours"] * 1e3)
            row[f"{peer}_ms"] = seconds[peer] * 1e3
            row[f"speedup_vs_{peer}"] = seconds[peer] / seconds["ours"]
            row[f"eps_ratio_vs_{peer}"] = results["ours"] / results[peer]
        rows.append(row)
    return rows


def grid_row(peers: dict, repeats: int, quick: bool) -> dict:
    configs = GRID_RATES.size * GRID_NOISES.size
    functions = {"ours": lambda: accounting.epsilon_grid(
        GRID_RATES[:, None], GRID_NOISES[None, :], GRID_STEPS, GRID_DELTA)[0]}
    stride = 20 if quick else 5
    sample = [(i, j) for i in range(0, GRID_RATES.size, stride)
              for j in range(0, GRID_NOISES.size, stride)]
    if "dp_accelerator" in peers:
        batch, orders = peers["dp_accelerator"].compute_epsilon_batch, peers["dpacc_orders"]
        functions["dp_accelerator"] = lambda batch=batch, orders=orders: [
            batch(GRID_RATES[i], GRID_NOISES[j], [GRID_STEPS], orders, GRID_DELTA)[0]
            for i, j in sample]
    seconds, results = _interleaved(functions, max(1, repeats // 5))
    row = {"case": "grid 100 x 100, per config", "K": configs,
           "ours_ms": seconds["ours"] / configs * 1e3}
    ours_sample = np.array([results["ours"][i, j] for i, j in sample])
    if "dp_accelerator" in functions:
        row["dp_accelerator_ms"] = seconds["dp_accelerator"] / len(sample) * 1e3
        row["speedup_vs_dp_accelerator"] = row["dp_accelerator_ms"] / row["ours_ms"]
        row["eps_ratio_min"], row["eps_ratio_max"] = _ratios(ours_sample,
                                                             results["dp_accelerator"])
    if "dp_accounting" in peers:
        few = sample[:: 4 if quick else 8]
        start = time.perf_counter()
        theirs = [_dp_accounting_epsilon(peers["dp_accounting"], GRID_RATES[i], GRID_NOISES[j],
                                         GRID_STEPS, GRID_DELTA) for i, j in few]
        row["dp_accounting_ms"] = (time.perf_counter() - start) / len(few) * 1e3
        row["speedup_vs_dp_accounting"] = row["dp_accounting_ms"] / row["ours_ms"]
        row["dp_accounting_eps_ratio_min"], row["dp_accounting_eps_ratio_max"] = _ratios(
            [results["ours"][i, j] for i, j in few], theirs)
    return row


def _print(rows: list[dict]) -> None:
    columns = [("case", "case", 28), ("K", "K", 6), ("ours_ms", "ours ms", 9),
               ("dp_accelerator_ms", "dp-acc ms", 10),
               ("speedup_vs_dp_accelerator", "x dp-acc", 9),
               ("dp_accounting_ms", "dp_acc'g ms", 12),
               ("speedup_vs_dp_accounting", "x dp_acc'g", 11)]
    print("  ".join(title.rjust(width) for _, title, width in columns))
    for row in rows:
        cells = []
        for key, _, width in columns:
            value = row.get(key)
            text = "-" if value is None else (f"{value:.4g}" if isinstance(value, float)
                                              else str(value))
            cells.append(text.rjust(width))
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    peers, notes = {}, []
    dp_accelerator = _import("dp_accelerator")
    if dp_accelerator is None:
        notes.append("dp_accelerator not importable: its columns are left out")
    else:
        peers["dp_accelerator"] = dp_accelerator
        peers["dpacc_orders"] = _peer_orders(dp_accelerator)
    dp_accounting = _import("dp_accounting")
    if dp_accounting is None or _import("dp_accounting.rdp") is None:
        notes.append("dp_accounting not importable: its columns are left out")
    else:
        peers["dp_accounting"] = dp_accounting
    rows = curve_rows(peers, repeats, args.quick) + single_rows(peers, repeats)
    rows.append(grid_row(peers, repeats, args.quick))
    for note in notes:
        print(f"note: {note}")
    _print(rows)
    print(json.dumps({"rdp_speed": rows, "notes": notes}))


if __name__ == "__main__":
    main()
