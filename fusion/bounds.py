"""Posterior Cramer-Rao lower bound (PCRLB) of a nation's estimate of each object, with data latency.

The bound is the information recursion of Tichavsky, Muravchik & Nehorai,
"Posterior Cramer-Rao bounds for discrete-time nonlinear filtering", IEEE Trans.
Signal Processing 46(5), 1998 (their Proposition 1 and its special case of
additive Gaussian noise), linearized about the true trajectory:

.. math::

    J_{k+1} = D^{22}_k - D^{21}_k (J_k + D^{11}_k)^{-1} D^{12}_k,\\qquad
    D^{11} = F^T Q^{-1} F,\\ D^{12} = -F^T Q^{-1} = (D^{21})^T,\\
    D^{22} = Q^{-1} + H^T R^{-1} H,

with :math:`F` the Jacobian of the truth's own dynamics along the true path,
:math:`Q` the truth's own process noise and :math:`H` the Jacobian of the
radar measurement at the true state. By the matrix inversion lemma this is

.. math::

    J_{k+1} = (Q + F J_k^{-1} F^T)^{-1} + H^T R^{-1} H
            = (I + M Q)^{-1} M + H^T R^{-1} H,\\qquad M = F^{-T} J_k F^{-1},

the form used here (:func:`information_predict`): it holds for a singular
:math:`Q` (the truth's noise is rank one or zero) and a singular :math:`J_k`
(no information yet), and with :math:`Q = 0` it is
:math:`J_{k+1} = F^{-T} J_k F^{-1} + H^T R^{-1} H`. :math:`I + MQ` is always
invertible (:math:`MQ` is similar to :math:`Q^{1/2} M Q^{1/2} \\succeq 0`).

State
-----
``[x, y, z, vx, vy, vz, theta]``: ECEF position and Earth-relative velocity of
the object (m, m/s, as :class:`sim.truth.Truth`) and
:math:`\\theta = \\ln(\\beta/\\beta_0)`, the relative error of its ballistic
coefficient.

The truth's own randomness (:mod:`sim.truth`)
---------------------------------------------
The truth draws, per trial: launch time, aim azimuth, burnout speed and the
ballistic coefficients; everything else of its flight is deterministic. Launch
time and azimuth only set the initial state, which the diffuse prior (below)
leaves free. The other two are the process noise of the bound:

* **Boost (thrust uncertainty as the truth draws it).** The thrust profile and
  steering are deterministic; the truth's thrust uncertainty is the burnout speed
  impulse :math:`\\delta v = \\sigma_v z` along the velocity at cut-off
  :math:`t_c = L + t_{cut}` (:func:`sim.dynamics.fly`, ``burnout_dv``). On the grid
  step :math:`t_{k-1} < t_c \\le t_k` it enters as
  :math:`x_k \\mathrel{+}= G\\,\\delta v`,
  :math:`G = [(t_k - t_c)\\hat v_k;\\ \\hat v_k;\\ 0]` (the impulse then coasts
  :math:`t_k - t_c \\le` one step; first order in that step), so
  :math:`Q_k = \\sigma_v^2 G G^T` (rank one), and :math:`Q = 0` on every other
  step of the boost. The estimator of the bound knows the thrust profile and the
  launch time exactly, so in boost it can be far below what a tracker with a
  nearly-constant-thrust model reaches; it is still a valid lower bound.
* **Atmosphere (ballistic-coefficient dispersion).** After cut-off the truth's
  :math:`\\beta = \\beta_0(1 + \\sigma_\\beta z)` is one draw per trial and object,
  constant over the flight: not white noise, so an equivalent white-noise
  :math:`Q` would be wrong (it would let the estimator forget what it learned of
  :math:`\\beta`). The equivalent exact form is a constant parameter in the
  state: :math:`\\theta` with prior :math:`N(0, \\sigma_\\beta^2)`
  (:math:`\\ln(1+\\sigma_\\beta z) \\approx \\sigma_\\beta z` to first order), zero
  process noise, and :math:`\\partial\\dot{\\mathbf v}/\\partial\\theta =
  -\\mathbf a_{aero}` (drag and lift both scale as :math:`1/\\beta`); its
  accumulated effect on the state is what a :math:`Q` would stand for, fully
  correlated in time. In vacuum :math:`\\partial\\dot{\\mathbf v}/\\partial\\theta
  = 0` and :math:`\\theta` stays decoupled, so there :math:`Q = 0` exactly.

Transition :math:`F` (:func:`truth_transition`)
-----------------------------------------------
Between grid times along the true path: above the atmosphere after cut-off the
dynamics are the tracker's ballistic model (J2 gravity, Coriolis, centrifugal),
so :math:`F` is :func:`fusion.models.ballistic_transition` from the true state.
In boost or below :data:`sim.atmosphere.TOP_OF_ATMOSPHERE` (plus a margin),
:math:`A = \\partial f/\\partial x` is the central finite-difference Jacobian of
the truth's own acceleration (:func:`sim.dynamics.acceleration`: thrust, steering,
drag, lift), augmented with the :math:`\\theta` column, and :math:`F` is the
product of :math:`e^{A_i h}` over :data:`ATMOSPHERE_SUBSTEPS` substeps, :math:`A_i`
at each substep's midpoint on the cubic Hermite of the truth's samples (the
exponential midpoint rule of :mod:`fusion.models`, second order: 1.4e-6 on the
entries of a 1-s boost step with 4 substeps, against the truth's RK4). The
acceleration uses the nominal azimuth and ballistic coefficient (the trial's draws
are not in :class:`~sim.truth.Truth`): they move :math:`A` by the dispersion
(about 5 %), not the true path. :class:`TruthDynamics` keeps these steps for the
other calls of a chunk.

Measurements
------------
Each detection of the object (perfect association: ``dets.object == o``, same
trial) that reaches the nation contributes :math:`H^T R^{-1} H` at its
measurement time, :math:`H` the AER Jacobian at the true state
(:func:`sensors.geometry.measurement_jacobian`) and :math:`R` the detection's
own covariance. The tracker does not use range rate, so neither does the bound.
Registration biases are not in the bound (they are taken as known, which can
only lower it).

Prior
-----
Diffuse in position and velocity (:math:`J_0 = 0` there: no information before
the first detection), :math:`1/\\sigma_\\beta^2` on :math:`\\theta`. Where the
position is not determined (before the first detection, and until two scans fix
the velocity once time has moved on) the bound is ``inf``.

Latency (exact)
---------------
The estimate at grid time :math:`t_j` may use the detections that arrived by
then (``arrival <= t_j``), each at its own measurement time (arrival >= measurement
time; late data are out of sequence). The bound at :math:`t_j` is the recursion
over exactly that subset, in measurement-time order, predicted to :math:`t_j`.
It is computed without rerunning from the start: let :math:`m(j)` be the last
grid index such that every detection measured at or before it has arrived by
:math:`t_j`. The recursion up to :math:`m(j)` is the same for every later
output time (nothing measured there can arrive later, and :math:`m(j)` does not
decrease with :math:`j`), so it is kept and advanced once. From :math:`m(j)` to
:math:`j` (a window no longer than the largest latency) a copy is advanced with
only the detections that have arrived by :math:`t_j`. Both steps are the plain
recursion on the arrived subset, so the result is exact (no OOSM
approximation); the cost is :math:`O(T\\,(1 + L_{max}/\\Delta t))` recursion
steps, vectorized over trials and objects.

References
----------
Tichavsky, Muravchik & Nehorai, IEEE TSP 46(5):1386-1396, 1998;
Ristic, Arulampalam & Gordon, *Beyond the Kalman Filter*, 2004, ch. 4 (the PCRLB
with additive Gaussian noise);
Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, sec. 7.2 (information filter).
"""

