"""Run code in a fresh interpreter under a 2 GiB address-space cap and one BLAS thread, so that
a test of an allocation that once grew without bound fails instead of exhausting the machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Address-space cap of the child interpreter (issue 16's 2 GiB).
MEMORY_LIMIT_BYTES = 2 << 30
#: One thread for BLAS and OpenMP: their per-thread buffers count against the cap.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_capped(code: str, timeout: float) -> str:
    """Run ``code`` (dedented) capped at :data:`MEMORY_LIMIT_BYTES`; its stdout. Fails the
    calling test, with the child's stderr, if it exits with an error."""
    prelude = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **SINGLE_THREAD_ENV}, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout
