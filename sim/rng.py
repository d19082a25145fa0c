"""Per-trial random streams.

Trial k always draws the same numbers, whatever the batch size or the order in
which chunks of trials are run: every trial owns a ``SeedSequence`` spawned
from the scenario seed, and each stage of the data flow (truth dispersions,
sensor noise, ...) draws from its own child of it.

References
----------
NumPy, *Parallel random number generation* (SeedSequence.spawn).
"""

from __future__ import annotations

import numpy as np

# Fixed child index per stage of the data flow, so adding a stage never shifts another's numbers.
STREAMS = {"truth": 0, "sensors": 1, "tracker": 2, "site": 3}


def trial_generators(seed: int, trials, stream: str) -> list[np.random.Generator]:
    """One generator per trial for one stage of the data flow.

    Parameters
    ----------
    seed : int
        Scenario seed (non-negative).
    trials : int or sequence of int
        Number of trials (0..n-1) or the global indices of the trials wanted.
    stream : str
        Stage name, a key of :data:`STREAMS`.

    Returns
    -------
    list of numpy.random.Generator
        ``gens[i]`` belongs to trial ``trials[i]``; identical for a given
        ``(seed, trial, stream)`` whatever else is asked for.

    Raises
    ------
    KeyError
        Unknown stream name.
    """
    idx = range(trials) if isinstance(trials, (int, np.integer)) else [int(k) for k in trials]
    child = STREAMS[stream]
    root = np.random.SeedSequence(int(seed))
    out = []
    for k in idx:
        # Same as SeedSequence(seed).spawn(n)[k].spawn(child + 1)[child], without spawning n.
        ss = np.random.SeedSequence(root.entropy, spawn_key=(k, child))
        out.append(np.random.Generator(np.random.PCG64(ss)))
    return out
