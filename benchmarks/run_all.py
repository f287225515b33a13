"""Run every benchmark in one go and put ours side by side with the peers (``make bench``).

Runs, one after the other on this machine:

- ``benchmarks/accounting_speed.py`` and ``benchmarks/kernel_speed.py`` (our figures);
- ``benchmarks/import_time.py`` (start-up: ``import accounting``, ``dp-budget``, and the peers'
  imports where installed);
- ``benchmarks/tf_step_speed.py`` with ``--tf-python`` when that file exists and TensorFlow
  imports in that interpreter (the TensorFlow adapter's step);
- ``benchmarks/peers.py`` (ours against dp_accounting, Opacus and prv_accountant on the same
  inputs, in the same process);
- ``benchmarks/samplers_speed.py`` (fixed-size, truncated, mixture-of-Gaussians, balls-in-bins
  and shuffle events against dp_accounting, pld-accounting and random-allocation);
- ``benchmarks/rdp_speed.py`` (epsilon over many step counts, one RDP epsilon and a (q, sigma)
  grid against dp-accelerator and dp_accounting's RDP);
- ``benchmarks/pld_scaling.py`` (the certified PLD from 1e2 to 1e9 steps against dp_accounting's
  PLD, and PLD noise calibration).

The tables these three and ``kernel_speed.py`` print are copied into ``results.md`` as printed.

Each script's last output line is a JSON object; they are collected into side-by-side tables with
``ours / peer`` ratios (time ratios below 1 mean ours is faster), printed, and written with a
description of the machine to ``benchmarks/results.md``. The last line printed is one JSON object
of the ratios.

    python benchmarks/run_all.py [--tf-python PATH] [--quick] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from settings import SETTINGS_TEXT  # noqa: E402  (a sibling script, not a package)


def run_script(python: str, script: Path, args=()) -> tuple[dict | None, str, float]:
    """Run ``python script args``; ``(last-line JSON or None, output, seconds)``."""
    start = time.perf_counter()
    completed = subprocess.run([python, str(script), *args], cwd=ROOT, capture_output=True,
                               text=True, check=False)
    seconds = time.perf_counter() - start
    output = completed.stdout + (f"\n[stderr]\n{completed.stderr}" if completed.returncode else "")
    lines = [line for line in completed.stdout.strip().splitlines() if line.strip()]
    figures = None
    if completed.returncode == 0 and lines:
        try:
            figures = json.loads(lines[-1])
        except json.JSONDecodeError:
            figures = None
    return figures, output, seconds


def tensorflow_python(candidate: str | None) -> tuple[str | None, str]:
    """An interpreter where TensorFlow imports (the given one, else this one), with a note."""
    for python in (candidate, sys.executable):
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run([python, "-c", "import tensorflow as tf; print(tf.__version__)"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return python, f"TensorFlow {probe.stdout.strip()} ({python})"
    return None, f"TensorFlow does not import (tried {candidate or '-'} and {sys.executable})"


def code_version() -> str:
    """The commit measured, and whether the measured packages differ from it."""
    def git(*args):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                check=False)
        return result.stdout if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return "not a git checkout"
    # porcelain lines are "XY path": their leading blank is part of the status; this run's own
    # output is not a change to what it measures
    changed = git("status", "--porcelain", "--", "accounting", "dpsgd_kernels", "benchmarks",
                  ":(exclude)benchmarks/results.md")
    paths = [line[3:] for line in changed.splitlines() if line.strip()]
    return f"commit {commit}" + (f" with local changes in {', '.join(paths)}" if paths else "")


def machine() -> dict:
    """CPU, cores, load, OS and the versions that matter, for the results file."""
    import numpy
    import scipy

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": cpu, "cores": cores, "load_average_at_start": load,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "code": code_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ------------------------------------------------------------------------------------ tables
def _g(value, digits=6):
    if value is None:
        return "–"
    return f"{value:.{digits}g}"


def _ms(value):
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _ratio(ours, theirs):
    if ours is None or theirs in (None, 0):
        return None
    return ours / theirs


def _r(value):
    return "–" if value is None else f"{value:.3g}"


def _table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _rdp_peer_ratios(row, ratios, figure: str, key: str):
    """ours/peer time of ``row`` against dp_accounting and Opacus, each also recorded in
    ``ratios[f"{figure}_vs_{peer}"][key]``."""
    pair = []
    for peer in ("dp_accounting", "opacus"):
        ratio = _ratio(row["ours_ms"], row.get(f"{peer}_ms"))
        ratios.setdefault(f"{figure}_vs_{peer}", {})[key] = ratio
        pair.append(ratio)
    return tuple(pair)


def rdp_section(peers, ratios) -> list[str]:
    rows = []
    for r in peers["rdp"]:
        dpa, opa = _rdp_peer_ratios(r, ratios, "rdp_time", r["setting"])
        rows.append([r["setting"], _g(r["ours_eps"]), _g(r.get("dp_accounting_eps")),
                     _g(r.get("opacus_eps")), _ms(r["ours_ms"]), _ms(r.get("dp_accounting_ms")),
                     _ms(r.get("opacus_ms")), _r(dpa), _r(opa)])
    return ["## RDP accountant: ε and time", "",
            "Improved conversion; each library at its own default orders. Time of one fresh "
            "accountant: compose, then ε.", ""] + _table(
        ["setting", "ε ours", "ε dp_accounting", "ε Opacus", "ours ms", "dp_accounting ms",
         "Opacus ms", "ours/dp_accounting", "ours/Opacus"], rows)


def pld_section(peers, ratios) -> list[str]:
    lines = ["## Tight accountants: certified bracket, width and time", "",
             "dp_accounting PLD: pessimistic (upper) and optimistic (lower) estimates at its "
             "default `value_discretization_interval` 1e-4; its certified width is their "
             "difference; its time is the pessimistic estimate alone (what `PLDAccountant` "
             "computes, the call its users make). Ours: `PldAccountant(tolerance=t)` at the "
             "loosest `t` of 0.3, 0.1, 0.03, ... 1e-5 whose bracket is no wider and whose upper "
             "bound is no larger than the peer's (a PRV bracket is 2 eps_error wide), and at our "
             "default `1e-3`. Opacus PRV and prv_accountant: (lower, estimate, upper) at "
             "`eps_error` 0.01 and 0.1 (Opacus's public `get_epsilon` returns the upper one). The "
             "ratio column compares ours matched to the peer with the peer in that row.", ""]
    rows = []
    for r in peers["pld"]:
        s = r["setting"]

        def ours_row(key, label, r=r, s=s):
            o = r.get(key)
            if o is None:
                return None
            rows.append([s, label, f"tolerance {o['tolerance']:.3g}", f"{o['lower']:.5f}", "",
                         f"{o['upper']:.5f}", f"{o['width']:.3g}", _ms(o["ms"]), ""])
            return o

        matched = ours_row("ours_dp_accounting", "ours PLD (matched to dp_accounting)")
        if "dp_accounting_upper" in r:
            ratio = _ratio(matched["ms"], r["dp_accounting_upper_ms"]) if matched else None
            ratios.setdefault("pld_time_vs_dp_accounting_pld", {})[s] = ratio
            rows.append([s, "dp_accounting PLD", "grid 1e-4", f"{r['dp_accounting_lower']:.5f}",
                         "", f"{r['dp_accounting_upper']:.5f}",
                         f"{r['dp_accounting_width']:.3g}", _ms(r["dp_accounting_upper_ms"]),
                         _r(ratio)])
        for key in sorted(k for k in r if k.startswith("ours_prv_")):
            eps_error = key.removeprefix("ours_prv_")
            o = ours_row(key, f"ours PLD (matched to Opacus PRV {eps_error})")
            for peer, label in (("opacus_prv", "Opacus PRV"), ("prv_accountant", "prv_accountant")):
                entry = r.get(f"{peer}_{eps_error}")
                if entry is None:
                    continue
                bracket = entry.get("bracket") or (None, None, entry.get("upper"))
                ratio = _ratio(o["ms"], entry["ms"])
                ratios.setdefault(f"pld_time_vs_{peer}_{eps_error}", {})[s] = ratio
                width = None if bracket[0] is None else bracket[2] - bracket[0]
                rows.append([s, label, f"eps_error {eps_error}", _g(bracket[0]),
                             _g(bracket[1]), _g(bracket[2]), _g(width, 3), _ms(entry["ms"]),
                             _r(ratio)])
        ours_row("ours_default", "ours PLD (default)")
    lines += _table(["setting", "accountant", "configuration", "lower", "estimate", "upper",
                     "width", "ms", "ours/peer time"], rows)
    return lines


def calibration_section(peers, ratios) -> list[str]:
    rows = []
    for r in peers["calibration"]:
        dpa, opa = _rdp_peer_ratios(r, ratios, "calibration_time", f"eps {r['target']:g}")

        def cell(name, r=r):
            sigma = r.get(f"{name}_sigma")
            return "–" if sigma is None else f"{sigma:.6f} (ε {r[f'{name}_eps']:.5f})"

        rows.append([f"{r['target']:g}", cell("ours"), cell("dp_accounting"), cell("opacus"),
                     _ms(r["ours_ms"]), _ms(r.get("dp_accounting_ms")), _ms(r.get("opacus_ms")),
                     _r(dpa), _r(opa)])
    return ["## Noise calibration (setting A's q, steps and δ)", "",
            "Smallest σ meeting the target with the RDP accountant. Ours and "
            "`dp_accounting.calibrate_dp_mechanism`: 1e-6 in σ; Opacus `get_noise_multiplier`: "
            "its default 0.01 in ε. The ε in brackets is our RDP ε at the σ returned.", ""] + \
        _table(["target ε", "σ ours", "σ dp_accounting", "σ Opacus", "ours ms",
                "dp_accounting ms", "Opacus ms", "ours/dp_accounting", "ours/Opacus"], rows)


def grid_section(peers, ratios) -> list[str]:
    g = peers["grid"]
    rows = [["ours (`epsilon_grid`, all at once)", f"{g['ours_ms']:.4f}",
             f"{g['ours_total_s']:.2f}", "", ""]]
    for key, label in (("dp_accounting", "dp_accounting"), ("opacus", "Opacus")):
        if f"{key}_ms" in g:
            ratio = g["ours_ms"] / g[f"{key}_ms"]
            ratios[f"grid_time_per_config_vs_{key}"] = ratio
            rows.append([f"{label} (one accountant per configuration, {g['peer_sample']} sampled)",
                         f"{g[f'{key}_ms']:.3f}", f"{g[f'{key}_ms'] * g['configs'] / 1e3:.0f} "
                         "(extrapolated)", f"{g[f'{key}_max_rel_diff']:.1e}", _r(ratio)])
    return ["## A grid of 10⁴ configurations", "",
            "100 sample rates (1e-4 … 0.1, geometric) × 100 noise multipliers (0.6 … 5), 1000 "
            "steps, δ 1e-5, RDP. The peers' ε differ from ours where their order sets end below "
            "the optimal order (max relative difference on the sample).", ""] + _table(
        ["who", "ms per configuration", "s for 10⁴", "max rel. diff of ε", "ours/peer time"],
        rows)


def _flatten(figures, prefix="") -> dict:
    flat = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tf_step_lines(kernel, tf_step, tf_note, ratios) -> list[str]:
    """The TF step table: ``figures[model]["seconds"][step]`` of tf_step_speed.py, with the NumPy
    kernel's DP step over the adapter's fastest DP step and over Keras's non-private step."""
    lines = [f"TensorFlow adapter step ({tf_note}), batch "
             f"{tf_step.get('info', {}).get('batch', '?')}, ms (medians):", ""]
    rows = []
    for model, entry in tf_step.get("figures", {}).items():
        seconds = entry.get("seconds", {}) if isinstance(entry, dict) else {}
        if not seconds:
            continue
        numpy_dp = (kernel or {}).get(f"{model}_dp_ms")
        dp_steps = {k: v for k, v in seconds.items() if k.startswith("adapter_dp")}
        plain = seconds.get("keras_sgd_tf_function")
        fastest = min(dp_steps.values()) if dp_steps else None
        vs_dp = _ratio(numpy_dp, None if fastest is None else fastest * 1e3)
        vs_plain = _ratio(numpy_dp, None if plain is None else plain * 1e3)
        ratios[f"numpy_dp_step_vs_tf_adapter_dp_{model}"] = vs_dp
        ratios[f"numpy_dp_step_vs_keras_nonprivate_{model}"] = vs_plain
        steps = ", ".join(f"{k} {v * 1e3:.3g}" for k, v in seconds.items())
        rows.append([model, steps, _ms(numpy_dp), _r(vs_dp), _r(vs_plain)])
    if rows:
        lines += _table(["model", "TF steps (ms)", "NumPy kernel DP ms", "NumPy DP / TF adapter DP",
                         "NumPy DP / Keras non-private"], rows)
    else:
        lines += _table(["figure", "value"], [[k, v] for k, v in _flatten(tf_step).items()])
    return lines


