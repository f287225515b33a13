"""Side by side with peer libraries, on the same inputs in the same run.

Compared (each peer is imported lazily and skipped with a note when it is missing; none of them is
a dependency of this package - ``make bench`` installs them into ``.venv-bench``):

- RDP epsilon on the four standard settings: ours vs dp_accounting 0.6 vs Opacus 1.6.
- Tight epsilon: our certified PLD bracket vs dp_accounting's PLD (pessimistic and optimistic at
  the same ``value_discretization``, whose difference is its certified width), Opacus's PRV
  accountant and Microsoft's prv_accountant (lower, estimate, upper) at ``eps_error`` 0.01 and
  0.1. Ours runs at our default ``1e-3`` and, against each peer, at the loosest tolerance whose
  bracket is no wider and whose upper bound is no larger than the peer's.
- Noise calibration for epsilon in {1, 3, 8} on setting A: ours (RDP, 1e-6 in sigma) vs
  ``dp_accounting.calibrate_dp_mechanism`` (RDP, 1e-6 in sigma) vs Opacus
  ``get_noise_multiplier`` (RDP, its default 0.01 in epsilon).
- A 100 x 100 grid of (q, sigma) at 1000 steps: ours with ``epsilon_grid`` (all 10^4 at once),
  the peers per configuration on an evenly spread sample, extrapolated.

Times are medians over repeats of a fresh accountant (our caches of per-(q, sigma) results are
cleared before every call). Prints tables, then (last) one JSON line with every row.

    python benchmarks/peers.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import time
import warnings

import numpy as np
from accounting_speed import (  # the grid and the PLD helpers
    GRID_DELTA,
    GRID_NOISES,
    GRID_RATES,
    GRID_STEPS,
    dp_accounting_pld_epsilon,
    matched_pld,
    opacus_prv_epsilon,
    ours_pld,
)
from settings import SETTINGS  # the standard settings A-D: name -> (q, sigma, steps, delta)

import accounting

CALIBRATION_TARGETS = (1.0, 3.0, 8.0)


def _clear_caches() -> None:
    accounting.clear_caches(tables=False)


def timed(function, repeats: int, slow: float = 1.0):
    """``(median seconds, last result)`` of ``function()`` over ``repeats`` calls.

    Parameters
    ----------
    function : callable
        Called with no argument; our caches are cleared before every call.
    repeats : int
        Most calls to time.
    slow : float
        After a first call longer than this many seconds, stop there (one sample).
    """
    times, result = [], None
    for _ in range(max(1, repeats)):
        _clear_caches()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
        if times[0] > slow:
            break
    return statistics.median(times), result


def _import(name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - a peer that fails to import is skipped
        return f"{name} not importable ({type(error).__name__}: {error})"


def load_peers() -> tuple[dict, list[str]]:
    """The peers that import here, and a note for each one that does not."""
    peers, notes = {}, []
    for key, module in [
        ("dp_accounting", "dp_accounting"),
        ("dp_accounting_pld", "dp_accounting.pld.privacy_loss_distribution"),
        ("dp_accounting_rdp", "dp_accounting.rdp.rdp_privacy_accountant"),
        ("opacus", "opacus.accountants"),
        ("opacus_utils", "opacus.accountants.utils"),
        ("prv_accountant", "prv_accountant"),
        ("prv_mechanisms", "prv_accountant.privacy_random_variables"),
    ]:
        loaded = _import(module)
        if isinstance(loaded, str):
            notes.append(loaded)
        else:
            peers[key] = loaded
    tf_privacy = _import("tensorflow_privacy")
    if isinstance(tf_privacy, str):
        notes.append(
            tf_privacy + "; TF Privacy imports only with TF 2.15 / Keras 2, its accountant is "
            "dp_accounting's (timed above)"
        )
    else:
        peers["tensorflow_privacy"] = tf_privacy
    return peers, notes


def versions(peers: dict) -> dict:
    """Installed versions of the peer distributions."""
    from importlib import metadata

    found = {}
    for dist in ("dp-accounting", "opacus", "torch", "prv-accountant", "tensorflow-privacy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


# ------------------------------------------------------------------------------------ RDP
def _ours_rdp(setting):
    q, sigma, steps, delta = setting
    return accounting.RdpAccountant().compose(q, sigma, steps).get_epsilon(delta)


def _dp_accounting_rdp(peers, setting):
    dpa = peers["dp_accounting"]
    q, sigma, steps, delta = setting
    accountant = peers["dp_accounting_rdp"].RdpAccountant()
    event = dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma))
    accountant.compose(dpa.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)


def _opacus_rdp(peers, setting):
    q, sigma, steps, delta = setting
    accountant = peers["opacus"].RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    return accountant.get_epsilon(delta)


def rdp_rows(peers, repeats):
    """RDP epsilon and time per setting, ours and each peer."""
    rows = []
    for name, setting in SETTINGS.items():
        seconds, value = timed(lambda s=setting: _ours_rdp(s), repeats)
        row = {"setting": name, "ours_ms": seconds * 1e3, "ours_eps": value}
        if "dp_accounting_rdp" in peers:
            seconds, value = timed(lambda s=setting: _dp_accounting_rdp(peers, s), repeats)
            row.update(dp_accounting_ms=seconds * 1e3, dp_accounting_eps=value)
        if "opacus" in peers:
            seconds, value = timed(lambda s=setting: _opacus_rdp(peers, s), repeats)
            row.update(opacus_ms=seconds * 1e3, opacus_eps=value)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ PLD / PRV
def _opacus_prv_bracket(accountant, delta, eps_error):
    delta_error = delta / 1000
    try:
        dprv = accountant._get_dprv(eps_error=eps_error, delta_error=delta_error)
        return tuple(float(v) for v in dprv.compute_epsilon(delta, delta_error, eps_error))
    except Exception:  # noqa: BLE001 - a private API: report the public upper bound alone
        return None


def _prv_accountant(peers, setting, eps_error):
    q, sigma, steps, delta = setting
    prv = peers["prv_mechanisms"].PoissonSubsampledGaussianMechanism(
        sampling_probability=q, noise_multiplier=sigma
    )
    accountant = peers["prv_accountant"].PRVAccountant(
        prvs=[prv], max_self_compositions=[steps], eps_error=eps_error, delta_error=delta / 1000
    )
    return tuple(float(v) for v in accountant.compute_epsilon(delta, [steps]))


def _ours_entry(tolerance, seconds, bounds):
    return {"tolerance": tolerance, "ms": seconds * 1e3, "lower": bounds.lower,
            "upper": bounds.upper, "width": bounds.width,
            "value_discretization": bounds.value_discretization}


def pld_rows(peers, repeats, prv_errors):
    """Tight accountants per setting: value, bracket, width and time."""
    rows = []
    for name, setting in SETTINGS.items():
        delta = setting[3]
        row = {"setting": name}
        their_width = None
        if "dp_accounting_pld" in peers:
            module = peers["dp_accounting_pld"]
            t_pess, pess = timed(
                lambda s=setting, m=module: dp_accounting_pld_epsilon(m, s, True), repeats
            )
            t_opt, opt = timed(
                lambda s=setting, m=module: dp_accounting_pld_epsilon(m, s, False), repeats
            )
            their_width = pess - opt
            row.update(dp_accounting_upper=pess, dp_accounting_lower=opt,
                       dp_accounting_width=their_width, dp_accounting_upper_ms=t_pess * 1e3,
                       dp_accounting_both_ms=(t_pess + t_opt) * 1e3)
        # Ours at our default, and at the loosest tolerance whose bracket is no wider and whose
        # upper bound is no larger than each peer's (accounting_speed.matched_pld).
        seconds, bounds = timed(lambda s=setting: ours_pld(s, 1e-3), repeats)
        row["ours_default"] = _ours_entry(1e-3, seconds, bounds)
        if their_width is not None and their_width > 0:
            matched = matched_pld(setting, their_width, row["dp_accounting_upper"], repeats)
            if matched is not None:
                row["ours_dp_accounting"] = _ours_entry(*matched)
        if "opacus" in peers:
            for eps_error in prv_errors:
                seconds, (upper, accountant) = timed(
                    lambda s=setting, e=eps_error: opacus_prv_epsilon(
                        peers["opacus"].PRVAccountant, s, e
                    ),
                    repeats,
                )
                bracket = _opacus_prv_bracket(accountant, delta, eps_error)
                row[f"opacus_prv_{eps_error:g}"] = {"ms": seconds * 1e3, "upper": upper,
                                                    "bracket": bracket}
                matched = matched_pld(setting, 2 * eps_error, upper, repeats)
                if matched is not None:
                    row[f"ours_prv_{eps_error:g}"] = _ours_entry(*matched)
        if "prv_accountant" in peers:
            for eps_error in prv_errors:
                seconds, bracket = timed(
                    lambda s=setting, e=eps_error: _prv_accountant(peers, s, e), repeats
                )
                row[f"prv_accountant_{eps_error:g}"] = {"ms": seconds * 1e3, "bracket": bracket,
                                                        "width": bracket[2] - bracket[0]}
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ calibration
def _dp_accounting_calibrate(peers, target, setting):
    dpa = peers["dp_accounting"]
    q, _, steps, delta = setting

    def event(sigma):
        return dpa.SelfComposedDpEvent(
            dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps
        )

    return dpa.calibrate_dp_mechanism(
        peers["dp_accounting_rdp"].RdpAccountant, event, target, delta,
        dpa.LowerEndpointAndGuess(1e-3, 1.0),
    )


def _opacus_calibrate(peers, target, setting):
    q, _, steps, delta = setting
    return peers["opacus_utils"].get_noise_multiplier(
        target_epsilon=target, target_delta=delta, sample_rate=q, steps=steps,
        accountant="rdp",
    )


def calibration_rows(peers, repeats):
    """Noise multiplier for each target epsilon on setting A, ours and each peer."""
    setting = SETTINGS["A"]
    q, _, steps, delta = setting
    rows = []
    for target in CALIBRATION_TARGETS:
        seconds, sigma = timed(
            lambda t=target: accounting.calibrate_noise_multiplier(t, delta, q, steps), repeats
        )
        row = {"target": target, "ours_ms": seconds * 1e3, "ours_sigma": sigma,
               "ours_eps": _ours_rdp((q, sigma, steps, delta))}
        if "dp_accounting_rdp" in peers:
            seconds, sigma = timed(lambda t=target: _dp_accounting_calibrate(peers, t, setting),
                                   repeats)
            row.update(dp_accounting_ms=seconds * 1e3, dp_accounting_sigma=float(sigma),
                       dp_accounting_eps=_ours_rdp((q, sigma, steps, delta)))
        if "opacus_utils" in peers:
            seconds, sigma = timed(lambda t=target: _opacus_calibrate(peers, t, setting),
                                   repeats)
            row.update(opacus_ms=seconds * 1e3, opacus_sigma=float(sigma),
                       opacus_eps=_ours_rdp((q, sigma, steps, delta)))
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ grid
def grid_row(peers, repeats, sample_stride):
    """Per-configuration time over the 10^4 grid; peers timed on every ``sample_stride``-th
    rate and noise (a spread sample) and extrapolated."""
    def ours():
        return accounting.epsilon_grid(GRID_RATES[:, None], GRID_NOISES[None, :], GRID_STEPS,
                                       GRID_DELTA)[0]

    seconds, values = timed(ours, max(1, repeats // 2))
    size = GRID_RATES.size * GRID_NOISES.size
    row = {"configs": size, "ours_total_s": seconds, "ours_ms": seconds / size * 1e3}
    sample = [(q, s, GRID_STEPS, GRID_DELTA)
              for q in GRID_RATES[::sample_stride] for s in GRID_NOISES[::sample_stride]]
    row["peer_sample"] = len(sample)
    picked = [(i, j) for i in range(0, GRID_RATES.size, sample_stride)
              for j in range(0, GRID_NOISES.size, sample_stride)]
    for key, function in (("dp_accounting", _dp_accounting_rdp), ("opacus", _opacus_rdp)):
        needed = "dp_accounting_rdp" if key == "dp_accounting" else "opacus"
        if needed not in peers:
            continue
        start = time.perf_counter()
        theirs = [function(peers, setting) for setting in sample]
        per_config = (time.perf_counter() - start) / len(sample)
        ours_sample = np.array([values[i, j] for i, j in picked])
        row[f"{key}_ms"] = per_config * 1e3
        row[f"{key}_max_rel_diff"] = float(np.max(np.abs(np.array(theirs) / ours_sample - 1)))
    return row


# ------------------------------------------------------------------------------------ output
def _fmt(value, digits=6):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _ratio(ours, theirs):
    return "-" if theirs in (None, 0) else f"{ours / theirs:.3g}"


def print_tables(result) -> None:
    """Human-readable tables of ``result`` (the dict of :func:`run`)."""
    print("RDP epsilon (improved conversion); time ms; ratio = ours/peer time")
    print(f"{'set':<4}{'ours eps':>10}{'ms':>9}{'dp_acc eps':>12}{'ms':>9}{'ratio':>8}"
          f"{'opacus eps':>12}{'ms':>9}{'ratio':>8}")
    for r in result["rdp"]:
        print(f"{r['setting']:<4}{_fmt(r['ours_eps']):>10}{r['ours_ms']:>9.3f}"
              f"{_fmt(r.get('dp_accounting_eps')):>12}{_fmt(r.get('dp_accounting_ms'), 4):>9}"
              f"{_ratio(r['ours_ms'], r.get('dp_accounting_ms')):>8}"
              f"{_fmt(r.get('opacus_eps')):>12}{_fmt(r.get('opacus_ms'), 4):>9}"
              f"{_ratio(r['ours_ms'], r.get('opacus_ms')):>8}")
    print("\nTight epsilon: [lower, upper] (width) time ms")
    for r in result["pld"]:
        print(f"setting {r['setting']}")
        if "dp_accounting_upper" in r:
            print(f"  dp_accounting PLD grid 1e-4   [{r['dp_accounting_lower']:.5f}, "
                  f"{r['dp_accounting_upper']:.5f}] ({r['dp_accounting_width']:.3g}) "
                  f"pessimistic {r['dp_accounting_upper_ms']:.1f} ms, both "
                  f"{r['dp_accounting_both_ms']:.1f} ms")
        for key in (k for k in r if k.startswith("ours_")):
            o = r[key]
            print(f"  ours PLD tol {o['tolerance']:<10.3g}   [{o['lower']:.5f}, "
                  f"{o['upper']:.5f}] ({o['width']:.3g}) {o['ms']:.1f} ms")
        for key in sorted(k for k in r if k.startswith(("opacus_prv", "prv_accountant"))):
            entry = r[key]
            bracket = entry.get("bracket")
            text = ", ".join(f"{v:.5f}" for v in bracket) if bracket else f"upper {entry['upper']}"
            print(f"  {key:<28} ({text}) {entry['ms']:.1f} ms")
    print("\nNoise calibration on setting A: sigma (its RDP epsilon) time ms")
    for r in result["calibration"]:
        line = f"  eps {r['target']:g}: ours {r['ours_sigma']:.6f} ({r['ours_eps']:.5f}) " \
               f"{r['ours_ms']:.1f} ms"
        for key in ("dp_accounting", "opacus"):
            if f"{key}_sigma" in r:
                line += f" | {key} {r[f'{key}_sigma']:.6f} ({r[f'{key}_eps']:.5f}) " \
                        f"{r[f'{key}_ms']:.1f} ms"
        print(line)
    g = result["grid"]
    print(f"\nGrid of {g['configs']} configurations: ours {g['ours_ms']:.4f} ms per config "
          f"({g['ours_total_s']:.2f} s in all)", end="")
    for key in ("dp_accounting", "opacus"):
        if f"{key}_ms" in g:
            print(f"; {key} {g[f'{key}_ms']:.3f} ms per config (sample of {g['peer_sample']}, "
                  f"max rel. diff {g[f'{key}_max_rel_diff']:.1e})", end="")
    print()
    for note in result["notes"]:
        print(f"note: {note}")


def run(repeats: int = 3, quick: bool = False) -> dict:
    """Every comparison; returns a JSON-serialisable dict."""
    peers, notes = load_peers()
    prv_errors = (0.1,) if quick else (0.01, 0.1)
    return {
        "peers": versions(peers),
        "notes": notes,
        "rdp": rdp_rows(peers, repeats),
        "pld": pld_rows(peers, 1 if quick else repeats, prv_errors),
        "calibration": calibration_rows(peers, repeats),
        "grid": grid_row(peers, repeats, 50 if quick else 20),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (most)")
    parser.add_argument("--quick", action="store_true",
                        help="one repeat for the tight accountants, prv eps_error 0.1 only")
    args = parser.parse_args(argv)
    result = run(args.repeats, args.quick)
    print_tables(result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
