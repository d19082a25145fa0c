"""The compiled tracker's kernels are compiled once each, not once per literal argument (issue 18).

Numba types a constant argument of a call between compiled functions as a literal
(``Literal[bool](True)``, ``Literal[int](2)``) and compiles a separate machine-code
copy of the callee for each; call sites pass ``np.bool_(...)``/``np.int64(...)``
instead. The oracle is numba's own cache index of every compiled signature
(``<module>.<function>-<line>.py311.nbi``: a pickled version, then the pickled
``(source stamp, overloads)``), read after the loop has been compiled or loaded.
"""

import glob
import os
import pickle

import numpy as np
from numba import config
from numba.core.caching import UserProvidedCacheLocator

import fusion
from fusion.loop import run_tracker_compiled
from sim.config import TrackerConfig
from test_tracker_scenarios import make_detections, midcourse_pair, sites

KERNEL_MODULES = ("loop", "track_kernels", "motion_kernels", "assign_kernels", "initiation", "impact_kernels",
                  "registration_kernels")


def _cache_dir():
    """Where numba keeps the kernels' machine code (the logic of fusion.kernel_cache)."""
    here = os.path.dirname(os.path.abspath(fusion.__file__))
    if config.CACHE_DIR:
        sub = UserProvidedCacheLocator.get_suitable_cache_subpath(os.path.join(here, "loop.py"))
        return os.path.join(config.CACHE_DIR, sub)
    return os.path.join(here, "__pycache__")


def test_no_kernel_is_compiled_for_a_literal_argument():
    t = np.arange(0.0, 21.0)
    d = make_detections(midcourse_pair(t), t, [np.arange(0, 21, 2)], trials=1, seed=3, pd=0.9, fa_rate=0.5)
    se, Re = sites(1)
    for filt, assoc in (("ekf", "gnn"), ("imm", "jpda")):  # compiles or loads the loop (one machine code)
        run_tracker_compiled(d, d.time, se, Re, t, np.arange(1), TrackerConfig(filter=filt, association=assoc),
                             revisit=[2.0])
    indexes = [p for m in KERNEL_MODULES for p in glob.glob(os.path.join(_cache_dir(), m + ".*.nbi"))]
    assert any(os.path.basename(p).startswith("loop.") for p in indexes)
    literal = []
    for path in indexes:
        with open(path, "rb") as f:
            pickle.load(f)  # numba's version
            _, overloads = pickle.loads(f.read())
        literal += [(os.path.basename(path), str(key[0])) for key in overloads if "Literal[" in str(key[0])]
    assert literal == []
