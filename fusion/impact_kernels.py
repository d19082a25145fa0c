"""Ground crossing of states in the atmosphere with the tracker's own drag model (numba).

The predicted impact point (IPP) of :func:`fusion.metrics.predict_ground_crossing`
propagates a track state drag-free until the atmosphere can act on it within the next
step (:func:`fusion.drag.in_atmosphere`), and then with the model the compiled tracker
predicts with in the atmosphere: J2 gravity, Coriolis and centrifugal terms and drag
with the nominal ballistic coefficient :data:`fusion.drag.NOMINAL_BALLISTIC_COEFF`
(:func:`fusion.motion_kernels.drag_transition`, Li & Jilkov, IEEE Trans. AES 46(1),
2010, sec. IV; Zarchan, *Tactical and Strategic Missile Guidance*, 6th ed., 2012,
ch. 8-9). This module is that second part, one state at a time, so that each state
takes its own substeps (:func:`fusion.motion_kernels.drag_substeps`: at most
:data:`fusion.drag.DRAG_MAX_STEP_S`, and :data:`fusion.drag.DRAG_STEP_HEIGHT` of height
per substep where the drag is stiff) and its result does not depend on which other
states share the call.

Each step of ``h`` seconds is integrated substep by substep (RK4 of the drag model,
:func:`fusion.motion_kernels.variational_rk4` with one substep at a time: the same
bits as the tracker's ``drag_transition`` over the whole step); the first substep
that ends at or below the ellipsoid is bisected on its length (the crossing of
:func:`fusion.motion_kernels.height`, which is zero exactly on the ellipsoid, as the
geodetic altitude is). The transition matrix to the crossing, for the IPP's own
uncertainty, is the product of the substeps' variational matrices (Montenbruck & Gill,
*Satellite Orbits*, 2000, sec. 7.1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)
from fusion import motion_kernels as mk

_DRAG_MODE = 2  # fusion.motion_kernels._stage: nominal drag


@njit(cache=True)
def _substep(s, hs, in_air, want_F, out, F):
    """One RK4 substep of ``hs`` s from ``s`` into ``out`` (and ``F`` if ``want_F``): drag or drag-free model."""
    if in_air:
        mk.variational_rk4(s, hs, 1, _DRAG_MODE, 0.0, 0.0, want_F, out, F)
    else:
        mk.ballistic_transition(s, hs, want_F, out, F)


@njit(cache=True)
def drag_ground_crossings(X, h, max_steps, bisections, want_F, x_out, tau_out, F_out):
    """Propagate each state with the tracker's drag model to the ground (height 0, WGS-84).

    Parameters
    ----------
    X : ndarray, shape (M, 6)
        ECEF states, m and m/s (velocity relative to the rotating Earth), above the ground.
    h : float
        Step, s (negative: backward); each step is split into the tracker's own
        substeps of the drag model where :func:`fusion.motion_kernels.in_atmosphere`,
        else one drag-free RK4 step (:func:`fusion.motion_kernels.ballistic_transition`).
    max_steps : ndarray of int, shape (M,)
        Steps allowed per state before giving up (result NaN).
    bisections : int
        Halvings of the substep that crosses the ground.
    want_F : bool
        Also accumulate the transition matrix to the crossing.
    x_out : ndarray, shape (M, 6)
        Receives the state at the crossing (NaN where none).
    tau_out : ndarray, shape (M,)
        Receives the propagation time to the crossing, s (signed as ``h``; NaN where none).
    F_out : ndarray, shape (M, 6, 6)
        Receives :math:`\\partial x(\\tau)/\\partial x(0)` if ``want_F``.
    """
    M = X.shape[0]
    s = np.empty(6)
    s_sub = np.empty(6)
    tmp = np.empty(6)
    Fs = np.eye(6)
    Ftot = np.eye(6)
    for i in range(M):
        s[:] = X[i]
        tau_out[i] = np.nan
        x_out[i, :] = np.nan
        if want_F:
            Ftot[:, :] = np.eye(6)
        done = False
        for n in range(max_steps[i]):
            in_air = mk.in_atmosphere(s, h)
            n_sub = mk.drag_substeps(s, h) if in_air else 1
            hs = h / n_sub
            for j in range(n_sub):
                _substep(s, hs, in_air, want_F, s_sub, Fs)
                if mk.height(s_sub) <= 0.0:
                    lo, hi = 0.0, hs  # substep lengths known above / at or below the ground
                    for _ in range(bisections):
                        mid = 0.5 * (lo + hi)
                        _substep(s, mid, in_air, False, tmp, Fs)
                        if mk.height(tmp) <= 0.0:
                            hi = mid
                        else:
                            lo = mid
                    last = 0.5 * (lo + hi)
                    _substep(s, last, in_air, want_F, tmp, Fs)
                    x_out[i, :] = tmp
                    tau_out[i] = n * h + j * hs + last
                    if want_F:
                        F_out[i, :, :] = Fs @ Ftot
                    done = True
                    break
                if want_F:
                    Ftot[:, :] = Fs @ Ftot
                s[:] = s_sub
            if done:
                break