def kernel_section(kernel, tf_step, tf_note, ratios) -> list[str]:
    lines = ["## DP-SGD step (from kernel_speed.py and tf_step_speed.py)", ""]
    if kernel:
        rows = []
        for model in ("mlp", "cnn"):
            if f"{model}_dp_ms" not in kernel:
                continue
            rows.append([model, kernel.get(f"{model}_nonprivate_ms"), kernel[f"{model}_dp_ms"],
                         kernel.get(f"{model}_naive_dp_ms"),
                         kernel.get(f"{model}_dp_over_nonprivate"),
                         kernel.get(f"{model}_naive_over_dp")])
        lines += [f"NumPy kernel, batch {kernel.get('batch')}, {kernel.get('dtype')}, "
                  f"BLAS threads {kernel.get('blas_threads')} (ms, medians):", ""]
        lines += _table(["model", "non-private", "DP", "naive DP loop", "DP/non-private",
                         "naive/DP"], rows)
    else:
        lines.append("kernel_speed.py gave no figures (see its output above).")
    lines += [""]
    if tf_step:
        lines += tf_step_lines(kernel, tf_step, tf_note, ratios)
    else:
        lines.append(f"TensorFlow step: not measured ({tf_note}).")
    return lines


#: First answers in a fresh process: (ours, peer, ratio key) labels of import_time.py's rows.
FIRST_CALLS = [
    ("first RDP ε, setting A: accounting", "first RDP ε, setting A: dp_accounting",
     "first_rdp_call_vs_dp_accounting"),
    ("first RDP ε, setting A: accounting", "first RDP ε, setting A: Opacus",
     "first_rdp_call_vs_opacus"),
    ("first PLD ε, setting A: accounting (tolerance 1e-3)",
     "first PLD ε, setting A: dp_accounting (grid 1e-4)", "first_pld_call_vs_dp_accounting"),
    ("import accounting", "import dp_accounting (RDP + PLD)", "import_vs_dp_accounting"),
    ("import accounting", "import opacus.accountants", "import_vs_opacus"),
    ("import accounting", "import prv_accountant", "import_vs_prv_accountant"),
]