from __future__ import annotations

import functools

import numpy as np

from fusion.models import ballistic_transition
from sensors.geometry import measurement_jacobian
from sim import dynamics as dyn
from sim.atmosphere import TOP_OF_ATMOSPHERE
from sim.errors import InputError
from sim.missiles import MISSILES
from sim.truth import PHASE_BOOST

__all__ = [
    "N_STATE",
    "information_predict",
    "information_recursion",
    "position_variance",
    "measurement_information",
    "truth_transition",
    "TruthDynamics",
    "pcrlb_information",
    "pcrlb_position_variance",
]

N_STATE = 7  # [x, y, z, vx, vy, vz, theta = ln(beta / beta_nominal)]
# Finite-difference steps of the acceleration Jacobian: the acceleration changes on scales of km (density
# scale height ~7 km) and of 10s of m/s, so central differences of 1 m and 0.01 m/s err < 1e-8 relative,
# far above round-off (1e-16 x |a| / step).
_FD_POS = 1.0  # m
_FD_VEL = 0.01  # m/s
_ATMOSPHERE_MARGIN = 5_000.0  # m: steps with an end below TOP_OF_ATMOSPHERE + this use the full truth dynamics
# An information matrix is taken as singular where the smallest eigenvalue of its diagonally scaled
# (unit-diagonal) form is below this: a rank-deficient J computed in float64 shows ~1e-15 there, a
# well-posed one (position-velocity correlations of a long track ~0.9) >= 1e-3.
SINGULAR_TOL = 1e-10
ATMOSPHERE_SUBSTEPS = 4  # exponential-midpoint substeps per grid step in boost and in the atmosphere
_BLOCK = 256  # grid steps of F computed at once (memory ~ objects x trials x _BLOCK x 2 x 49 x 8 bytes)


