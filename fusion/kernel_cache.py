"""Consistency of numba's on-disk cache of the compiled tracker's kernel modules.

Imported first by :mod:`fusion.motion_kernels`, :mod:`fusion.track_kernels`,
:mod:`fusion.assign_kernels`, :mod:`fusion.initiation`, :mod:`fusion.registration_kernels`, :mod:`fusion.loop` and
:mod:`fusion.impact_kernels`; see :func:`_invalidate_stale_cache`.

Compile time: numba types a constant argument of a call between compiled functions
as a literal (``Literal[bool](True)``, ``Literal[int](2)``) and compiles a separate
copy of the callee, and of everything it calls, for each value; the kernel modules
therefore pass ``np.bool_(...)``/``np.int64(...)`` at such call sites (one machine
code per kernel; tests/test_kernel_cache.py). That cut the cold compile of a 1-trial run
from 106 s to 92 s of CPU (issue 18; README, "cold compile").
"""

from __future__ import annotations

import glob
import hashlib
import os

def _invalidate_stale_cache():
    """Drop numba's cached machine code of the kernel modules when any of their sources changed.

    Numba keys a cached function by the stamp of its own source file only, but the
    loop's machine code contains its callees from the other kernel modules: after
    an edit of, say, :mod:`fusion.motion_kernels` alone, the cached loop would run
    the old kernels. A digest of all their sources, stored next to the cache, tells.
    The cache of :mod:`fusion.impact_kernels` (which calls the motion kernels) is
    dropped with them; its own source is not in the digest, since no kernel module
    calls it (an edit of it alone is numba's own stamp check).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    names = ("loop", "track_kernels", "motion_kernels", "assign_kernels", "initiation", "registration_kernels")
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(here, name + ".py"), "rb") as f:
            digest.update(f.read())
    from numba import config
    from numba.core.caching import UserProvidedCacheLocator

    if config.CACHE_DIR:  # NUMBA_CACHE_DIR: numba's own layout below it
        sub = UserProvidedCacheLocator.get_suitable_cache_subpath(os.path.join(here, "loop.py"))
        cache_dir = os.path.join(config.CACHE_DIR, sub)
    else:
        cache_dir = os.path.join(here, "__pycache__")
    stamp = os.path.join(cache_dir, "kernels.sha256")
    try:
        with open(stamp) as f:
            if f.read().strip() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        os.makedirs(cache_dir, exist_ok=True)
        for name in names + ("impact_kernels",):
            for path in glob.glob(os.path.join(cache_dir, name + ".*.nb[ic]")):
                os.remove(path)
        tmp = stamp + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(digest.hexdigest())
        os.replace(tmp, stamp)
    except OSError:  # a read-only install: numba then compiles in memory
        pass


def _default_optimisation_level():
    """Compile at LLVM -O2 unless ``NUMBA_OPT`` is set (numba's default is -O3).

    Numba optimises every kernel's module, then again each caller's module with its
    callees linked in, so the deep call chains of the loop are optimised many times
    over; at -O2 the cold compile of a 1-trial run took 71-75 s of CPU instead of 92 s
    (-O1: 70 s), with the same metrics.json byte for byte (no fast-math: LLVM keeps
    IEEE results at any level); the loop runs about 4 % slower than at -O3 (-O1:
    11 %) (issue 18; README, "cold compile"). Set through the environment, which
    numba re-reads at each compile, so that a user's own ``NUMBA_OPT`` wins; it
    applies to the whole process.
    """
    if "NUMBA_OPT" not in os.environ:
        os.environ["NUMBA_OPT"] = "2"
        from numba.core import config

        config.reload_config()


_default_optimisation_level()
_invalidate_stale_cache()

