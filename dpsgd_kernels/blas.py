"""How many threads NumPy's BLAS may use during a step.

OpenBLAS (NumPy's wheels ship it) uses every core by default. The products of a DP step on
small models are small and skinny, where waking and synchronising BLAS threads costs more than
they compute; on larger layers the extra threads pay. :func:`limit_blas_threads` sets the BLAS
thread count for a block of code and restores it afterwards; :func:`auto_blas_threads` is the
count that :func:`~dpsgd_kernels.dp_step.dp_gradient` and
:func:`~dpsgd_kernels.dp_step.batch_gradient` use with ``blas_threads="auto"`` (the default):
one thread per ``BLAS_MACS_PER_THREAD`` multiply-adds of the step's largest product, at least
one and never more than the BLAS's own count or the cores the load average leaves idle.

The thread count is set through the BLAS library's own call (``openblas_set_num_threads`` and
its suffixed variants in NumPy's ``scipy_openblas`` builds, ``MKL_Set_Num_Threads``,
``bli_thread_set_num_threads``, ``flexiblas_set_num_threads``), found among the shared libraries
the process has loaded. Where none is found (e.g. Apple's Accelerate) and ``threadpoolctl`` is
installed, it is used instead; otherwise the BLAS keeps its own thread count: ``"auto"`` then
changes nothing, and an explicit count warns once (set ``OPENBLAS_NUM_THREADS`` or
``OMP_NUM_THREADS`` before NumPy is imported instead).

The thread count is process-wide: a limit set in one Python thread holds for BLAS calls made
from every thread until it is restored.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import numbers
import os
import sys
import threading
import warnings

import numpy as np

from dpsgd_kernels import _tuning

__all__ = [
    "MAX_BLAS_THREADS",
    "auto_blas_threads",
    "blas_thread_count",
    "check_blas_threads",
    "limit_blas_threads",
]

MAX_BLAS_THREADS = 4096
"""Largest explicit ``blas_threads`` accepted (beyond any BLAS's compiled-in maximum)."""

# (file-name fragment, setter names, getter names, C type of the count) of BLAS libraries with
# a thread-count call; the first name that resolves in a library is used. NumPy's
# scipy_openblas64 builds suffix their symbols with 64_, scipy_openblas32 has none; BLIS counts
# in dim_t (64 bits).
_KNOWN = (
    ("openblas", ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                  "scipy_openblas_set_num_threads", "openblas_set_num_threads"),
     ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
      "scipy_openblas_get_num_threads", "openblas_get_num_threads"), ctypes.c_int),
    ("mkl_rt", ("MKL_Set_Num_Threads",), ("MKL_Get_Max_Threads",), ctypes.c_int),
    ("flexiblas", ("flexiblas_set_num_threads",), ("flexiblas_get_num_threads",), ctypes.c_int),
    ("blis", ("bli_thread_set_num_threads",), ("bli_thread_get_num_threads",), ctypes.c_int64),
)


class _Library:
    """One loaded BLAS library and its thread-count calls."""

    def __init__(self, path: str, setter, getter) -> None:
        self.path, self._set, self._get = path, setter, getter

    def get(self) -> int:
        return int(self._get())

    def set(self, threads: int) -> None:
        self._set(threads)


class _Threadpoolctl:
    """threadpoolctl's controller of the BLAS libraries, where no library of ours is found."""

    path = "threadpoolctl"

    def __init__(self, controller) -> None:
        self._controller = controller

    def get(self) -> int:
        counts = [info["num_threads"] for info in self._controller.info()]
        return max(counts) if counts else 1

    def set(self, threads: int) -> None:
        for pool in self._controller.lib_controllers:
            pool.set_num_threads(threads)


