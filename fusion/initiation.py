"""Batch least-squares track initiation on the ballistic model (numba kernel of the compiled tracker).

A tentative track that has collected its M associated plots is started from all
of them at once: the state at the time of the last plot that best explains the
plots through the tracker's own motion model (gravity with J2, Earth-rotation
frame terms, nominal drag: :func:`fusion.motion_kernels.drag_transition`) and
radar model (:func:`fusion.track_kernels.radar_hx`). Unlike the one-plot start
(:func:`fusion.track_kernels.initial_state`: a converted position and a
7.5-km/s velocity prior, then EKF updates), the estimate carries no prior, so
its covariance is the Cramer-Rao-type bound of the fit from its first output
(tests/test_initiation.py measures the NEES of both).

References
----------
Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, sec. 3.4 (nonlinear least squares by Gauss-Newton, the
covariance of the estimate as the inverse of the information), sec. 6.2.2 (the
white-noise acceleration model, eq. 6.2.2-12) and sec. 10.3.2 (the
second-order term of the measurement prediction);
Blackman & Popoli, *Design and Analysis of Modern Tracking Systems*, 1999,
sec. 3.5 (track initiation from a few plots);
Lerro & Bar-Shalom, "Tracking with debiased consistent converted measurements
versus EKF", IEEE Trans. AES 29(3), 1993 (when a Cartesian linearisation of a
radar plot stays consistent);
Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, sec. 3.5 (step
length by quadratic interpolation).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)

from fusion import motion_kernels as mk
from fusion import track_kernels as tk

MAX_ITERATIONS = 20  # Gauss-Newton steps; 3-5 were needed at 1,000 and 1,540 km (tests/test_initiation.py)
CONVERGED_D2 = 1e-6  # squared Mahalanobis length of the last step: 1e-3 sigma, far below any noise
MIN_RCOND = 1e-10  # smallest eigenvalue ratio of the scaled normal matrix; rounding of N is ~1e-16
MIN_STEP = 0.1  # shortest and longest multiple of the Gauss-Newton step the line search takes
MAX_STEP = 10.0

# return codes of batch_fit (> 0: converged, the number of Gauss-Newton steps)
DEGENERATE = -1  # fewer than two plot times, or the normal matrix singular or ill-conditioned
NON_FINITE = -2  # a non-finite plot, noise covariance, propagated state or normal matrix
NOT_CONVERGED = -3  # no convergence in MAX_ITERATIONS steps


@njit(cache=True)
def range_curvature_variance(z, R):
    """Range variance (m^2) that the curvature of the range adds to a plot whose position is off by its angle noise.

    The second-order term :math:`\\tfrac12\\mathrm{tr}(\\rho_{xx}P\\rho_{xx}P)` of the
    innovation covariance of the second-order filter (Bar-Shalom et al. 2001,
    sec. 10.3.2), for the range :math:`\\rho = |d|`, whose Hessian is
    :math:`\\rho_{xx} = (I - uu^T)/\\rho`, and :math:`P` the plot's own cross-range
    covariance :math:`\\mathrm{diag}(\\rho^2\\cos^2\\epsilon\\,\\sigma_a^2, \\rho^2\\sigma_\\epsilon^2)`:

    .. math:: \\sigma^2_{curv} = \\tfrac12\\rho^2(\\cos^4\\epsilon\\,\\sigma_a^4 + \\sigma_\\epsilon^4).

    A linear fit in Cartesian coordinates is consistent while
    :math:`\\rho\\sigma_\\theta^2/\\sigma_\\rho` is below about 0.4 (Lerro & Bar-Shalom,
    IEEE Trans. AES 29(3), 1993); TPY-2 plots of a small RV at 1,500 km
    (3 m, 3.4 mrad) are at 6, where the fit without this term had NEES 40-65
    for 6 dof (tests/test_initiation.py). The estimate's cross-range error is
    smaller than one plot's, so the term is conservative by up to the number
    of plots (NEES 4.5-5.9 measured there); at 1,000 km with 1 mrad it adds
    1 m^2 to 9 m^2.

    Parameters
    ----------
    z : ndarray (3,)
        Plot ``[range m, azimuth rad, elevation rad]``.
    R : ndarray (3, 3)
        Its noise covariance (rad^2 for the angles).
    """
    ce2 = math.cos(z[2]) ** 2
    sa2 = R[1, 1] * ce2
    return 0.5 * z[0] * z[0] * (sa2 * sa2 + R[2, 2] * R[2, 2])


@njit(cache=True)
def _normal_equations(x, tz, z, R, site, R_enu, n, t_ref, q, want_N, N, b):
    """Accumulate :math:`N = \\sum_i J_i^T W_i J_i`, :math:`b = \\sum_i J_i^T W_i y_i` at ``x``; return (ok, chi2).

    ``chi2`` is :math:`\\sum_i y_i^T W_i y_i`; ok is False on a non-finite
    prediction or a noise covariance that is not positive definite. Without
    ``want_N`` only ``chi2`` (``N`` and ``b`` untouched).
    """
    if want_N:
        N[:, :] = 0.0
        b[:] = 0.0
    chi2 = 0.0
    xi = np.empty(6)
    F = np.empty((6, 6))
    hx = np.empty(3)
    H = np.empty((3, 6))
    y = np.empty(3)
    S = np.empty((3, 3))
    S_inv = np.empty((3, 3))
    for i in range(n):
        dt = tz[i] - t_ref
        mk.drag_transition(x, dt, want_N, xi, F)
        tk.radar_hx(xi, site[i], R_enu[i], hx)
        tk.radar_H(xi, site[i], R_enu[i], H)
        tk.radar_residual(z[i], hx, y)
        qpp = q * abs(dt) ** 3 / 3.0  # position variance of the unmodelled acceleration, as plot noise
        for a in range(3):
            for c in range(3):
                S[a, c] = R[i, a, c] + qpp * (H[a, 0] * H[c, 0] + H[a, 1] * H[c, 1] + H[a, 2] * H[c, 2])
        S[0, 0] += range_curvature_variance(z[i], R[i])
        tk.symmetrize(S)
        ok, _ = tk.inv3_spd(S, S_inv)
        if not ok:
            return False, math.nan
        chi2 += y @ S_inv @ y
        if want_N:
            J = H @ F
            JtW = J.T @ S_inv
            N += JtW @ J
            b += JtW @ y
    ok = math.isfinite(chi2)
    if not want_N:
        return ok, chi2
    tk.symmetrize(N)
    for a in range(6):
        ok = ok and math.isfinite(b[a])
        for c in range(6):
            ok = ok and math.isfinite(N[a, c])
    return ok, chi2


@njit(cache=True)
def _invert_normal(N, P):
    """:math:`P = N^{-1}` by the eigen-decomposition of the Jacobi-scaled :math:`D N D`, :math:`D = \\mathrm{diag}(N)^{-1/2}`.

    The scaling removes the m versus m/s units, so the eigenvalue ratio of
    :math:`DND` measures the geometry (how far the plots are from determining
    every state direction) rather than the units. Returns False when a diagonal
    is not positive or the ratio is below :data:`MIN_RCOND`.
    """
    d = np.empty(6)
    for a in range(6):
        if not N[a, a] > 0.0:
            return False
        d[a] = 1.0 / math.sqrt(N[a, a])
    Ns = np.empty((6, 6))
    for a in range(6):
        for c in range(6):
            Ns[a, c] = d[a] * N[a, c] * d[c]
    lam, V = np.linalg.eigh(Ns)
    if not (lam[0] > MIN_RCOND * lam[5]):
        return False
    Ps = (V / lam) @ V.T
    for a in range(6):
        for c in range(6):
            P[a, c] = d[a] * Ps[a, c] * d[c]
    tk.symmetrize(P)
    return True


@njit(cache=True)
def _differencing_guess(tz, z, R, site, R_enu, n, t_ref, x):
    """Two-point start: converted position of the last plot, velocity from the first and the last.

    :math:`r = r_1`, :math:`v = (r_1 - r_0)/(t_1 - t_0)` with :math:`r_k` the
    converted positions (:func:`fusion.track_kernels.initial_state`) of the
    earliest and latest plots (of several at one time, the most precise), then
    propagated from :math:`t_1` to ``t_ref``. The velocity is the mean over the
    span, off by about :math:`g(t_1-t_0)/2` and by the cross-range errors over
    the span; Gauss-Newton removes both. Returns False if all plots share one time.
    """
    i0 = 0
    i1 = 0
    for i in range(1, n):
        if tz[i] < tz[i0]:
            i0 = i
        if tz[i] > tz[i1]:
            i1 = i
    if not tz[i1] > tz[i0]:
        return False
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    r = np.empty((n, 3))
    tr = np.empty(n)
    for i in range(n):
        tk.initial_state(z[i], R[i], site[i], R_enu[i], 0.0, xc, Pc)
        r[i] = xc[0:3]
        tr[i] = Pc[0, 0] + Pc[1, 1] + Pc[2, 2]
    for i in range(n):  # most precise of the plots at the first and at the last time
        if tz[i] == tz[i0] and tr[i] < tr[i0]:
            i0 = i
        if tz[i] == tz[i1] and tr[i] < tr[i1]:
            i1 = i
    span = tz[i1] - tz[i0]
    x1 = np.empty(6)
    for a in range(3):
        x1[a] = r[i1, a]
        x1[3 + a] = (r[i1, a] - r[i0, a]) / span
    F = np.empty((6, 6))
    mk.drag_transition(x1, t_ref - tz[i1], np.bool_(False), x, F)
    return True


@njit(cache=True)
def batch_fit(tz, z, R, site, R_enu, n, t_ref, q, x_out, P_out):
    """Batch least-squares state of a few plots on the ballistic model, by Gauss-Newton.

    Parameters
    ----------
    tz : ndarray (>= n,)
        Measurement times of the plots, s (any order; equal times allowed, e.g.
        two radars seeing the object in one instant).
    z : ndarray (>= n, 3)
        Plots ``[range m, azimuth rad, elevation rad]``.
    R : ndarray (>= n, 3, 3)
        Their noise covariances (rad for the angles).
    site : ndarray (>= n, 3)
        ECEF position of the radar of each plot, m.
    R_enu : ndarray (>= n, 3, 3)
        ECEF-to-ENU rotation at that radar (:func:`sim.earth.enu_rotation`).
    n : int
        Number of plots used: the first ``n`` rows (buffers may be longer).
    t_ref : float
        Time of the estimate, s (the time of the last plot when starting a track).
    q : float
        PSD of the unmodelled (white-noise) acceleration, m^2/s^3, e.g. the
        thrust of a boosting object; 0 for a ballistic object.
    x_out : ndarray (6,)
        Receives the ECEF state at ``t_ref`` (m, m/s relative to the Earth).
    P_out : ndarray (6, 6)
        Receives its covariance.

    Returns
    -------
    code : int
        Number of Gauss-Newton steps (> 0) on success; :data:`DEGENERATE`,
        :data:`NON_FINITE` or :data:`NOT_CONVERGED` otherwise, and then
        ``x_out`` and ``P_out`` are not to be used.
    chi2 : float
        Weighted residual sum of squares at the solution, chi-square with
        :math:`3n - 6` degrees of freedom when the plots are of one ballistic
        object (a test of the association of the plots); NaN on failure.

    Notes
    -----
    The state :math:`x` at :math:`t_{ref}` predicts plot :math:`i` as
    :math:`h_i(f(x, t_i - t_{ref}))`, with :math:`f` the drag-ballistic
    propagation (backwards for earlier plots) and :math:`h_i` the AER model of
    the plot's radar. Gauss-Newton on
    :math:`\\sum_i y_i^T W_i y_i`, :math:`y_i = z_i - h_i(f(x, \\Delta t_i))`
    (azimuth wrapped, :func:`fusion.track_kernels.radar_residual`):

    .. math::

        J_i = H_i F_i,\\quad N = \\sum_i J_i^T W_i J_i,\\quad
        x \\leftarrow x + N^{-1}\\sum_i J_i^T W_i y_i,

    :math:`F_i = \\partial f/\\partial x`, :math:`H_i = \\partial h_i/\\partial r`
    at the current iterate (Bar-Shalom et al. 2001, sec. 3.4), until the
    step's squared Mahalanobis length :math:`\\delta x^T N \\delta x` is below
    :data:`CONVERGED_D2`; :math:`P = N^{-1}` from the last linearisation.
    Start: :func:`_differencing_guess`. Each step :math:`\\delta x` is scaled by
    the minimum of the parabola through the cost at 0 and at 1 and the slope
    :math:`-2\\delta x^T N\\delta x` at 0 (Nocedal & Wright 2006, sec. 3.5),
    within [:data:`MIN_STEP`, 1], or up to :data:`MAX_STEP` within a sigma of
    the solution. A safeguard: where the curvature of the cost differs from
    :math:`N` full steps overshoot or creep. Measured on 3 plots over 2 s at
    1,540 km: without the range-curvature weight below, full steps diverged
    in 92 of 200 seeds; with it, full steps converge in 3-6 steps, and in 3-5
    with the line search (which costs one more evaluation of the cost a step).

    Weights:
    :math:`W_i = (R_i + \\tfrac{q}{3}|\\Delta t_i|^3 H_{r,i}H_{r,i}^T + \\sigma^2_{curv,i}e_1e_1^T)^{-1}`.
    :math:`\\sigma^2_{curv,i}` is the range variance that the curvature of the
    range adds (:func:`range_curvature_variance`). The second term is the
    position variance that a white-noise acceleration of PSD :math:`q`
    builds between :math:`t_i` and :math:`t_{ref}` (the position block of
    eq. 6.2.2-12) mapped into the plot's space. The noise is one random path,
    so the deviations it causes at the plots are correlated with one another
    (and the plot at :math:`t_{ref}` has none); this fit treats them as
    independent. For three plots at -2, -1 and 0 s the deviations at -2 and -1 s
    are 0.88 correlated; a fit that counts them as two independent pieces of
    evidence believes the unmodelled part averages down when it does not, so
    :math:`P` is optimistic, not conservative, when :math:`q` dominates
    :math:`R`: with a white-noise-acceleration truth of the same :math:`q`
    (tests/test_initiation.py, 6 plots over 2.5 s, 200 seeds) the NEES mean is
    6.5, 7.1 and 7.9 for :math:`q` = 100, 900 and 10^4 m^2/s^3 (6 expected; 70,
    580 and 6,400 with the term left out). Against a constant thrust
    :math:`a` along the velocity, :math:`q = a^2 T` (span :math:`T`) is
    conservative (NEES 3.5-3.9 for 10 and 30 m/s^2; 14 and 82 with :math:`q = 0`).
    Exact treatment would weight the stacked residuals with the full
    correlated covariance. With :math:`q = 0` (a ballistic object) the weights are exact.

    Failure: fewer than two distinct plot times (the velocity is unobservable),
    a normal matrix whose Jacobi-scaled eigenvalue ratio is below
    :data:`MIN_RCOND` (e.g. all plots at one time), a non-finite value, or no
    convergence in :data:`MAX_ITERATIONS` steps.
    """
    if n < 2:
        return DEGENERATE, math.nan
    for i in range(n):
        if not (math.isfinite(tz[i]) and math.isfinite(z[i, 0]) and math.isfinite(z[i, 1])
                and math.isfinite(z[i, 2])):
            return NON_FINITE, math.nan
    x = np.empty(6)
    if not _differencing_guess(tz, z, R, site, R_enu, n, t_ref, x):
        return DEGENERATE, math.nan
    N = np.empty((6, 6))
    b = np.empty(6)
    P = np.empty((6, 6))
    for it in range(1, MAX_ITERATIONS + 1):
        for a in range(6):
            if not math.isfinite(x[a]):
                return NON_FINITE, math.nan
        ok, chi2 = _normal_equations(x, tz, z, R, site, R_enu, n, t_ref, q, np.bool_(True), N, b)
        if not ok:
            return NON_FINITE, math.nan
        if not _invert_normal(N, P):
            return DEGENERATE, math.nan
        dx = P @ b
        d2 = dx @ b  # dx^T N dx, since N dx = b
        if d2 < CONVERGED_D2:
            x_out[:] = x + dx
            P_out[:, :] = P
            # chi2 at the solution: the last step lowers it by about d2 (< CONVERGED_D2)
            return it, chi2 - d2
        # step length: minimum of the parabola through c(0) = chi2, c'(0) = -2 d2 and c(1)
        ok, chi2_full = _normal_equations(x + dx, tz, z, R, site, R_enu, n, t_ref, q, np.bool_(False), N, b)
        # (longer than the Gauss-Newton step only within a sigma of the solution, where the parabola holds)
        alpha = 1.0
        A = chi2_full - chi2 + 2.0 * d2  # curvature of the parabola; Gauss-Newton predicts d2
        if not ok:
            alpha = 0.5
        elif A > 0.0:
            alpha = min(max(d2 / A, MIN_STEP), MAX_STEP if d2 < 1.0 else 1.0)
        x += alpha * dx
    return NOT_CONVERGED, math.nan


@njit(cache=True)
def batch_initiate(tz, z, R, site, R_enu, n, t_ref, q, x_out, P_out):
    """Initiate a track from ``n`` plots: :func:`batch_fit`, True on success (arguments as there).

    On False, ``x_out`` and ``P_out`` are not to be used.
    """
    code, _ = batch_fit(tz, z, R, site, R_enu, n, t_ref, q, x_out, P_out)
    return code > 0
