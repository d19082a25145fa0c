"""Ground crossing of track states with the tracker's own motion models (numba), for the IPP metrics.

The predicted impact point (IPP) of :func:`fusion.metrics.predict_ground_crossing`
propagates a track state drag-free until the atmosphere can act on it within the next
step (:func:`fusion.drag.in_atmosphere`), and then with the model the compiled tracker
predicts with in the atmosphere: J2 gravity, Coriolis and centrifugal terms and drag
with the nominal ballistic coefficient :data:`fusion.drag.NOMINAL_BALLISTIC_COEFF`
(:func:`fusion.motion_kernels.drag_transition`, Li & Jilkov, IEEE Trans. AES 46(1),
2010, sec. IV; Zarchan, *Tactical and Strategic Missile Guidance*, 6th ed., 2012,
ch. 8-9). This module does both parts one state at a time, so that each state's
result does not depend on which other states share the call, and the states of one
call can be shared out to threads (:func:`rows_on_threads`; the kernels release the GIL):

* :func:`free_flight_to_air`: the drag-free leg, with the operations of the batched
  numpy kernels (:func:`fusion.models.ballistic_propagate`), so the same bits;
* :func:`drag_ground_crossings`: the drag leg, each state with its own substeps
  (:func:`fusion.motion_kernels.drag_substeps`: at most :data:`fusion.drag.DRAG_MAX_STEP_S`,
  and :data:`fusion.drag.DRAG_STEP_HEIGHT` of height per substep where the drag is stiff),
  RK4 of the drag model one substep at a time (the state bits of the tracker's
  :func:`fusion.motion_kernels.variational_rk4`); the first substep that ends at or below
  the ellipsoid is bisected on its length (the crossing of
  :func:`fusion.motion_kernels.height`, which is zero exactly on the ellipsoid, as the
  geodetic altitude is);
* :func:`free_transitions`: the transition matrix of the drag-free leg, for the IPP's
  own uncertainty (with the drag leg's variational matrices, Montenbruck & Gill,
  *Satellite Orbits*, 2000, sec. 7.1).

Before these kernels the drag-free leg was a numpy loop over 5 s steps of all states
together (hundreds of numpy calls per step), about a third of a whole run's time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)
from fusion import motion_kernels as mk
from fusion.drag import DRAG_NEGLIGIBLE as _DRAG_NEGLIGIBLE
from sim.atmosphere import TOP_OF_ATMOSPHERE as _TOP
from sim.dynamics import _B as _SEMI_MINOR
from sim.earth import EARTH_ROTATION_RATE as _W, GM as _GM, SEMI_MAJOR_AXIS as _A
from sim.gravity import _K_J2


# --------------------------------------------------------------------------- the drag-free leg
#
# One compiled loop per state with the SAME floating-point operations in the same order as the
# numpy path (fusion.models._ballistic_rk4_soa, sim.gravity.
# gravity_j2_components, sim.dynamics.height_fast), so its states are bit-identical. The two
# decisions of that path that involve library transcendental functions are not reproduced bit
# for bit and are made here only where they cannot differ:
#
# * the hand-over to the drag model (fusion.drag.in_atmosphere: numpy's exp of the density
#   table against math.exp here) where the drag estimate is not within 1e-9 of its threshold;
# * the ground crossing of the drag-free model (sim.earth.altitude: pymap3d's iterative
#   geodetic conversion) where the geocentric height (exact at 0, within ~20 m of the
#   geodetic one up to 4,000 km, sim.dynamics.height_fast) is above 10 km.
#
# Anything else (status FREE_UNSURE) goes back to the numpy loop, which gives the same bits for a
# state whatever other states share its call.


_W2 = _W * _W  # as fusion.models._W2
_TWO_W = 2.0 * _W  # fusion.models: ``2.0 * _W * v`` evaluates 2.0 * _W first
_AB = _A * _SEMI_MINOR  # sim.dynamics.height_fast: ``SEMI_MAJOR_AXIS * _B / ...``
_BB = _SEMI_MINOR * _SEMI_MINOR
_AA = _A**2
_KAPPA = mk._KAPPA
_DH = mk._DH
FREE_NONE, FREE_AIR, FREE_UNSURE = 0, 1, 2  # status of free_flight_to_air
_AIR_MARGIN = 1e-9  # relative; numpy's and libm's exp differ by a few 1e-16
_GROUND_MARGIN_M = 10_000.0  # m; geocentric minus geodetic height is < 100 m below 10,000 km


@njit(cache=True, nogil=True)
def _free_accel(s, k):
    """Ballistic derivative into ``k`` (6,): the operations of fusion.models._ballistic_derivative_soa."""
    x, y, z = s[0], s[1], s[2]
    r2 = x * x
    r2 = r2 + y * y
    r2 = r2 + z * z
    inv_r2 = 1.0 / r2
    inv_r3 = math.sqrt(inv_r2)
    inv_r3 = inv_r3 * inv_r2
    q = z * z
    q = q * inv_r2
    q = q * 5.0
    t = inv_r3 * inv_r2
    t = t * _K_J2
    point = _GM * inv_r3
    cz = 3.0 - q
    cz = cz * t
    cz = cz + point
    cxy = 1.0 - q
    cxy = cxy * t
    cxy = cxy + point
    ax = -cxy * x
    ay = -cxy * y
    az = -cz * z
    ax = ax + _W2 * x
    ax = ax + _TWO_W * s[4]
    ay = ay + _W2 * y
    ay = ay - _TWO_W * s[3]
    k[0], k[1], k[2] = s[3], s[4], s[5]
    k[3], k[4], k[5] = ax, ay, az


@njit(cache=True, nogil=True)
def _free_rk4(s, h, n_sub, k, st):
    """RK4 of the drag-free model in place on ``s`` (6,), ``n_sub`` substeps of ``h`` s each.

    The operations of :func:`fusion.models._ballistic_rk4_soa` without ``F`` (stages
    ``s + (h/2) k1``, ``s + (h/2) k2``, ``s + h k3``; ``((k2 + k3) 2 + k1 + k4) h/6``).
    ``k`` (4, 6) and ``st`` (6,) are work arrays.
    """
    hk0 = 0.5 * h
    for _ in range(n_sub):
        for i in range(6):
            st[i] = s[i]
        for j in range(4):
            _free_accel(st, k[j])
            if j < 3:
                c = h if j == 2 else hk0
                for i in range(6):
                    st[i] = s[i] + c * k[j, i]
        _rk4_advance(s, k, h)


@njit(cache=True, nogil=True)
def _height_fast(s):
    """:func:`sim.dynamics.height_fast` of one state, the same operations."""
    p2 = s[0] * s[0] + s[1] * s[1]
    z2 = s[2] * s[2]
    rn2 = p2 + z2
    R = _AB / math.sqrt((_BB * p2 + _AA * z2) / rn2)
    return math.sqrt(rn2) - R


@njit(cache=True, nogil=True)
def _air_status(s, h):
    """:func:`fusion.drag.in_atmosphere` of one state: 1 yes, 0 no, -1 too close to the threshold to tell."""
    v2 = s[3] * s[3] + s[4] * s[4]
    v2 = v2 + s[5] * s[5]
    reach = 1.2 * math.sqrt(v2) * abs(h)
    h_min = _height_fast(s) - reach
    if not h_min < _TOP:
        return 0
    drag = 0.5 * mk.density(h_min) * v2 * _KAPPA
    if abs(drag - _DRAG_NEGLIGIBLE) <= _AIR_MARGIN * _DRAG_NEGLIGIBLE:
        return -1
    return 1 if drag > _DRAG_NEGLIGIBLE else 0


@njit(cache=True, nogil=True)
def free_flight_to_air(X, rows, h, n_sub, n_steps, status, x_air, steps_left, elapsed):
    """Drag-free flight of each state in steps of ``h`` s until the air can act on it (the numpy loop's bits).

    For each row ``i`` of ``rows``: at each of at most ``n_steps`` steps, if
    :func:`fusion.drag.in_atmosphere` holds the state is handed over (``status[i] =
    FREE_AIR``, its state ``x_air[i]``, the steps it has left ``steps_left[i]`` and the
    time flown ``elapsed[i]``, s); else it takes one RK4 step of ``n_sub`` substeps
    (:func:`fusion.models.ballistic_propagate`). ``FREE_NONE``: no hand-over within
    ``n_steps``. ``FREE_UNSURE``: a decision that this kernel cannot make bit-exactly
    (see the section notes), left to the numpy loop.

    Parameters
    ----------
    X : ndarray, shape (M, 6)
        ECEF states, m and m/s, above the ground.
    rows : ndarray of int64
        The rows of ``X`` to do (a thread's share).
    h : float
        Step, s (negative: backward).
    n_sub, n_steps : int
    status, steps_left : ndarray of int64, shape (M,)
    x_air : ndarray, shape (M, 6)
    elapsed : ndarray, shape (M,)
        Outputs, written at ``rows``.
    """
    k = np.empty((4, 6))
    st = np.empty(6)
    s = np.empty(6)
    hs = h / n_sub
    for i in rows:
        for c in range(6):
            s[c] = X[i, c]
        status[i] = FREE_NONE
        el = 0.0
        for n in range(n_steps):
            air = _air_status(s, h)
            if air < 0:
                status[i] = FREE_UNSURE
                break
            if air == 1:
                status[i] = FREE_AIR
                x_air[i, :] = s
                steps_left[i] = n_steps - n
                elapsed[i] = el
                break
            _free_rk4(s, hs, n_sub, k, st)
            if _height_fast(s) <= _GROUND_MARGIN_M:  # the numpy loop's altitude test decides here
                status[i] = FREE_UNSURE
                break
            el += h


@njit(cache=True, nogil=True)
def _drag_stage(st, Phi, want_F, dx, dPhi, a, G, T, Jr):
    """:func:`fusion.motion_kernels._stage` in mode 2 (nominal drag) without allocations.

    The state derivative has the same operations; :math:`A\\Phi` is summed in loops
    (the motion kernel's ``@`` goes through BLAS), equal to rounding.
    """
    mk.ballistic_accel(st, a)
    speed = math.sqrt(st[3] * st[3] + st[4] * st[4] + st[5] * st[5])
    hgt = mk.height(st)
    rho = mk.density(hgt)
    c = 0.5 * _KAPPA * rho
    for i in range(3):
        a[i] += -(c * speed) * st[3 + i]
    for i in range(3):
        dx[i] = st[3 + i]
        dx[3 + i] = a[i]
    if not want_F:
        return
    safe = speed if speed > 0 else 1.0
    drho = (mk.density(hgt + _DH) - mk.density(hgt - _DH)) / (2.0 * _DH)
    rn = math.sqrt(st[0] * st[0] + st[1] * st[1] + st[2] * st[2])
    coef = -0.5 * _KAPPA * speed * drho
    mk.gravity_gradient(st, G)
    for i in range(3):
        for j in range(3):
            T[i, j] = -c * (speed * (1.0 if i == j else 0.0) + st[3 + i] * st[3 + j] / safe)
            G[i, j] += coef * st[3 + i] * st[j] / rn
    G[0, 0] += _W2
    G[1, 1] += _W2
    T[0, 1] += 2.0 * _W
    T[1, 0] -= 2.0 * _W
    for i in range(3):
        for j in range(6):
            dPhi[i, j] = Phi[3 + i, j]
            acc = 0.0
            for m in range(3):
                acc += G[i, m] * Phi[m, j]
            for m in range(3):
                acc += T[i, m] * Phi[3 + m, j]
            dPhi[3 + i, j] = acc


@njit(cache=True, nogil=True)
def _drag_rk4(x, h, want_F, x_out, F, w):
    """:func:`fusion.motion_kernels.variational_rk4` in mode 2 with one substep, on work arrays ``w``.

    The state has the motion kernel's operations (the same bits); ``F`` its
    variational RK4 summed in loops.
    """
    s, st, K, KP, Phi, Pt, a, G, T, Jr = w
    for i in range(6):
        s[i] = x[i]
        st[i] = x[i]
    if want_F:
        for i in range(6):
            for j in range(6):
                Phi[i, j] = 1.0 if i == j else 0.0
                Pt[i, j] = Phi[i, j]
    for j in range(4):
        _drag_stage(st, Pt, want_F, K[j], KP[j], a, G, T, Jr)
        if j < 3:
            off = h if j == 2 else 0.5 * h
            for i in range(6):
                st[i] = s[i] + off * K[j, i]
            if want_F:
                for i in range(6):
                    for m in range(6):
                        Pt[i, m] = Phi[i, m] + off * KP[j, i, m]
    for i in range(6):
        x_out[i] = s[i] + (K[0, i] + 2.0 * K[1, i] + 2.0 * K[2, i] + K[3, i]) * (h / 6.0)
    if want_F:
        for i in range(6):
            for m in range(6):
                F[i, m] = Phi[i, m] + (KP[0, i, m] + 2.0 * KP[1, i, m] + 2.0 * KP[2, i, m] + KP[3, i, m]) * (h / 6.0)


@njit(cache=True, nogil=True)
def _air_substep(s, hs, in_air, want_F, out, F, w):
    """One substep of :func:`drag_ground_crossings` (drag model in the air, else drag-free) into ``out``."""
    if in_air:
        _drag_rk4(s, hs, want_F, out, F, w)
    else:
        mk.ballistic_transition(s, hs, want_F, out, F)


@njit(cache=True, nogil=True)
def drag_ground_crossings(X, rows, h, max_steps, bisections, want_F, x_out, tau_out, F_out):
    """Propagate each state with the tracker's drag model to the ground (height 0, WGS-84).

    Each step of ``h`` is split into the tracker's substeps of the drag model where
    :func:`fusion.motion_kernels.in_atmosphere` (:func:`fusion.motion_kernels.drag_substeps`),
    else one drag-free RK4 step (:func:`fusion.motion_kernels.ballistic_transition`); the
    first substep that ends at or below the ellipsoid is bisected on its length. The
    state has the bits of the tracker's kernels (:func:`fusion.motion_kernels.variational_rk4`
    one substep at a time); the transition matrices are summed in loops here, without
    allocations (the motion kernels' ``@`` calls BLAS: equal to rounding). Rows are
    independent, so threads may share the rows of one call (:func:`rows_on_threads`).

    Parameters
    ----------
    X : ndarray, shape (M, 6)
        ECEF states, m and m/s (velocity relative to the rotating Earth), above the ground.
    rows : ndarray of int64
        The rows of ``X`` to do.
    h : float
        Step, s (negative: backward).
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
    s = np.empty(6)
    s_sub = np.empty(6)
    tmp = np.empty(6)
    Fs = np.eye(6)
    Ftot = np.eye(6)
    prod = np.empty((6, 6))
    w = (np.empty(6), np.empty(6), np.empty((4, 6)), np.zeros((4, 6, 6)), np.eye(6), np.eye(6), np.empty(3),
         np.empty((3, 3)), np.zeros((3, 3)), np.zeros((3, 3)))
    for i in rows:
        s[:] = X[i]
        tau_out[i] = np.nan
        x_out[i, :] = np.nan
        if want_F:
            for r in range(6):
                for c in range(6):
                    Ftot[r, c] = 1.0 if r == c else 0.0
        done = False
        for n in range(max_steps[i]):
            in_air = mk.in_atmosphere(s, h)
            n_sub = mk.drag_substeps(s, h) if in_air else 1
            hs = h / n_sub
            for j in range(n_sub):
                _air_substep(s, hs, in_air, want_F, s_sub, Fs, w)
                if mk.height(s_sub) <= 0.0:
                    lo, hi = 0.0, hs
                    for _ in range(bisections):
                        mid = 0.5 * (lo + hi)
                        _air_substep(s, mid, in_air, np.bool_(False), tmp, Fs, w)
                        if mk.height(tmp) <= 0.0:
                            hi = mid
                        else:
                            lo = mid
                    last = 0.5 * (lo + hi)
                    _air_substep(s, last, in_air, want_F, tmp, Fs, w)
                    x_out[i, :] = tmp
                    tau_out[i] = n * h + j * hs + last
                    if want_F:
                        _matmul(Fs, Ftot, prod)
                        F_out[i, :, :] = prod
                    done = True
                    break
                if want_F:
                    _matmul(Fs, Ftot, prod)
                    Ftot[:, :] = prod
                s[:] = s_sub
            if done:
                break



@njit(cache=True, nogil=True)
def _coriolis(w3):
    """The Coriolis matrix :math:`D` (:math:`-2\\omega\\times`) and its powers into ``w3[0:3]`` for :func:`_expm6`."""
    c = 2.0 * _W
    w3[0:3] = 0.0
    w3[0, 0, 1] = c
    w3[0, 1, 0] = -c
    _matmul(w3[0], w3[0], w3[1])
    _matmul(w3[1], w3[0], w3[2])


@njit(cache=True, nogil=True)
def _expm6(B, h, Fs, w3):
    """:func:`fusion.motion_kernels._expm_substep` (the Magnus substep transition) with loops, no allocations.

    :math:`e^{Ah}`, :math:`A = [[0, I], [B, D]]`, by its block series to :math:`h^4`
    (Iserles et al., Acta Numerica 9, 2000, sec. 4): ``B`` (3, 3) the gravity and
    centrifugal gradient, ``D`` the Coriolis matrix. ``w3`` (8, 3, 3): :math:`D, D^2, D^3`
    from :func:`_coriolis` in ``w3[0:3]``, work after. The products with :math:`D`
    use its only two non-zero entries (:math:`D_{01} = -D_{10} = c`).
    """
    D, D2, D3, DB, BD, BB, D2B, D3B = w3[0], w3[1], w3[2], w3[3], w3[4], w3[5], w3[6], w3[7]
    c = D[0, 1]
    c2 = c * c
    for j in range(3):
        DB[0, j] = c * B[1, j]
        DB[1, j] = -c * B[0, j]
        DB[2, j] = 0.0
        BD[j, 0] = -c * B[j, 1]
        BD[j, 1] = c * B[j, 0]
        BD[j, 2] = 0.0
        D2B[0, j] = -c2 * B[0, j]
        D2B[1, j] = -c2 * B[1, j]
        D2B[2, j] = 0.0
        D3B[0, j] = -c2 * DB[0, j]
        D3B[1, j] = -c2 * DB[1, j]
        D3B[2, j] = 0.0
    _matmul(B, B, BB)
    h2 = h * h / 2.0
    h3 = h2 * h / 3.0
    h4 = h3 * h / 4.0
    for i in range(3):
        for j in range(3):
            e = 1.0 if i == j else 0.0
            Fs[i, j] = e + h2 * B[i, j] + h3 * DB[i, j] + h4 * (BB[i, j] + D3B[i, j])
            Fs[i, 3 + j] = h * e + h2 * D[i, j] + h3 * (B[i, j] + D2[i, j]) + h4 * (BD[i, j] + DB[i, j] + D3[i, j])
            Fs[3 + i, j] = h * B[i, j] + h2 * DB[i, j] + h3 * (BB[i, j] + D2B[i, j])
            Fs[3 + i, 3 + j] = e + h * D[i, j] + h2 * (B[i, j] + D2[i, j]) + h3 * (BD[i, j] + DB[i, j] + D3[i, j])


@njit(cache=True, nogil=True)
def _rk4_advance(s, k, h):
    """``s += h/6 (k0 + 2 k1 + 2 k2 + k3)`` in place, summed in the numpy step loop's order (its bits).

    ``s`` (6,) the state, ``k`` (4, 6) the four stage derivatives, ``h`` the substep, s
    (classical RK4, Hairer, Norsett & Wanner, *Solving ODEs I*, 1993, sec. II.1).
    """
    h6 = h / 6.0
    for i in range(6):
        a = k[1, i] + k[2, i]
        a = a * 2.0
        a = a + k[0, i]
        a = a + k[3, i]
        a = a * h6
        s[i] = s[i] + a


@njit(cache=True, nogil=True)
def _matmul(A, B, out):
    """``out = A @ B`` for square (n, n) matrices, in loops (each sum in index order: fixed bits, no BLAS)."""
    n = A.shape[0]
    for i in range(n):
        for j in range(n):
            acc = 0.0
            for m in range(n):
                acc += A[i, m] * B[m, j]
            out[i, j] = acc


@njit(cache=True, nogil=True)
def free_transitions(X, rows, dt, n_sub, F_out):
    """Transition matrices of the drag-free model over ``dt[i]`` s in ``n_sub`` common substeps.

    :func:`fusion.models.ballistic_transition` (RK4 of the state, Magnus midpoint
    exponential for :math:`F`, Iserles et al. 2000, sec. 4) for states that share a
    substep count, each with substeps of ``dt[i] / n_sub``: the same states, and
    ``F`` equal to rounding (products in loops, not ``einsum``).

    Parameters
    ----------
    X : ndarray, shape (M, 6)
        ECEF states, m and m/s.
    rows : ndarray of int64
        Rows to do.
    dt : ndarray, shape (M,)
        s (negative: backward).
    n_sub : int
        ``ceil(max |dt| / MAX_STEP_S)`` over the whole call, as the batched function.
    F_out : ndarray, shape (M, 6, 6)
        Receives :math:`\\partial x(t + \\Delta t)/\\partial x(t)` at ``rows``.
    """
    s = np.empty(6)
    st = np.empty(6)
    k = np.empty((4, 6))
    G = np.empty((3, 3))
    Fs = np.empty((6, 6))
    F = np.empty((6, 6))
    prod = np.empty((6, 6))
    w3 = np.empty((8, 3, 3))
    _coriolis(w3)
    for i in rows:
        h = dt[i] / n_sub
        for c in range(6):
            s[c] = X[i, c]
            for m in range(6):
                F[c, m] = 1.0 if c == m else 0.0
        hk0 = 0.5 * h
        for _ in range(n_sub):
            for c in range(6):
                st[c] = s[c]
            for j in range(4):
                _free_accel(st, k[j])
                if j == 1:
                    mk.gravity_gradient(st, G)
                    G[0, 0] += _W2  # centrifugal gradient
                    G[1, 1] += _W2
                    _expm6(G, h, Fs, w3)
                    _matmul(Fs, F, prod)
                    F[:, :] = prod
                if j < 3:
                    cj = h if j == 2 else hk0
                    for c in range(6):
                        st[c] = s[c] + cj * k[j, c]
            _rk4_advance(s, k, h)
        F_out[i, :, :] = F


def rows_on_threads(kernel, n_rows, *args, threads=None):
    """Run ``kernel(args[0], rows, *args[1:])`` over rows ``0 .. n_rows - 1`` on threads.

    The kernels of this module release the GIL and treat each row alone, writing
    only that row's outputs, so the result is the same whatever the thread count.
    Rows are dealt round-robin (states of one call cost about the same on
    average; neighbours in a call are similar, so contiguous blocks would not be).

    Parameters
    ----------
    kernel : numba dispatcher
        ``kernel(X, rows, ...)`` as :func:`free_flight_to_air` and :func:`drag_ground_crossings`.
    n_rows : int
    *args
        ``X`` first, then the kernel's other arguments.
    threads : int, optional
        Default ``numba.get_num_threads()`` (``NUMBA_NUM_THREADS``, or what a
        worker process was given, :func:`sim.engine._worker_init`), at most one per
        64 rows.
    """
    import numba

    n_threads = int(threads if threads is not None else numba.get_num_threads())
    n_threads = max(1, min(n_threads, n_rows // 64))
    X, rest = args[0], args[1:]
    if n_threads == 1:
        kernel(X, np.arange(n_rows, dtype=np.int64), *rest)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        jobs = [pool.submit(kernel, X, np.arange(k, n_rows, n_threads, dtype=np.int64), *rest)
                for k in range(n_threads)]
        for job in jobs:
            job.result()