def _loaded_paths() -> list[str]:
    """Paths of the shared libraries loaded in this process (empty where unknown)."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                fields = (line.split(maxsplit=5) for line in maps)
                paths = {f[5].strip() for f in fields if len(f) == 6 and f[5].startswith("/")}
        except OSError:
            return []
        return sorted(p for p in paths if ".so" in os.path.basename(p))
    if sys.platform == "darwin":
        try:
            libc = ctypes.CDLL(None)
            libc._dyld_get_image_name.restype = ctypes.c_char_p
            return [libc._dyld_get_image_name(i).decode("utf-8", "replace")
                    for i in range(libc._dyld_image_count())]
        except (OSError, AttributeError):
            return []
    return []


def _numpy_lib_dirs() -> list[str]:
    """Where NumPy's wheels keep the libraries they ship (``numpy.libs``, ``numpy/.dylibs``)."""
    package = os.path.dirname(np.__file__)
    return [os.path.join(os.path.dirname(package), "numpy.libs"), os.path.join(package, ".dylibs")]


def _resolve(path: str, setter_names, getter_names, count_type) -> _Library | None:
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    setter = next((getattr(library, n) for n in setter_names if hasattr(library, n)), None)
    getter = next((getattr(library, n) for n in getter_names if hasattr(library, n)), None)
    if setter is None or getter is None:
        return None
    setter.argtypes, setter.restype, getter.argtypes, getter.restype = (
        [count_type], None, [], count_type
    )
    return _Library(path, setter, getter)