def startup_section(startup, ratios=None) -> list[str]:
    lines = ["## Start-up and first answers (from import_time.py)", ""]
    if not startup:
        return lines + ["import_time.py gave no figures (see its output above)."]
    seconds = startup["import_seconds"]
    calls = startup.get("first_call_seconds", {})
    rows = [[label, f"{value:.3f}", "–" if label not in calls else f"{calls[label] * 1e3:.2f}"]
            for label, value in seconds.items()]
    lines += _table(["fresh process", "median s (process)", "the first call alone ms"], rows)
    lines += ["", f"Median of {startup['repeats']} fresh interpreters each, the interpreter's "
              "own start included (first row); the first call alone is timed inside the "
              "process after its imports. Ours / peer in fresh processes:", ""]
    pairs = []
    for ours, peer, key in FIRST_CALLS:
        ratio = _ratio(seconds.get(ours), seconds.get(peer))
        alone = _ratio(calls.get(ours), calls.get(peer))
        if ratios is not None:
            ratios[key] = ratio
            if alone is not None:
                ratios[key + "_call_alone"] = alone
        pairs.append([f"{ours} / {peer}", _r(ratio), _r(alone)])
    return lines + _table(["fresh processes", "ours / peer (process)",
                           "ours / peer (the call alone)"], pairs)