def _sym(A):
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def information_predict(J, F, Q=None, F_inv=None):
    """Predict a Fisher information matrix through a linear(ized) transition with additive noise.

    Parameters
    ----------
    J : ndarray, shape (..., n, n)
        Information (inverse covariance) at :math:`t_k`; may be singular.
    F : ndarray, shape (..., n, n)
        Transition Jacobian from :math:`t_k` to :math:`t_{k+1}` (invertible).
    Q : ndarray, shape (..., n, n), optional
        Process noise covariance of the step (may be singular); None for zero.
    F_inv : ndarray, shape (..., n, n), optional
        :math:`F^{-1}` if already known (else computed).

    Returns
    -------
    ndarray, shape (..., n, n)
        :math:`(I + M Q)^{-1} M` with :math:`M = F^{-T} J F^{-1}`, i.e.
        :math:`(Q + F J^{-1} F^T)^{-1}`; equal (matrix inversion lemma) to
        :math:`D^{22} - D^{21}(J + D^{11})^{-1}D^{12}` of Tichavsky et al. 1998
        (Proposition 1) without the measurement term, where :math:`Q` is invertible.
    """
    Fi = np.linalg.inv(F) if F_inv is None else F_inv
    M = np.swapaxes(Fi, -1, -2) @ J @ Fi
    if Q is not None:
        n = M.shape[-1]
        M = np.linalg.solve(np.eye(n) + M @ Q, M)
    return _sym(M)