def _find_libraries() -> list:
    """The BLAS libraries NumPy uses, with thread-count calls (empty where none is known).

    Libraries in NumPy's own wheel folders are preferred (another package's copy, e.g. SciPy's,
    is not what NumPy's products run on); otherwise every known BLAS loaded in the process.
    """
    paths = _loaded_paths()
    for folder in _numpy_lib_dirs():
        if os.path.isdir(folder):
            paths += [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    found: dict[str, _Library] = {}
    for path in paths:
        name = os.path.basename(path).lower()
        for fragment, setters, getters, count_type in _KNOWN:
            if fragment in name and os.path.realpath(path) not in found:
                library = _resolve(path, setters, getters, count_type)
                if library is not None:
                    found[os.path.realpath(path)] = library
                break
    dirs = tuple(os.path.realpath(d) + os.sep for d in _numpy_lib_dirs())
    own = [lib for key, lib in found.items() if key.startswith(dirs)]
    if own or found:
        return own or list(found.values())
    try:
        import threadpoolctl  # optional: covers BLAS builds this module does not know
    except ImportError:
        return []
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    return [_Threadpoolctl(controller)] if controller.lib_controllers else []


_libraries: list | None = None
_lock = threading.Lock()
_warned = False


def _blas() -> list:
    global _libraries
    if _libraries is None:
        with _lock:
            if _libraries is None:
                _libraries = _find_libraries()
    return _libraries


def blas_thread_count() -> int | None:
    """The number of threads NumPy's BLAS may use now, or ``None`` if it cannot be read."""
    libraries = _blas()
    return max(lib.get() for lib in libraries) if libraries else None


def check_blas_threads(blas_threads, name: str = "blas_threads"):
    """``blas_threads`` after checking it: ``"auto"``, ``None`` or an integer in
    ``[1, MAX_BLAS_THREADS]``; anything else is a ``ValueError`` naming the allowed values."""
    if blas_threads is None or (isinstance(blas_threads, str) and blas_threads == "auto"):
        return blas_threads
    if (isinstance(blas_threads, (numbers.Integral, np.integer))
            and not isinstance(blas_threads, (bool, np.bool_))
            and 1 <= blas_threads <= MAX_BLAS_THREADS):
        return int(blas_threads)
    raise ValueError(
        f"{name} must be 'auto', None (leave BLAS alone) or an integer in "
        f"[1, {MAX_BLAS_THREADS}], got {blas_threads!r}"
    )


def auto_blas_threads(largest_product_macs: float, available: int) -> int:
    """Threads for a step whose largest matrix product has ``largest_product_macs``
    multiply-adds: ``floor(macs / BLAS_MACS_PER_THREAD)``, clipped to ``[1, available]`` and,
    where the system reports a load average, to the cores it leaves idle (plus this one).

    BLAS threads wait for each other at the end of every product, so one that shares its core
    with another busy process stalls the whole product for a scheduler slice: on a busy
    machine fewer threads finish sooner.
    """
    available = max(1, int(available))
    wanted = largest_product_macs / _tuning.BLAS_MACS_PER_THREAD
    if not wanted >= 2:  # also NaN
        return 1
    threads = available if not math.isfinite(wanted) else min(available, int(wanted))
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return threads
    idle = (os.cpu_count() or 1) - busy
    return max(1, min(threads, 1 + int(max(idle, 0.0))))


class _Limit:
    """Context manager: set ``threads`` on ``libraries`` on entry, restore each one's count on
    exit (also on an exception); yields ``threads``, or ``shown`` when nothing is changed."""

    __slots__ = ("_changed", "_libraries", "_shown", "_threads")

    def __init__(self, threads: int | None, libraries: list, shown: int | None = None) -> None:
        self._threads, self._libraries, self._shown = threads, libraries, shown
        self._changed: list = []

    def __enter__(self) -> int | None:
        threads = self._threads
        if threads is None or not self._libraries:
            return self._shown
        changed = []
        for lib in self._libraries:
            count = lib.get()
            if count != threads:
                lib.set(threads)
                changed.append((lib, count))
        self._changed = changed
        return threads

    def __exit__(self, *exc_info) -> bool:
        for lib, count in self._changed:
            lib.set(count)
        self._changed = []
        return False


def limit_blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context manager that lets NumPy's BLAS use ``threads`` threads inside its ``with``
    block and restores the BLAS's count after it (also on an exception).

    Parameters
    ----------
    threads : int or None
        ``1 <= threads <= MAX_BLAS_THREADS``; ``None`` changes nothing.

    Returns
    -------
    context manager
        Its ``with ... as count`` gives the count in force inside the block, or ``None``
        where nothing was changed: ``threads=None``, or the BLAS's count is unknown (a
        ``RuntimeWarning`` says so once, for an explicit count).

    Raises
    ------
    ValueError
        ``threads`` not ``None`` or an integer in ``[1, MAX_BLAS_THREADS]``.

    Examples
    --------
    >>> import numpy as np
    >>> from dpsgd_kernels.blas import limit_blas_threads
    >>> with limit_blas_threads(1):
    ...     product = np.ones((64, 64)) @ np.ones((64, 64))
    """
    if isinstance(threads, str):
        raise ValueError(f"threads must be None or an integer in [1, {MAX_BLAS_THREADS}], "
                         f"got {threads!r}")
    threads = check_blas_threads(threads, "threads")
    libraries = _blas() if threads is not None else []
    if threads is not None and not libraries:
        _warn_unknown()
    return _Limit(threads, libraries)


def _warn_unknown() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "blas_threads: no thread-count call found for NumPy's BLAS (not OpenBLAS, MKL, BLIS "
            "or FlexiBLAS, and threadpoolctl is not installed); it keeps its own thread count. "
            "Set OPENBLAS_NUM_THREADS or OMP_NUM_THREADS before importing NumPy instead.",
            RuntimeWarning, stacklevel=4,
        )


def _step_threads(blas_threads, largest_product_macs: float) -> _Limit:
    """The thread limit of one step for a validated ``blas_threads``: ``"auto"``
    (:func:`auto_blas_threads` of the BLAS's current count), an integer, or ``None``."""
    if blas_threads == "auto":
        libraries = _blas()
        available = max(lib.get() for lib in libraries) if libraries else None
        if available is None or available <= 1:
            return _Limit(None, libraries, available)
        threads = auto_blas_threads(largest_product_macs, available)
        return _Limit(threads if threads < available else None, libraries, available)
    if blas_threads is None:
        return _Limit(None, [])
    return limit_blas_threads(blas_threads)
