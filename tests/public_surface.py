"""The public surface of :mod:`accounting`, as calls a sandboxed worker can make by name.

Each scenario is one public entry point (or a documented chain: construct, compose, query)
with valid baseline arguments; the property test replaces one argument at a time with an
adversarial value. Run as a script, this module is the worker: it caps its own address space,
reads pickled ``(scenario, kwargs)`` requests from stdin and answers each with a pickled
outcome, so that an allocation that grows without bound fails the test instead of the machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import os
import pickle
import resource
import struct
import sys
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

#: Address-space cap of the worker (the issue's 2 GiB).
MEMORY_LIMIT_BYTES = 2 << 30

TUTORIAL = {"sample_rate": 256 / 60000, "noise_multiplier": 1.1, "steps": 14063, "delta": 1e-5}


def rdp_accountant(sample_rate, noise_multiplier, steps, delta, orders, conversion):
    import accounting

    ledger = accounting.RdpAccountant(orders=orders, conversion=conversion)
    return ledger.compose(sample_rate, noise_multiplier, steps).get_epsilon_and_order(delta)


def rdp_accountant_delta(sample_rate, noise_multiplier, steps, epsilon):
    import accounting

    return accounting.RdpAccountant().compose(sample_rate, noise_multiplier, steps).get_delta(
        epsilon
    )


def moments_accountant(sample_rate, noise_multiplier, steps, delta, max_lambda):
    import accounting

    ledger = accounting.MomentsAccountant(max_lambda).compose(sample_rate, noise_multiplier, steps)
    return ledger.get_epsilon_and_order(delta), ledger.get_delta(1.0)


def pld_epsilon(sample_rate, noise_multiplier, steps, delta, value_discretization, tolerance,
                neighboring):
    import accounting

    ledger = accounting.PldAccountant(
        value_discretization=value_discretization, tolerance=tolerance, neighboring=neighboring
    )
    return tuple(ledger.compose(sample_rate, noise_multiplier, steps).get_epsilon_bounds(delta))


def pld_delta(sample_rate, noise_multiplier, steps, epsilon, tolerance):
    import accounting

    ledger = accounting.PldAccountant(tolerance=tolerance)
    return tuple(ledger.compose(sample_rate, noise_multiplier, steps).get_delta_bounds(epsilon))


def make_accountant(accountant, conversion):
    import accounting

    return repr(accounting.make_accountant(accountant, conversion))


def events(sample_rate, noise_multiplier, count):
    """Build an event tree, write it as JSON and read it back."""
    from accounting.events import Composed, Event, Gaussian, NoOp, PoissonSampled, SelfComposed

    step = PoissonSampled(sample_rate, Gaussian(noise_multiplier))
    tree = Composed([SelfComposed(step, count), NoOp()])
    back = Event.from_dict(json.loads(json.dumps(tree.to_dict())))
    return back == tree, step.sample_rate, step.event.noise_multiplier


def compose_event(accountant, sample_rate, noise_multiplier, count, delta):
    """``compose(event, count)`` on a registered accountant, then epsilon."""
    import accounting
    from accounting.events import Gaussian, PoissonSampled

    ledger = accounting.make_accountant(accountant)
    step = PoissonSampled(sample_rate, Gaussian(noise_multiplier))
    return ledger.compose(step, count=count).get_epsilon(delta)


def make_accountant_options(accountant, tolerance, neighboring, delta):
    """``make_accountant`` with keyword options, composed and queried."""
    import accounting

    ledger = accounting.make_accountant(accountant, tolerance=tolerance, neighboring=neighboring)
    return ledger.compose(0.01, 1.1, 100).get_epsilon(delta)


def load_accountant(accountant, format, options, count, sample_rate, noise_multiplier):  # noqa: A002
    """``load_accountant`` of a saved state with one field replaced."""
    import accounting

    state = accounting.RdpAccountant().compose(0.01, 1.1, 100).state_dict()
    state.update(accountant=accountant, format=format, options=options)
    record = state["history"][0]
    record["count"] = count
    record["event"].update(sample_rate=sample_rate)
    record["event"]["event"].update(noise_multiplier=noise_multiplier)
    return accounting.load_accountant(state).get_epsilon(1e-5)


def event_from_dict(**data):
    """``Event.from_dict`` of a (Poisson-sampled Gaussian) event dict."""
    from accounting.events import Event

    event = Event.from_dict(data)
    return event == Event.from_dict(event.to_dict()), getattr(event, "sample_rate", 0.0)


def calibrate(target_epsilon, delta, bounds, tolerance, accountant):
    """The generic calibration, moving the noise multiplier of a 1000-step run at q = 0.01."""
    import accounting
    from accounting.events import Gaussian, PoissonSampled, SelfComposed

    def make_event(sigma):
        return SelfComposed(PoissonSampled(0.01, Gaussian(sigma)), 1000)

    return accounting.calibrate(make_event, target_epsilon, delta, bounds=bounds,
                                tolerance=tolerance, accountant=accountant)


def from_dp_event(noise_multiplier, sampling_probability, count, delta):
    """A dp_accounting-shaped event tree (stand-in classes named as dp_accounting's) converted
    by ``from_dp_event`` and composed by the RDP accountant."""
    import dataclasses

    import accounting

    @dataclasses.dataclass
    class GaussianDpEvent:
        noise_multiplier: Any

    @dataclasses.dataclass
    class PoissonSampledDpEvent:
        sampling_probability: Any
        event: Any

    @dataclasses.dataclass
    class SelfComposedDpEvent:
        event: Any
        count: Any

    tree = SelfComposedDpEvent(
        PoissonSampledDpEvent(sampling_probability, GaussianDpEvent(noise_multiplier)), count
    )
    return accounting.RdpAccountant().compose(accounting.from_dp_event(tree)).get_epsilon(delta)


def gdp(sample_rate, noise_multiplier, steps, delta, epsilon):
    import accounting

    return (
        accounting.gdp_mu(sample_rate, noise_multiplier, steps),
        accounting.gdp_epsilon(sample_rate, noise_multiplier, steps, delta),
        accounting.gdp_delta(sample_rate, noise_multiplier, steps, epsilon),
    )


def reference_rdp(q, sigma, alpha):
    from accounting import reference

    return reference.rdp(q, sigma, alpha, digits=20)


def reference_log_moment(q, sigma, lam):
    from accounting import reference

    return reference.log_moment(q, sigma, lam, digits=20)


def reference_hockey_stick_delta(q, sigma, epsilon, direction):
    from accounting import reference

    return reference.hockey_stick_delta(q, sigma, epsilon, direction, digits=15)


def reference_conversions(rdp_values, orders, delta):
    from accounting import reference

    return (
        reference.rdp_to_epsilon_classic(rdp_values, orders, delta, digits=20),
        reference.rdp_to_epsilon_improved(rdp_values, orders, delta, digits=20),
    )


def dpsgd_run_epsilon(sample_size, batch_size, noise_multiplier, epochs, sampling,
                      max_batch_size, accountant, delta):
    """A run as its sampler's event (``dpsgd_run``), composed by a registered accountant."""
    import accounting

    run = accounting.dpsgd_run(sample_size, batch_size, noise_multiplier, epochs=epochs,
                               sampling=sampling, max_batch_size=max_batch_size)
    ledger = accounting.make_accountant(accountant, **run.accountant_options)
    return ledger.compose(run.event).get_epsilon(delta), run.count, run.steps


def sampler_events(dataset_size, sample_size, sample_rate, max_batch_size, noise_multiplier,
                   sensitivities, probabilities, steps, selections):
    """The samplers' events, built and read back from JSON."""
    from accounting.events import (
        Event,
        Gaussian,
        MixtureOfGaussians,
        RandomAllocation,
        SampledWithoutReplacement,
        ShuffledEpoch,
        TruncatedPoissonGaussian,
    )

    built = [
        SampledWithoutReplacement(dataset_size, sample_size, Gaussian(noise_multiplier)),
        TruncatedPoissonGaussian(dataset_size, sample_rate, max_batch_size, noise_multiplier),
        MixtureOfGaussians(noise_multiplier, sensitivities, probabilities),
        RandomAllocation(steps, Gaussian(noise_multiplier), selections),
        ShuffledEpoch(steps, Gaussian(noise_multiplier)),
    ]
    return [Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event
            for event in built].count(True)


def fixed_size_epsilon(accountant, dataset_size, sample_size, noise_multiplier, count, delta):
    """Fixed-size batches under replace-one, by RDP or the certified PLD."""
    import accounting
    from accounting.events import Gaussian, SampledWithoutReplacement

    ledger = accounting.make_accountant(accountant, neighboring="replace_one")
    event = SampledWithoutReplacement(dataset_size, sample_size, Gaussian(noise_multiplier))
    return ledger.compose(event, count).get_epsilon(delta)


def mixture_pld(noise_multiplier, sensitivities, probabilities, count, delta, tolerance):
    """A mixture-of-Gaussians step composed by the certified PLD."""
    import accounting
    from accounting.events import MixtureOfGaussians

    event = MixtureOfGaussians(noise_multiplier, sensitivities, probabilities)
    return tuple(accounting.PldAccountant(tolerance=tolerance).compose(event, count)
                 .get_epsilon_bounds(delta))


def truncated_pld(dataset_size, sample_rate, max_batch_size, noise_multiplier, count, delta):
    """A truncated-Poisson step composed by the certified PLD."""
    import accounting
    from accounting.events import TruncatedPoissonGaussian

    event = TruncatedPoissonGaussian(dataset_size, sample_rate, max_batch_size, noise_multiplier)
    return tuple(accounting.PldAccountant(tolerance=1e-2).compose(event, count)
                 .get_epsilon_bounds(delta))


def shuffle_lower_bound(batches, noise_multiplier, epochs, delta):
    """Chua et al.'s lower bound for shuffled epochs (its epsilon)."""
    import accounting

    return accounting.shuffle_lower_bound(batches, noise_multiplier, epochs, delta).epsilon


def random_allocation_monte_carlo(steps, noise_multiplier, delta, epochs, samples):
    """The Monte-Carlo estimate of random allocation (its estimate and interval)."""
    import accounting

    estimate = accounting.random_allocation_monte_carlo(steps, noise_multiplier, delta,
                                                         epochs=epochs, samples=samples, seed=1)
    return estimate.epsilon_estimate, estimate.epsilon_low, estimate.epsilon_high


def privacy_statement(sample_size, batch_size, epochs, noise_multiplier, delta, sampling,
                      max_examples_per_user, used_microbatching):
    """The privacy statement: every figure it states (``None`` ones left out)."""
    import accounting

    statement = accounting.privacy_statement(
        sample_size, batch_size, epochs, noise_multiplier, delta, sampling=sampling,
        max_examples_per_user=max_examples_per_user, used_microbatching=used_microbatching,
        user_level_pld=False,
    )
    assert statement.text
    return [value for line in statement.lines for value in (line.epsilon, line.lower)
            if value is not None]


def group_privacy_epsilon(sample_rate, noise_multiplier, steps, group_size, delta):
    """Group privacy of a Poisson run's RDP ledger."""
    import accounting

    ledger = accounting.RdpAccountant().compose(sample_rate, noise_multiplier, steps)
    return accounting.group_privacy_epsilon(ledger, group_size, delta)


def cli(command, **flags):
    """``dp-budget COMMAND --flag value ...``: ``(exit status, stdout, stderr)``."""
    from accounting.cli import main

    argv = [command]
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    argv.append("--json")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue(), err.getvalue()


_RUN = {"sample_rate": 0.01, "noise_multiplier": 1.1, "steps": 1000}
_RUN_EVENT = {"sample_rate": 0.01, "noise_multiplier": 1.1, "count": 1000}

#: Every scenario the property test drives, with valid baseline arguments.
SCENARIOS: dict[str, dict[str, Any]] = {
    "rdp_accountant": {**TUTORIAL, "orders": None, "conversion": "improved"},
    "rdp_accountant_delta": {**_RUN, "epsilon": 1.0},
    "moments_accountant": {**_RUN, "delta": 1e-5, "max_lambda": 32},
    "pld_epsilon": {**_RUN, "delta": 1e-5, "value_discretization": None, "tolerance": 1e-2,
                    "neighboring": "add_remove"},
    "pld_delta": {**_RUN, "epsilon": 1.0, "tolerance": 1e-2},
    "poisson_gaussian_rdp": {"sample_rate": 0.01, "noise_multiplier": 1.1,
                             "orders": [1.5, 2.0, 32.0]},
    "gaussian_log_moments": {"sample_rate": 0.01, "noise_multiplier": 1.1, "lambdas": [1, 8]},
    "epsilon_from_rdp": {"rdp": [0.1, 0.2, 0.4], "orders": [2.0, 4.0, 8.0], "delta": 1e-5,
                         "conversion": "improved"},
    "delta_from_rdp": {"rdp": [0.1, 0.2, 0.4], "orders": [2.0, 4.0, 8.0], "epsilon": 1.0,
                       "conversion": "classic"},
    "epsilon_curve": {"sample_rate": 256 / 60000, "noise_multiplier": 1.1,
                      "steps": [235, 2350, 14063], "delta": 1e-5},
    "epsilon_grid": {"sample_rate": [0.01, 0.02], "noise_multiplier": 1.1, "steps": [10, 1000],
                     "delta": 1e-5, "orders": None},
    "compute_epsilon": {**_RUN, "delta": 1e-5, "accountant": "rdp", "pld_tolerance": 1e-2},
    "dpsgd_epsilon": {"sample_size": 60000, "batch_size": 256, "epochs": 1,
                      "noise_multiplier": 1.1, "delta": 1e-5, "accountant": "rdp"},
    "get_privacy_budget": {"sample_size": 60000, "batch_size": 256, "num_epochs": 1,
                           "noise_multiplier": 1.1, "target_delta": 1e-5},
    "make_accountant": {"accountant": "pld", "conversion": "improved"},
    "events": {"sample_rate": 0.01, "noise_multiplier": 1.1, "count": 1000},
    "compose_event": {**_RUN_EVENT, "accountant": "rdp", "delta": 1e-5},
    "make_accountant_options": {"accountant": "pld", "tolerance": 1e-2,
                                "neighboring": "add_remove", "delta": 1e-5},
    "load_accountant": {"accountant": "rdp", "format": 1,
                        "options": {"orders": None, "conversion": "improved"}, **_RUN_EVENT},
    "event_from_dict": {"type": "poisson_sampled", "sample_rate": 0.01,
                        "event": {"type": "gaussian", "noise_multiplier": 1.1}},
    "calibrate_noise_multiplier": {"target_epsilon": 1.0, "delta": 1e-5, "sample_rate": 0.01,
                                   "steps": 1000, "accountant": "rdp", "tolerance": 1e-6},
    "calibrate_sample_rate": {"target_epsilon": 1.0, "delta": 1e-5, "noise_multiplier": 1.1,
                              "steps": 1000, "accountant": "rdp", "tolerance": 1e-6},
    "calibrate_steps": {"target_epsilon": 1.0, "delta": 1e-5, "sample_rate": 0.01,
                        "noise_multiplier": 1.1, "accountant": "rdp"},
    "calibrate": {"target_epsilon": 1.0, "delta": 1e-5, "bounds": (0.5, 4.0), "tolerance": 1e-4,
                  "accountant": "rdp"},
    "from_dp_event": {"noise_multiplier": 1.1, "sampling_probability": 0.01, "count": 1000,
                      "delta": 1e-5},
    "gaussian_delta": {"epsilon": 1.0, "noise_multiplier": 1.1, "steps": 10},
    "gaussian_epsilon": {"delta": 1e-5, "noise_multiplier": 1.1, "steps": 10},
    "gdp": {**_RUN, "delta": 1e-5, "epsilon": 1.0},
    "reference_rdp": {"q": 0.01, "sigma": 1.1, "alpha": 2.5},
    "reference_log_moment": {"q": 0.01, "sigma": 1.1, "lam": 4},
    "reference_hockey_stick_delta": {"q": 0.01, "sigma": 1.1, "epsilon": 0.5,
                                     "direction": "add"},
    "reference_conversions": {"rdp_values": [0.1, 0.2], "orders": [2, 4], "delta": 1e-5},
    "dpsgd_run_epsilon": {"sample_size": 60000, "batch_size": 250, "noise_multiplier": 1.3,
                          "epochs": 15, "sampling": "shuffle", "max_batch_size": None,
                          "accountant": "rdp", "delta": 1e-5},
    "sampler_events": {"dataset_size": 1000, "sample_size": 10, "sample_rate": 0.01,
                       "max_batch_size": 20, "noise_multiplier": 1.1,
                       "sensitivities": [0.0, 1.0], "probabilities": [0.9, 0.1], "steps": 100,
                       "selections": 1},
    "fixed_size_epsilon": {"accountant": "rdp", "dataset_size": 60000, "sample_size": 250,
                           "noise_multiplier": 0.65, "count": 3600, "delta": 1e-5},
    "mixture_pld": {"noise_multiplier": 1.3, "sensitivities": [0.0, 1.0, 2.0],
                    "probabilities": [0.99, 0.0099, 0.0001], "count": 100, "delta": 1e-5,
                    "tolerance": 1e-2},
    "truncated_pld": {"dataset_size": 60000, "sample_rate": 250 / 60000, "max_batch_size": 300,
                      "noise_multiplier": 1.3, "count": 100, "delta": 1e-5},
    "shuffle_lower_bound": {"batches": 240, "noise_multiplier": 1.3, "epochs": 3,
                            "delta": 1e-5},
    "random_allocation_epsilon": {"steps": 100, "noise_multiplier": 1.0, "delta": 1e-3,
                                  "epochs": 1, "selections": 1},
    "random_allocation_pld_epsilon_bounds": {"steps": 100, "noise_multiplier": 1.0,
                                             "delta": 1e-3, "epochs": 1, "selections": 1},
    "random_allocation_rdp": {"steps": 100, "selections": 1, "noise_multiplier": 1.0,
                              "orders": [2.0, 8.0]},
    "rdp_sampled_without_replacement": {"sample_rate": 0.01, "noise_multiplier": 1.1,
                                        "orders": [1.5, 2.0, 32.0]},
    "random_allocation_monte_carlo": {"steps": 100, "noise_multiplier": 1.0, "delta": 1e-3,
                                      "epochs": 1, "samples": 2000},
    "privacy_statement": {"sample_size": 60000, "batch_size": 250, "epochs": 15,
                          "noise_multiplier": 1.3, "delta": 1e-5, "sampling": "shuffle",
                          "max_examples_per_user": 5, "used_microbatching": False},
    "group_privacy_epsilon": {**_RUN, "group_size": 5, "delta": 1e-5},
    "user_level_epsilon_bounds": {**_RUN, "delta": 1e-5, "max_examples_per_user": 3,
                                  "tolerance": 1e-2},
    "calibrate_dpsgd_noise_multiplier": {"target_epsilon": 8.0, "delta": 1e-5,
                                         "sample_size": 60000, "batch_size": 250, "epochs": 15,
                                         "sampling": "shuffle", "accountant": "rdp"},
    "calibrate_dpsgd_steps": {"target_epsilon": 8.0, "delta": 1e-5, "sample_size": 60000,
                              "batch_size": 250, "noise_multiplier": 4.0, "sampling": "shuffle",
                              "accountant": "rdp"},
    "cli_statement": {"command": "statement", "sample_size": 60000, "batch_size": 250,
                      "epochs": 15, "noise_multiplier": 1.3, "delta": 1e-5,
                      "sampling": "shuffle"},
    "cli_epsilon": {"command": "epsilon", "sample_size": 60000, "batch_size": 256,
                    "epochs": 1, "noise_multiplier": 1.1, "delta": 1e-5, "tolerance": 1e-2},
    "cli_delta": {"command": "delta", "sample_rate": 0.01, "steps": 1000,
                  "noise_multiplier": 1.1, "epsilon": 1.0},
    "cli_noise": {"command": "noise", "sample_rate": 0.01, "steps": 1000, "epsilon": 1.0,
                  "delta": 1e-5},
    "cli_steps": {"command": "steps", "sample_rate": 0.01, "noise_multiplier": 1.1,
                  "epsilon": 1.0, "delta": 1e-5},
}


def call(scenario: str, kwargs: dict[str, Any]):
    """Run a scenario by name: a chain defined here, :func:`cli` for ``cli_*``, otherwise the
    public function of :mod:`accounting` of that name."""
    import accounting

    if scenario.startswith("cli_"):
        return cli(**kwargs)
    function = globals().get(scenario) or getattr(accounting, scenario)
    return function(**kwargs)


# ------------------------------------------------------------------------------ outcomes
@dataclass
class Outcome:
    """What one call did: returned (``values`` flattened to floats), raised, or printed."""

    kind: str  # "returned", "raised" or "cli"
    values: list[float] = field(default_factory=list)
    error_types: list[str] = field(default_factory=list)  # the exception's class and bases
    message: str = ""
    status: int | None = None
    stdout: str = ""
    warnings: list[str] = field(default_factory=list)


def _flatten(value, out: list[float]) -> None:
    """Every number inside ``value`` (tuples, lists, arrays, mpmath numbers) as a float."""
    import mpmath
    import numpy as np

    if isinstance(value, (str, bytes)) or value is None:
        return
    if isinstance(value, (bool, np.bool_)):
        return
    if isinstance(value, (mpmath.mpf, mpmath.mpc)):
        out.append(math.nan if mpmath.isnan(value) else float(value))
    elif isinstance(value, (numbers.Real, np.number)):
        out.append(float(value))
    elif isinstance(value, np.ndarray):
        out.extend(np.asarray(value, dtype=float).ravel().tolist())
    elif isinstance(value, (tuple, list)):
        for item in value:
            _flatten(item, out)
    else:
        raise TypeError(f"unexpected result type {type(value).__name__}")


def _names(kind: type) -> list[str]:
    return [base.__name__ for base in kind.__mro__]


def _run_one(scenario: str, kwargs: dict[str, Any]) -> Outcome:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call(scenario, kwargs)
        except Exception as error:  # the test decides which kinds are acceptable
            outcome = Outcome("raised", error_types=_names(type(error)), message=str(error))
        else:
            if scenario.startswith("cli_"):
                status, stdout, stderr = result
                outcome = Outcome("cli", status=status, stdout=stdout, message=stderr)
            else:
                values: list[float] = []
                _flatten(result, values)
                outcome = Outcome("returned", values=values)
    # our own warnings (e.g. a tolerance not met) are part of the contract; NumPy's are leaks
    outcome.warnings = [
        f"{w.category.__module__}.{w.category.__name__}: {w.message}"
        for w in caught
        if not w.category.__module__.startswith("accounting")
    ]
    return outcome


def _serve() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    read, write = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    while True:
        header = read.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack("!I", header)
        scenario, kwargs = pickle.loads(read.read(size))
        try:
            outcome = _run_one(scenario, kwargs)
        except MemoryError as error:  # raised outside the call itself (e.g. while flattening)
            outcome = Outcome("raised", error_types=_names(MemoryError), message=str(error))
        payload = pickle.dumps(asdict(outcome))  # plain data: the parent has no __main__ here
        write.write(struct.pack("!I", len(payload)) + payload)
        write.flush()


def strict_json(text: str):
    """Parse ``text`` as strict JSON (no NaN or Infinity constants)."""

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _serve()