def information_recursion(J0, F, info, Q=None):
    """The PCRLB information recursion over a sequence of steps (Tichavsky et al. 1998, Proposition 1).

    Parameters
    ----------
    J0 : ndarray, shape (..., n, n)
        Prior information at the first time (0 for a diffuse prior).
    F : ndarray, shape (T - 1, ..., n, n)
        ``F[k]``: transition Jacobian from time k to k + 1.
    info : ndarray, shape (T, ..., n, n)
        Measurement information :math:`\\sum H^T R^{-1} H` at each time (0 where none).
    Q : ndarray, shape (T - 1, ..., n, n), optional
        Process noise of each step; None for zero.

    Returns
    -------
    ndarray, shape (T, ..., n, n)
        :math:`J_k` after the measurements of time k (the information of the
        filtered estimate; :math:`J_k^{-1}` is the bound on its covariance).
    """
    info = np.asarray(info, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    if F.shape[0] != info.shape[0] - 1:
        raise InputError.single("F", F.shape, f"{info.shape[0] - 1} transitions for {info.shape[0]} times")
    out = np.empty(np.broadcast_shapes(info.shape, (info.shape[0],) + np.shape(J0)))
    J = np.asarray(J0, dtype=np.float64) + info[0]
    out[0] = J
    for k in range(1, info.shape[0]):
        J = information_predict(J, F[k - 1], None if Q is None else Q[k - 1]) + info[k]
        out[k] = J
    return out


def position_variance(J, pos=slice(0, 3), tol=SINGULAR_TOL):
    """Trace of the position block of :math:`J^{-1}`, m^2; inf where the position is not determined.

    Parameters
    ----------
    J : ndarray, shape (..., n, n)
        Fisher information (symmetric, positive semi-definite).
    pos : slice
        Position components (first three).
    tol : float
        Singularity threshold on the eigenvalues of the unit-diagonal form of J.

    Returns
    -------
    ndarray, shape (...)
        :math:`\\operatorname{tr}[J^{-1}]_{rr}`. Components whose information is
        exactly zero on the diagonal (hence, J being positive semi-definite, in
        their whole row: unconstrained and uncorrelated, e.g. the velocity right
        at a first detection) are left free: the bound is then that of the
        others, the generalized inverse of J. ``inf`` where a position
        component is free or the rest is singular (below ``tol``).
    """
    J = np.asarray(J, dtype=np.float64)
    n = J.shape[-1]
    d = np.diagonal(J, axis1=-2, axis2=-1)
    live = d > 0.0
    s = np.where(live, 1.0 / np.sqrt(np.where(live, d, 1.0)), 0.0)
    Js = J * s[..., :, None] * s[..., None, :]
    # Free components: a unit diagonal entry, no coupling, so they drop out of the inverse below.
    eye = np.broadcast_to(np.eye(n), J.shape)
    Js = np.where(live[..., :, None] & live[..., None, :], Js, eye)
    w, V = np.linalg.eigh(Js)
    ok = (w[..., 0] > tol * w[..., -1]) & np.all(live[..., pos], axis=-1)
    w = np.where(ok[..., None], w, 1.0)
    Vp = V[..., pos, :] * s[..., pos, None]  # rows of J^-1 = S V diag(1/w) V^T S for the position
    var = np.einsum("...ij,...j,...ij->...", Vp, 1.0 / w, Vp)
    return np.where(ok, var, np.inf)


def measurement_information(x, site_ecef, R_enu, R):
    """Fisher information :math:`H^T R^{-1} H` of AER measurements at true states, ``(..., 6, 6)``.

    Parameters
    ----------
    x : ndarray, shape (..., 6)
        True ECEF states (m, m/s).
    site_ecef, R_enu : ndarray, shape (..., 3) and (..., 3, 3)
        Sensor position (ECEF m) and ECEF-to-ENU rotation.
    R : ndarray, shape (..., 3, 3)
        Measurement covariance of [range m, azimuth rad, elevation rad].

    Returns
    -------
    ndarray, shape (..., 6, 6)
        :math:`H` from :func:`sensors.geometry.measurement_jacobian` (Bar-Shalom et al. 2001, sec. 10.4).
    """
    H = measurement_jacobian(x, site_ecef, R_enu)
    HtRi = np.swapaxes(np.linalg.solve(R, H), -1, -2)  # H^T R^-1 (R symmetric)
    return _sym(HtRi @ H)


# --------------------------------------------------------------------------------------------------
# The truth's dynamics along its own path


class _ObjectModel:
    """Missile class, nominal flight and dispersion of one truth object (the nominal is solved on first use)."""

    def __init__(self, threat, kind):
        self.threat, self.kind = threat, kind
        self.missile = MISSILES[threat.missile]
        rv = kind == "rv"
        self.beta = self.missile.rv_ballistic_coeff if rv else self.missile.stage_ballistic_coeff
        self.sigma_beta = float(threat.dispersion.ballistic_coeff_frac)
        self.sigma_v = float(threat.dispersion.burnout_speed)

    @functools.cached_property
    def nominal(self):
        from sim.shaping import nominal_for_threat

        return nominal_for_threat(self.threat)

    def program(self, n, beta=None):
        """A :class:`sim.dynamics.Program` of ``n`` identical rows (nominal azimuth; ``beta`` overrides)."""
        nom = self.nominal
        lg, lp = (nom.lift_glide, nom.lift_pullup) if self.kind == "rv" else (0.0, 0.0)
        return dyn.make_program(self.missile, nom.launch_lat, nom.launch_lon, np.full(n, nom.azimuth), nom.kick,
                                nom.t_cut, self.beta if beta is None else beta, lg, lp, nom.pitch_program)


def _object_models(truth, threats):
    return [_ObjectModel(threats[int(truth.object_threat[o])], kind) for o, kind in enumerate(truth.object_kind)]


def _fd_states(x):
    """Base state and its +-1 perturbations, ``(M, 13, 6)`` (central differences)."""
    M = x.shape[0]
    X = np.repeat(x[:, None, :], 13, axis=1)
    step = np.array([_FD_POS] * 3 + [_FD_VEL] * 3)
    for i in range(6):
        X[:, 1 + 2 * i, i] += step[i]
        X[:, 2 + 2 * i, i] -= step[i]
    return X.reshape(M * 13, 6), step


def _system_matrix(model, x_mid, tau_mid):
    """Augmented system matrix ``(M, 7, 7)`` of the truth's dynamics at states ``x_mid (M, 6)``.

    ``tau_mid`` (M,) is the time since launch; rows at or after cut-off are evaluated together
    (their acceleration does not depend on the time), powered rows one by one.
    """
    M = x_mid.shape[0]
    A = np.zeros((M, N_STATE, N_STATE))
    A[:, 0:3, 3:6] = np.eye(3)
    nom = model.nominal
    X, step = _fd_states(x_mid)
    acc = np.empty((M, 13, 3))
    powered = tau_mid < nom.t_cut
    # sim.dynamics.acceleration skips the air for a whole batch when every state is above the atmosphere:
    # rows wholly above it and rows partly in it are evaluated apart, so that each row's result does not
    # depend on the others in the batch (trial k the same in any chunk).
    in_air = (dyn.height_fast(X[:, :3]) < TOP_OF_ATMOSPHERE).reshape(M, 13).any(axis=1)
    tau_c = nom.t_cut + 1.0e6  # any time after cut-off: the coasting acceleration does not depend on it
    for coast in (np.flatnonzero(~powered & in_air), np.flatnonzero(~powered & ~in_air)):
        if not coast.size:
            continue
        idx = (coast[:, None] * 13 + np.arange(13)).ravel()
        prog = model.program(idx.size)
        acc[coast] = dyn.acceleration(tau_c, tau_c, X[idx, :3], X[idx, 3:], prog).reshape(-1, 13, 3)
        # theta column: drag and lift scale as 1/beta, so d a / d ln(beta) = -(a(beta) - a(beta = inf)).
        p_inf = model.program(idx.size, beta=np.inf)
        a_aero = (acc[coast, 0]
                  - dyn.acceleration(tau_c, tau_c, X[idx, :3], X[idx, 3:], p_inf).reshape(-1, 13, 3)[:, 0])
        A[coast, 3:6, 6] = -a_aero
    if powered.any():
        prog = model.program(13)
        for i in np.flatnonzero(powered):
            Xi = X[i * 13:(i + 1) * 13]
            acc[i] = dyn.acceleration(float(tau_mid[i]), float(tau_mid[i]), Xi[:, :3], Xi[:, 3:], prog)
    for i in range(6):
        A[:, 3:6, i] = (acc[:, 1 + 2 * i] - acc[:, 2 + 2 * i]) / (2.0 * step[i])
    return A


class TruthDynamics:
    """The truth's boost and atmosphere transitions of a chunk, computed once and shared by calls.

    Every (policy, nation) of a chunk has the same truth, so the costly part of
    :func:`truth_transition` (finite differences of the truth's acceleration in
    boost and in the atmosphere, about half the time of a call) need not be
    redone per call: build one per chunk and pass it as ``dynamics=`` to
    :func:`pcrlb_position_variance`. It keeps only those steps (a tenth of the
    flight for the Hwasong-15: 392 bytes per trial, object and step).

    Parameters
    ----------
    truth : sim.truth.Truth
    threats : sequence of sim.config.ThreatConfig
    """

    def __init__(self, truth, threats):
        self.truth = truth
        self.models = _object_models(truth, threats)
        self.full: dict = {}  # (k0, k1, object) -> (trial rows, step offsets, F (M, 7, 7))


def truth_transition(truth, threats, k0, k1, models=None, dynamics=None):
    """Transition Jacobians and process noise of the truth's dynamics into grid indices ``k0 .. k1-1``.

    Parameters
    ----------
    truth : sim.truth.Truth
        Uses ``t``, ``state``, ``phase``, ``launch_time``, ``object_threat``, ``object_kind``.
    threats : sequence of sim.config.ThreatConfig
        ``scenario.threats`` (missile class, nominal flight and dispersion of each object's threat).
    k0, k1 : int
        Grid indices, ``1 <= k0 <= k1 <= T``: step ``k`` goes from ``t[k-1]`` to ``t[k]``.
    models : list, optional
        Cached result of the per-object model lookup (internal).
    dynamics : TruthDynamics, optional
        Boost and atmosphere transitions already computed for this truth (filled on first use).

    Returns
    -------
    F : ndarray, shape (trials, objects, k1 - k0, 7, 7)
        :math:`\\partial x_k / \\partial x_{k-1}` of the augmented state (module notes);
        the identity where the object is not in flight at both ends of the step.
    Q : ndarray, shape (trials, objects, k1 - k0, 7, 7)
        Process noise of the step: the burnout-speed impulse on the step of the cut-off, else 0.
    """
    if dynamics is not None:
        models = dynamics.models
    elif models is None:
        models = _object_models(truth, threats)
    t = np.asarray(truth.t, dtype=np.float64)
    if not 1 <= k0 <= k1 <= t.size:
        raise InputError.single("k0, k1", (k0, k1), f"1 <= k0 <= k1 <= {t.size}")
    N, O = truth.state.shape[:2]
    B = k1 - k0
    x0 = truth.state[:, :, k0 - 1:k1 - 1]
    x1 = truth.state[:, :, k0:k1]
    valid = np.isfinite(x0).all(-1) & np.isfinite(x1).all(-1)
    F = np.broadcast_to(np.eye(N_STATE), (N, O, B, N_STATE, N_STATE)).copy()
    Q = np.zeros((N, O, B, N_STATE, N_STATE))
    h = t[k0:k1] - t[k0 - 1:k1 - 1]  # (B,)
    hh = np.broadcast_to(h, (N, O, B))
    phase0 = np.asarray(truth.phase)[:, :, k0 - 1:k1 - 1]
    low = np.zeros((N, O, B), dtype=bool)
    low[valid] = ((dyn.height_fast(x0[valid][:, :3]) < TOP_OF_ATMOSPHERE + _ATMOSPHERE_MARGIN)
                  | (dyn.height_fast(x1[valid][:, :3]) < TOP_OF_ATMOSPHERE + _ATMOSPHERE_MARGIN))
    full = valid & (low | (phase0 == PHASE_BOOST))
    vac = valid & ~full
    if vac.any():
        _, F6 = ballistic_transition(x0[vac], hh[vac])
        F[vac, :6, :6] = F6
    for o in range(O):
        model = models[o]
        sel = full[:, o]
        hit_cache = dynamics.full.get((k0, k1, o)) if dynamics is not None else None
        if hit_cache is not None:
            n_i, b_i, Fo = hit_cache
            F[n_i, o, b_i] = Fo
        elif sel.any():
            n_i, b_i = np.nonzero(sel)
            hs = h[b_i]
            # Exponential midpoint rule on ATMOSPHERE_SUBSTEPS substeps (states from the cubic Hermite of the
            # truth's samples): the drag changes e-fold in ~1.5 s of a steep re-entry.
            Fo = np.broadcast_to(np.eye(N_STATE), (n_i.size, N_STATE, N_STATE))
            xa, xb = x0[n_i, o, b_i], x1[n_i, o, b_i]
            for i in range(ATMOSPHERE_SUBSTEPS):
                s_mid = (i + 0.5) / ATMOSPHERE_SUBSTEPS
                xm = _hermite(xa, xb, hs, s_mid)
                tau = t[k0 - 1:k1 - 1][b_i] + s_mid * hs - truth.launch_time[n_i, o]
                A = _system_matrix(model, xm, tau)
                Fo = _expm(A * (hs / ATMOSPHERE_SUBSTEPS)[:, None, None]) @ Fo
            F[n_i, o, b_i] = Fo
            if dynamics is not None:
                dynamics.full[(k0, k1, o)] = (n_i, b_i, Fo)
        # Burnout-speed impulse (module notes): on the step t[k-1] < t_c <= t[k].
        sigma_v = model.sigma_v
        if sigma_v > 0.0:
            t_c = truth.launch_time[:, o] + model.nominal.t_cut  # (N,)
            hit = (t[k0 - 1:k1 - 1][None, :] < t_c[:, None]) & (t_c[:, None] <= t[k0:k1][None, :]) & valid[:, o]
            for n_i, b_i in zip(*np.nonzero(hit)):
                v = x1[n_i, o, b_i, 3:]
                u = v / np.linalg.norm(v)
                G = np.zeros(N_STATE)
                G[0:3] = (t[k0 + b_i] - t_c[n_i]) * u
                G[3:6] = u
                Q[n_i, o, b_i] = sigma_v**2 * np.outer(G, G)
    return F, Q


def _expm(M):
    """Matrix exponential of a batch ``(..., n, n)`` by scaling and squaring of the Taylor series.

    The norms here are below 1 (``|A| h`` with ``h`` <= 0.25 s): scaled to <= 1/2, the series to
    order 14 errs < 1e-18 relative (Moler & Van Loan, "Nineteen dubious ways", SIAM Review 45,
    2003, method 3). scipy.linalg.expm loops over a batch matrix by matrix (~10 ms each).
    """
    norm = np.max(np.sum(np.abs(M), axis=-2), axis=-1)  # 1-norm
    # Scaling per matrix (not per batch), so each result is the same whatever else is in the batch.
    sq = np.maximum(0, np.ceil(np.log2(np.maximum(norm, 1e-300) / 0.5))).astype(np.int64)
    X = M / np.ldexp(1.0, sq)[..., None, None]
    n = M.shape[-1]
    E = np.broadcast_to(np.eye(n), M.shape).copy()
    term = E.copy()
    for k in range(1, 15):
        term = term @ X / k
        E += term
    for i in range(int(sq.max(initial=0))):
        E = np.where((sq > i)[..., None, None], E @ E, E)
    return E


def _hermite(xa, xb, h, s):
    """Cubic Hermite state ``(M, 6)`` at fraction ``s`` of a step ``h (M,)`` between states ``xa, xb (M, 6)``.

    Position: the cubic through both ends with their velocities; velocity: its derivative
    (the interpolation :mod:`sim.truth` samples its grid with, :func:`sim.dynamics.hermite`).
    """
    hc = h[:, None]
    ra, rb, va, vb = xa[:, :3], xb[:, :3], xa[:, 3:] * hc, xb[:, 3:] * hc
    s2, s3 = s * s, s * s * s
    pos = (2 * s3 - 3 * s2 + 1) * ra + (s3 - 2 * s2 + s) * va + (-2 * s3 + 3 * s2) * rb + (s3 - s2) * vb
    vel = ((6 * s2 - 6 * s) * ra + (3 * s2 - 4 * s + 1) * va + (-6 * s2 + 6 * s) * rb + (3 * s2 - 2 * s) * vb) / hc
    return np.concatenate([pos, vel], axis=1)


# --------------------------------------------------------------------------------------------------
# The bound of a nation's data


def _check(truth, dets, arrival, site_ecef, R_enu):
    K = len(dets)
    arrival = np.asarray(arrival, dtype=np.float64)
    if arrival.shape != (K,):
        raise InputError.single("arrival", arrival.shape, f"shape ({K},), one arrival time per detection")
    site_ecef = np.asarray(site_ecef, dtype=np.float64).reshape(-1, 3)
    R_enu = np.asarray(R_enu, dtype=np.float64).reshape(-1, 3, 3)
    if R_enu.shape[0] != site_ecef.shape[0]:
        raise InputError.single("R_enu", R_enu.shape, f"shape ({site_ecef.shape[0]}, 3, 3), one per sensor")
    if K and (dets.sensor.min() < 0 or dets.sensor.max() >= site_ecef.shape[0]):
        raise InputError.single("dets.sensor", int(dets.sensor.max()), f"indices in [0, {site_ecef.shape[0]})")
    if np.any(arrival < dets.time):
        raise InputError.single("arrival", float(np.min(arrival - dets.time)), "arrival >= measurement time")
    t = np.asarray(truth.t, dtype=np.float64)
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise InputError.single("truth.t", t.shape, "an increasing time grid")
    return arrival, site_ecef, R_enu


class _Transitions:
    """:func:`truth_transition` in blocks of :data:`_BLOCK` steps, flattened to series, with F^-1 (internal)."""

    def __init__(self, truth, models, dynamics=None):
        self.truth, self.T = truth, truth.t.size
        self.models, self.dynamics = models, dynamics
        self.blocks: dict = {}

    def get(self, k):
        b = (k - 1) // _BLOCK
        if b not in self.blocks:
            k0 = 1 + b * _BLOCK
            k1 = min(self.T, k0 + _BLOCK)
            F, Q = truth_transition(self.truth, None, k0, k1, self.models, self.dynamics)
            n = F.shape[0] * F.shape[1]
            F = F.reshape((n,) + F.shape[2:])
            Q = Q.reshape((n,) + Q.shape[2:])
            Fi = np.linalg.inv(F)
            qany = np.any(Q != 0.0, axis=(-1, -2))  # (n, B)
            self.blocks[b] = (k0, np.ascontiguousarray(np.swapaxes(Fi, 0, 1)), np.swapaxes(Q, 0, 1),
                              qany.T.copy())
            for old in [x for x in self.blocks if x < b - 1]:
                del self.blocks[old]
        k0, Fi, Q, qany = self.blocks[b]
        i = k - k0
        return Fi[i], Q[i], qany[i]


def _bound_steps(truth, dets, arrival, site_ecef, R_enu, threats, dynamics=None):
    """Generator of ``(j, J_j)``: the bound's information ``(trials * objects, 7, 7)`` at each grid index."""
    arrival, site_ecef, R_enu = _check(truth, dets, arrival, site_ecef, R_enu)
    t = np.asarray(truth.t, dtype=np.float64)
    T = t.size
    Ntr, O = truth.state.shape[:2]
    N = Ntr * O
    if dynamics is not None and dynamics.truth is not truth:
        raise InputError.single("dynamics", "TruthDynamics of another truth",
                                "TruthDynamics(truth, threats) of this truth")
    models = _object_models(truth, threats) if dynamics is None else dynamics.models
    J0 = np.zeros((N, N_STATE, N_STATE))
    sb = np.array([mdl.sigma_beta for mdl in models])
    # theta prior 1/sigma_beta^2; with no dispersion theta is known (no column couples it then)
    J0[:, 6, 6] = np.tile(np.where(sb > 0, 1.0 / np.where(sb > 0, sb, 1.0) ** 2, 1.0), Ntr)

    # Usable detections: real objects of this batch's trials, arrived within the grid, with a true state.
    tri = np.asarray(truth.trial_index, dtype=np.int64)
    sorter = np.argsort(tri, kind="stable")
    d_trial = np.asarray(dets.trial, dtype=np.int64)
    pos = np.searchsorted(tri, d_trial, sorter=sorter) if tri.size else np.zeros(len(dets), np.int64)
    pos = np.minimum(pos, max(tri.size - 1, 0))
    row = sorter[pos] if tri.size else pos
    dt = float(t[1] - t[0]) if T > 1 else 1.0
    g = np.rint((np.asarray(dets.time, dtype=np.float64) - t[0]) / dt).astype(np.int64)
    obj = np.asarray(dets.object, dtype=np.int64)
    use = ((obj >= 0) & (obj < O) & np.isfinite(arrival) & (arrival <= t[-1]) & (g >= 0) & (g < T)
           & (tri.size > 0) & (tri[row] == d_trial) & np.all(np.isfinite(dets.R.reshape(-1, 9)), axis=1))
    idx = np.flatnonzero(use)
    if idx.size:
        if not np.allclose(t[g[idx]], dets.time[idx], rtol=0.0, atol=1e-6 * dt):
            raise InputError.single("dets.time", "off-grid", "measurement times on the truth grid truth.t")
        x = truth.state[row[idx], obj[idx], g[idx]]
        ok = np.all(np.isfinite(x), axis=1)
        idx, x = idx[ok], x[ok]
    else:
        x = np.zeros((0, 6))
    sen = dets.sensor[idx].astype(np.int64)
    I6 = measurement_information(x, site_ecef[sen], R_enu[sen], dets.R[idx])
    info = np.zeros((idx.size, N_STATE, N_STATE))
    info[:, :6, :6] = I6
    series = row[idx] * O + obj[idx]
    gi, ai = g[idx], arrival[idx]
    order = np.lexsort((ai, gi))
    gi, ai, series, info = gi[order], ai[order], series[order], info[order]
    ptr = np.searchsorted(gi, np.arange(T + 1))
    # Complete time of each grid index: when its last detection arrives; m(j) = last index settled by t_j.
    last = np.full(T, -np.inf)
    has = ptr[1:] > ptr[:-1]
    last[has] = ai[ptr[1:][has] - 1]
    settled = np.maximum.accumulate(last)
    m_of_j = np.minimum(np.searchsorted(settled, t, side="right") - 1, np.arange(T))

    trans = _Transitions(truth, models, dynamics)

    def advance(J, k, cutoff):
        if k > 0:
            Fi, Q, qany = trans.get(k)
            J = np.swapaxes(Fi, -1, -2) @ J @ Fi
            if qany.any():
                q = np.flatnonzero(qany)
                J[q] = np.linalg.solve(np.eye(N_STATE) + J[q] @ Q[q], J[q])
            J = _sym(J)
        a, b = ptr[k], ptr[k + 1]
        if b > a:
            if cutoff is not None:
                b = a + int(np.searchsorted(ai[a:b], cutoff, side="right"))
            if b > a:
                J = J.copy() if k == 0 else J
                np.add.at(J, series[a:b], info[a:b])
        return J

    J = J0.copy()
    i_main = -1
    for j in range(T):
        while i_main < m_of_j[j]:
            i_main += 1
            J = advance(J, i_main, None) if i_main > 0 else advance(J0, 0, None)
        Jw = J
        if i_main < 0:
            Jw = J0
        for k in range(i_main + 1, j + 1):
            Jw = advance(Jw, k, t[j]) if k > 0 else advance(J0, 0, t[j])
        yield j, Jw


def pcrlb_information(truth, dets, arrival, site_ecef, R_enu, threats, dynamics=None):
    """Information matrices of the PCRLB of a nation's data at every grid time (module notes).

    Parameters
    ----------
    truth, dets, arrival, site_ecef, R_enu, threats, dynamics
        As :func:`pcrlb_position_variance`.

    Returns
    -------
    ndarray, shape (trials, objects, T, 7, 7)
        :math:`J` at each ``truth.t``, state ``[x, y, z, vx, vy, vz, theta]`` (module notes);
        :math:`J^{-1}` bounds the covariance of any estimator using the detections
        arrived by then. Memory: 392 bytes per (trial, object, step).
    """
    Ntr, O, T = truth.state.shape[:3]
    out = np.empty((Ntr * O, T, N_STATE, N_STATE))
    for j, J in _bound_steps(truth, dets, arrival, site_ecef, R_enu, threats, dynamics):
        out[:, j] = J
    return out.reshape(Ntr, O, T, N_STATE, N_STATE)


def pcrlb_position_variance(truth, dets, arrival, site_ecef, R_enu, threats, dynamics=None):
    """Posterior Cramer-Rao bound on the position of each object from the data a nation has received.

    Parameters
    ----------
    truth : sim.truth.Truth
        True trajectories (``state (trials, objects, T, 6)`` ECEF on the grid ``t (T,)``).
    dets : sensors.detections.Detections
        Every detection of the chunk (columnar, K rows); those with ``object == o`` of
        trial ``truth.trial_index[n]`` feed the bound of object o in trial n (perfect
        association); false alarms (object -1) are ignored.
    arrival : ndarray, shape (K,)
        Time each detection reaches this nation, s (inf: never; >= its measurement time).
    site_ecef : ndarray, shape (S, 3)
        Sensor positions, ECEF m (as :func:`sim.engine.nation_tracks` stacks them).
    R_enu : ndarray, shape (S, 3, 3)
        ECEF-to-ENU rotations of the sensors.
    threats : sequence of sim.config.ThreatConfig
        ``scenario.threats`` (the truth's dispersion is its process noise).
    dynamics : TruthDynamics, optional
        ``TruthDynamics(truth, threats)``, shared by the calls of one chunk (halves the
        time of every call after the first); None: computed within the call.

    Returns
    -------
    ndarray, shape (trials, objects, T), float64
        :math:`\\operatorname{tr}[J^{-1}]_{rr}` (m^2) at each ``truth.t``: the bound on
        the summed position variance of any estimate at :math:`t` from the object's
        detections with ``arrival <= t``; ``inf`` where the position is not yet
        determined (no detection yet, or no velocity yet once time has moved on);
        NaN where the object is not in flight (no true state).

    Raises
    ------
    InputError
        ``arrival`` of the wrong shape or before a measurement time, a sensor index
        out of range, measurement times off the truth grid, ``dynamics`` of another truth.

    Notes
    -----
    Tichavsky, Muravchik & Nehorai 1998 (module notes: dynamics, process noise,
    prior and the exact handling of latency). Cost: about
    ``T * (1 + max latency / dt)`` batched 7x7 steps over trials x objects.
    """
    Ntr, O, T = truth.state.shape[:3]
    out = np.empty((Ntr * O, T))
    buf = np.empty((Ntr * O, _BLOCK, N_STATE, N_STATE))
    j0 = 0
    for j, J in _bound_steps(truth, dets, arrival, site_ecef, R_enu, threats, dynamics):
        buf[:, j - j0] = J
        if j - j0 == _BLOCK - 1 or j == T - 1:
            out[:, j0:j + 1] = position_variance(buf[:, :j - j0 + 1])
            j0 = j + 1
    out = out.reshape(Ntr, O, T)
    flying = np.all(np.isfinite(truth.state), axis=-1)
    return np.where(flying, out, np.nan)