def samplers_section(samplers, ratios) -> list[str]:
    lines = ["## Samplers other than Poisson (from samplers_speed.py)", "",
             "Setting B unless stated; ours: RDP ε or the certified PLD bracket [lower, upper] "
             "(default tolerance 1e-3); dp_accounting's PLD: pessimistic estimate, grid 1e-4; "
             "pld-accounting: its certified [lower, upper].", ""]
    if not samplers:
        return lines + ["samplers_speed.py gave no figures (see its output above)."]

    def cell(value):
        if isinstance(value, list):
            return "[" + ", ".join(f"{v:.4f}" for v in value) + "]"
        return _g(value)

    rows = []
    for row in samplers["samplers"]:
        ratio = _ratio(row["ours_ms"], row.get("peer_ms"))
        ratios.setdefault("samplers_time", {})[f"{row['what']} ({row['setting']})"] = ratio
        rows.append([row["what"], row["setting"], cell(row.get("ours_eps", row.get("ours_pld"))),
                     _ms(row["ours_ms"]), row.get("peer", "–"),
                     cell(row.get("peer_range", row.get("peer_eps"))), _ms(row.get("peer_ms")),
                     _r(ratio)])
        if "ours_pld_ms" in row:
            rows.append([row["what"].replace("RDP", "PLD"), row["setting"],
                         cell(row["ours_pld"]), _ms(row["ours_pld_ms"]), "–", "–", "–", "–"])
    return lines + _table(["what", "setting", "ours ε", "ours ms", "peer", "peer ε", "peer ms",
                           "ours/peer time"], rows)


