"""Samplers other than Poisson: epsilon and time of each new event, side by side with the peer
that computes it, on the same inputs in the same run.

- Fixed-size batches without replacement (replace-one, DP-SGD noise sigma, so Gaussian(sigma/2)):
  ours RDP vs dp_accounting 0.6's ``RdpAccountant(REPLACE_ONE)`` with
  ``SampledWithoutReplacementDpEvent``; our certified PLD has no peer.
- Truncated Poisson (cap B): our certified PLD vs dp_accounting's PLD
  (``TruncatedSubsampledGaussianDpEvent``, pessimistic, grid 1e-4).
- User level, k examples per user (mixture of Gaussians): our certified PLD vs dp_accounting's
  PLD (``MixtureOfGaussiansDpEvent``, grid 1e-4).
- Balls-in-bins (random allocation): our certified RDP bound and our certified PLD bracket vs
  pld-accounting 2.0's certified range (``gaussian_allocation_epsilon_range``, timed once: its
  first call also compiles).
- Shuffled epochs: our certified lower bound of Chua et al. 2024 vs random-allocation 1.0.5's
  ``shuffle_epsilon_lower_bound``.

Setting: B of ``accounting_speed.py`` (n 60000, batch 250, sigma 1.3, 15 epochs, delta 1e-5)
unless a row says otherwise. Times are medians of fresh calls (our caches cleared before each).
Prints a table, then (last) one JSON line with every row.

    python benchmarks/samplers_speed.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import warnings

from timing import timed

import accounting
from accounting.events import (
    Gaussian,
    RandomAllocation,
    SampledWithoutReplacement,
    SelfComposed,
    TruncatedPoissonGaussian,
)

N, BATCH, SIGMA, EPOCHS, DELTA = 60000, 250, 1.3, 15, 1e-5
STEPS = 3600
CAP = 270
USER_K = 5


def _peer(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def fixed_size(repeats: int) -> dict:
    event = SampledWithoutReplacement(N, BATCH, Gaussian(SIGMA / 2))
    row = {"what": "fixed-size (replace-one), RDP", "setting": "B"}
    seconds, eps = timed(lambda: accounting.RdpAccountant(neighboring="replace_one")
                         .compose(event, STEPS).get_epsilon(DELTA), repeats)
    row.update(ours_eps=eps, ours_ms=1e3 * seconds)
    seconds, bounds = timed(lambda: accounting.PldAccountant(neighboring="replace_one")
                            .compose(event, STEPS).get_epsilon_bounds(DELTA), repeats)
    row.update(ours_pld=[bounds.lower, bounds.upper], ours_pld_ms=1e3 * seconds)
    dp_event = _peer("dp_accounting.dp_event")
    rdp = _peer("dp_accounting.rdp.rdp_privacy_accountant")
    if dp_event and rdp:
        peer_event = dp_event.SelfComposedDpEvent(dp_event.SampledWithoutReplacementDpEvent(
            N, BATCH, dp_event.GaussianDpEvent(SIGMA / 2)), STEPS)

        def peer():
            accountant = rdp.RdpAccountant(neighboring_relation=rdp.NeighborRel.REPLACE_ONE)
            return accountant.compose(peer_event).get_epsilon(DELTA)

        seconds, eps = timed(peer, repeats)
        row.update(peer="dp_accounting RDP", peer_eps=eps, peer_ms=1e3 * seconds)
    return row


def _dp_accounting_pld(peer_event, repeats: int):
    pld = _peer("dp_accounting.pld.pld_privacy_accountant")
    if pld is None:
        return None
    return timed(lambda: pld.PLDAccountant(value_discretization_interval=1e-4)
                 .compose(peer_event).get_epsilon(DELTA), repeats)


def truncated(repeats: int) -> dict:
    event = TruncatedPoissonGaussian(N, BATCH / N, CAP, SIGMA)
    row = {"what": f"truncated Poisson (cap {CAP}), PLD", "setting": "B"}
    seconds, bounds = timed(lambda: accounting.PldAccountant().compose(event, STEPS)
                            .get_epsilon_bounds(DELTA), repeats)
    row.update(ours_pld=[bounds.lower, bounds.upper], ours_ms=1e3 * seconds)
    dp_event = _peer("dp_accounting.dp_event")
    if dp_event:
        peer_event = dp_event.SelfComposedDpEvent(dp_event.TruncatedSubsampledGaussianDpEvent(
            N, BATCH / N, CAP, SIGMA), STEPS)
        result = _dp_accounting_pld(peer_event, repeats)
        if result:
            row.update(peer="dp_accounting PLD (grid 1e-4)", peer_eps=result[1],
                       peer_ms=1e3 * result[0])
    return row


def user_level(repeats: int) -> dict:
    step = accounting.user_level_step(BATCH / N, SIGMA, USER_K)
    row = {"what": f"user level, k = {USER_K} (mixture of Gaussians), PLD", "setting": "B"}
    seconds, bounds = timed(lambda: accounting.PldAccountant().compose(step, STEPS)
                            .get_epsilon_bounds(DELTA), repeats)
    row.update(ours_pld=[bounds.lower, bounds.upper], ours_ms=1e3 * seconds)
    dp_event = _peer("dp_accounting.dp_event")
    if dp_event:
        peer_event = dp_event.SelfComposedDpEvent(dp_event.MixtureOfGaussiansDpEvent(
            SIGMA, list(step.sensitivities), list(step.probabilities)), STEPS)
        result = _dp_accounting_pld(peer_event, repeats)
        if result:
            row.update(peer="dp_accounting PLD (grid 1e-4)", peer_eps=result[1],
                       peer_ms=1e3 * result[0])
    return row


def balls_in_bins(repeats: int, quick: bool) -> list[dict]:
    rows = []
    cases = [("t 100, sigma 1, 1 epoch, delta 1e-3", 100, 1.0, 1, 1e-3)]
    if not quick:
        cases.append(("B (t 240, 15 epochs)", N // BATCH, SIGMA, EPOCHS, DELTA))
    for label, steps, sigma, epochs, delta in cases:
        row = {"what": "balls-in-bins, certified RDP", "setting": label}
        event = SelfComposed(RandomAllocation(steps, Gaussian(sigma)), epochs)
        seconds, eps = timed(lambda e=event, d=delta: accounting.RdpAccountant().compose(e)
                             .get_epsilon(d), repeats)
        row.update(ours_eps=eps, ours_ms=1e3 * seconds)
        pld_row = {"what": "balls-in-bins, certified PLD", "setting": label}
        seconds, bounds = timed(lambda e=event, d=delta: accounting.PldAccountant().compose(e)
                                .get_epsilon_bounds(d), repeats)
        pld_row.update(ours_pld=[bounds.lower, bounds.upper], ours_ms=1e3 * seconds)
        peer = _peer("PLD_accounting")
        if peer:
            allocation_range = peer.gaussian_allocation_epsilon_range
            seconds, (upper, lower) = timed(
                lambda s=steps, g=sigma, e=epochs, d=delta, f=allocation_range: f(
                    delta=d, sigma=g, num_steps=s, num_epochs=e), 1)
            for each in (row, pld_row):
                each.update(peer="pld-accounting certified range", peer_eps=upper,
                            peer_range=[lower, upper], peer_ms=1e3 * seconds)
        rows.extend([row, pld_row])
    return rows


def shuffle_lower(repeats: int) -> dict:
    t = N // BATCH
    row = {"what": "shuffled epochs, lower bound (Chua et al. 2024)", "setting": "B"}
    seconds, bound = timed(lambda: accounting.shuffle_lower_bound(t, SIGMA, EPOCHS, DELTA),
                           repeats)
    row.update(ours_eps=bound.epsilon, ours_ms=1e3 * seconds)
    definitions = _peer("random_allocation.comparisons.definitions")
    shuffle = _peer("random_allocation.other_schemes.shuffle")
    if definitions and shuffle:
        params = definitions.PrivacyParams(sigma=SIGMA, num_steps=t, num_selected=1,
                                           num_epochs=EPOCHS, delta=DELTA)
        seconds, eps = timed(lambda: shuffle.shuffle_epsilon_lower_bound(
            params, definitions.SchemeConfig()), repeats)
        row.update(peer="random-allocation shuffle_epsilon_lower_bound", peer_eps=eps,
                   peer_ms=1e3 * seconds)
    return row


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4f}" for v in value) + "]"
    return f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer settings")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    warnings.simplefilter("ignore")
    rows = [fixed_size(repeats), truncated(repeats), user_level(repeats),
            *balls_in_bins(repeats, args.quick), shuffle_lower(repeats)]
    print("| what | setting | ours ε | ours ms | peer | peer ε | peer ms | ours/peer time |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ours = row.get("ours_eps", row.get("ours_pld"))
        ratio = (row["ours_ms"] / row["peer_ms"]) if row.get("peer_ms") else None
        print(f"| {row['what']} | {row['setting']} | {_cell(ours)} | {_cell(row['ours_ms'])} | "
              f"{row.get('peer', '–')} | {_cell(row.get('peer_range', row.get('peer_eps')))} | "
              f"{_cell(row.get('peer_ms'))} | {_cell(ratio)} |")
        if "ours_pld_ms" in row:
            print(f"| {row['what'].replace('RDP', 'PLD')} | {row['setting']} | "
                  f"{_cell(row['ours_pld'])} | {_cell(row['ours_pld_ms'])} | – | – | – | – |")
    print(json.dumps({"samplers": rows}))


if __name__ == "__main__":
    main()