def printed_tables(title: str, note: str, output: str | None) -> list[str]:
    """A section of the Markdown tables (and the lines between them) a script printed."""
    lines = [f"## {title}", "", note, ""]
    if not output:
        return lines + ["(the script gave no output: see `make bench`'s log)"]
    body = [line for line in output.splitlines()
            if not line.startswith("{") and not line.startswith("[stderr]")]
    keep = [line for line in body if line.startswith("|") or (line and not line[0].isspace())]
    return lines + keep


def write_results(path, info, peers, accounting_figures, kernel, tf_step, tf_note,
                  elapsed, startup=None, samplers=None, printed=()) -> dict:
    ratios: dict = {}
    lines = ["# Benchmarks side by side with peer libraries", "",
             f"Produced by `make bench` (`python benchmarks/run_all.py`) in {elapsed:.0f} s on "
             f"{info['date']}, code at {info['code']}. Ratios are ours / peer (time: below 1 "
             "means ours is faster); every figure of a table comes from the same run on the same "
             "inputs.", "",
             "## Machine", "",
             f"- CPU: {info['cpu']}, {info['cores']} cores available, shared with other work "
             f"(load average at start {info['load_average_at_start']}); timings drift by tens of "
             "percent between runs, so read ratios to one significant figure.",
             f"- {info['os']}, Python {info['python']}, NumPy {info['numpy']}, SciPy "
             f"{info['scipy']}",
             "- Peers: " + (", ".join(f"{k} {v}" for k, v in peers.get("peers", {}).items())
                            or "none installed"), ""]
    for note in peers.get("notes", []):
        lines.append(f"- Skipped: {note}")
    lines += ["", "Settings: " + "; ".join(f"**{k}** = {v}" for k, v in SETTINGS_TEXT.items()),
              ""]
    for section in (rdp_section, pld_section, calibration_section, grid_section):
        lines += section(peers, ratios) + [""]
    lines += kernel_section(kernel, tf_step, tf_note, ratios) + [""]
    lines += samplers_section(samplers, ratios) + [""]
    for title, note, output in printed:
        lines += printed_tables(title, note, output) + [""]
    lines += startup_section(startup, ratios) + [""]
    if accounting_figures:
        lines += ["## accounting_speed.py (its JSON line, same run)", ""]
        lines += _table(["figure", "value"], [[k, v] for k, v in accounting_figures.items()])
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return ratios


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", help="interpreter with TensorFlow for tf_step_speed.py")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    info = machine()
    started = time.perf_counter()
    python = sys.executable
    quick = ["--repeats", "3"] if args.quick else []

    accounting_figures, output, seconds = run_script(python, HERE / "accounting_speed.py", quick)
    print(output, f"[accounting_speed.py: {seconds:.0f} s]\n", sep="")
    startup, output, seconds = run_script(python, HERE / "import_time.py", quick)
    print(output, f"[import_time.py: {seconds:.0f} s]\n", sep="")
    kernel, kernel_output, seconds = run_script(
        python, HERE / "kernel_speed.py", ["--repeats", "5", "--naive-repeats", "1"]
        if args.quick else [])
    print(kernel_output, f"[kernel_speed.py: {seconds:.0f} s]\n", sep="")

    tf_step, tf_note = None, "benchmarks/tf_step_speed.py does not exist yet"
    if (HERE / "tf_step_speed.py").exists():
        tf_python, tf_note = tensorflow_python(args.tf_python)
        if tf_python is not None:
            tf_step, output, seconds = run_script(tf_python, HERE / "tf_step_speed.py")
            print(output, f"[tf_step_speed.py: {seconds:.0f} s]\n", sep="")
            if tf_step is None:
                tf_note += "; tf_step_speed.py gave no JSON line"

    peers, output, seconds = run_script(python, HERE / "peers.py",
                                        ["--quick", "--repeats", "1"] if args.quick else [])
    print(output, f"[peers.py: {seconds:.0f} s]\n", sep="")
    if peers is None:
        print("peers.py failed; no results written", file=sys.stderr)
        return 1

    samplers, output, seconds = run_script(python, HERE / "samplers_speed.py",
                                           ["--quick"] if args.quick else [])
    print(output, f"[samplers_speed.py: {seconds:.0f} s]\n", sep="")

    printed = [("DP-SGD step beside peers at 1 and the default thread count (kernel_speed.py)",
                "Batch 256, float32, medians in ms; each library and thread count in its own "
                "process, timed round-robin.", kernel_output)]
    for script, title, note, extra in (
        ("rdp_speed.py", "RDP epsilon over many step counts and grids (rdp_speed.py)",
         "Ours (`accounting.epsilon_curve`, `epsilon_grid`, `RdpAccountant`) beside "
         "dp-accelerator 0.1.0 (Rust) and dp_accounting 0.6's RDP on the same inputs.",
         ["--quick"] if args.quick else []),
        ("pld_scaling.py", "Certified PLD as the number of steps grows (pld_scaling.py)",
         "q = 256/60000, sigma 1.1, delta 1e-5. dp_accounting's `PLDAccountant` at its default "
         "grid 1e-4 (its pessimistic estimate; it certifies no width). Ours matched: the "
         "loosest relative width whose certified upper bound is at most the peer's estimate. "
         "Then PLD noise calibration (bracket width 1e-2) per target, beside RDP's.",
         ["--quick", "--repeats", "1"] if args.quick else []),
    ):
        _, output, seconds = run_script(python, HERE / script, extra)
        print(output, f"[{script}: {seconds:.0f} s]\n", sep="")
        printed.append((title, note, output))

    ratios = write_results(args.output, info, peers, accounting_figures, kernel, tf_step, tf_note,
                           time.perf_counter() - started, startup, samplers, printed)
    print(args.output.read_text(encoding="utf-8"))
    print(f"[written to {args.output}]")
    print(json.dumps({"machine": info, "ratios_ours_over_peer": ratios, "tf_step": tf_note}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
