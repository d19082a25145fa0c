"""The compiled tracker: one sequential time loop per trial, trials in parallel on threads (numba, nogil).

:func:`run_tracker_compiled` takes the inputs of :func:`fusion.tracker.run_tracker`
and returns the same :class:`fusion.tracker.TrackHistory`. It runs the same
tracker (module notes of :mod:`fusion.tracker`: gating, GNN and JPDA*, M-of-N
confirmation, the deletion rules, initiation, the output
estimate on every grid time under the latency-lagged life rules, and exact
out-of-sequence reprocessing), written per trial and per track:

* **Time loop** (:func:`_run_trial`). A trial's detections, grouped by
  (measurement time, sensor), are processed in measurement-time order; at grid
  time ``t[i]`` the groups holding detections that arrived in
  ``(t[i-1], t[i]]`` are processed. When an arrival precedes groups already
  processed, the full track state saved just before the earliest of them is
  restored and every arrived group from there is processed again, in order
  (reprocessing, the exact OOSM solution: Bar-Shalom, IEEE Trans. AES 38(3),
  2002). States are saved only at the restore points the arrival times call
  for, in a pool of snapshots that grows on demand and is recycled once a
  point's last restoring epoch has passed: it holds as many snapshots as there
  are restore points within the longest latency, a few when latencies are a
  few scans.
* **Group step** (:func:`_group_step`): deletion and prediction of the
  trial's tracks, gating, JPDA* of the clusters of confirmed tracks
  (:func:`_jpda_step`), GNN of the rest, track life, initiation.
* **Per-track kernels**: :mod:`fusion.track_kernels`,
  :mod:`fusion.motion_kernels`, :mod:`fusion.assign_kernels`.

Trials are independent, so a trial's result does not depend on the chunk it
runs in nor on the number of threads (tests/test_loop.py).

The state of one trial is held in a few arrays over its ``N`` track slots:
``X`` (N, r, 6), ``PP`` (N, r, 6, 6), ``MU`` (N, r) (filter modes, see
:mod:`fusion.track_kernels`), ``TF`` (N, 5) float fields ``t, t_init, t_last,
r_init, r_last, rcs, miss``, ``TI`` (N, 7) integer fields ``active, confirmed, hits,
object, first detection, last detection, output id``, ``SENS`` (N,) uint64 sensor bitmasks, ``PL`` (N, M, 14) the newest M
plots of each tentative track (time, z, R, sensor: the batch start at
confirmation) and ``CNT`` (13,) counters in the order of :data:`COUNTERS`.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)
from fusion import motion_kernels as mk
from fusion import registration_kernels as rk
from fusion import track_kernels as tk
from fusion.initiation import batch_fit
from fusion.assign_kernels import gnn_assign, jpda_star
from sim.errors import InputError

COUNTERS = ("rejected_nonfinite", "initiated", "no_slot", "confirmed", "deleted_missed",
            "deleted_sigma", "deleted_unconfirmed", "deleted_speed", "updates", "deleted_ground",
            "confirm_deferred", "replaced_tentative", "deleted_looks")
(_C_REJ, _C_INIT, _C_NOSLOT, _C_CONF, _C_MISSED, _C_SIGMA, _C_UNCONF, _C_SPEED, _C_UPD, _C_GROUND,
 _C_DEFER, _C_REPLACED, _C_LOOKS) = range(13)
_NC = len(COUNTERS)
_T, _T_INIT, _T_LAST, _R_INIT, _R_LAST, _RCS, _MISS = range(7)  # columns of TF
_NTF = 7
_ACTIVE, _CONFIRMED, _HITS, _OBJECT, _FIRSTDET, _LASTDET, _OID = range(7)  # columns of TI
_NTI = 7

# indices of the float parameter vector (built by _parameters)
(_P_Q, _P_QT, _P_ACC, _P_VFLOOR, _P_BOOST, _P_BALL, _P_GAMMA, _P_WINDOW, _P_D, _P_MAXVAR, _P_MAXSPEED,
 _P_INITSPEED, _P_LOGPD, _P_COSTOFF, _P_LAG, _P_LOGVOL0, _P_FITGATE, _P_PG, _P_LOOKLLR, _P_PD0) = range(20)
_NP = 20
RCS_MEMORY = 0.2  # weight of a new plot in a track's running log-RCS estimate (a few plots' memory)
PD_CLIP = (0.01, 0.99)  # the model P_D of a track is kept inside this (the weights stay finite)
# indices of the integer parameter vector
_I_KIND, _I_M, _I_JPDA, _I_JPDA_MAX, _I_DELETION, _I_BATCH, _I_PDMODEL, _I_REPLACE, _I_REG = range(9)
_DEL_QUALITY, _DEL_MISSED = 0, 1  # values of ip[_I_DELETION] (TrackerConfig.deletion)


# ------------------------------------------------------------------------------------------------
# Track life
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _missed(fp, TF, j, t):
    """True when track ``j`` has missed more than D scans at ``t``: :math:`t - t_{last} > D\\,r_{last}`."""
    return (t - TF[j, _T_LAST]) > fp[_P_D] * TF[j, _R_LAST]


@njit(cache=True)
def _dead(ip, fp, TF, TI, j, t):
    """Deletion verdict of track ``j`` at time ``t``: 0 live, 1 missed scans, 2 unconfirmed past its M-of-N window.

    Missed: :math:`t - t_{last} > D\\,r_{last}` (D scans of the last updating
    sensor) ends a tentative track always and a confirmed one only under
    ``deletion = "missed"``; under ``"quality"`` a confirmed track that misses
    coasts, and only its covariance (:func:`_out_of_bounds`) ends it. Window:
    :math:`t - t_{init} > (N-1)\\,r_{init}` while tentative (Blackman & Popoli
    1999, sec. 3.6).
    """
    confirmed = TI[j, _CONFIRMED] == 1
    if (not confirmed or ip[_I_DELETION] == _DEL_MISSED) and _missed(fp, TF, j, t):
        return 1
    if not confirmed and (t - TF[j, _T_INIT]) > fp[_P_WINDOW] * TF[j, _R_INIT]:
        return 2
    return 0


@njit(cache=True)
def _out_of_bounds(fp, xc, Pc):
    """Quality verdict of a confirmed track's combined state ``xc``, ``Pc``: 0 kept, 1 sigma, 2 below ground.

    1: position sigma :math:`\\sqrt{\\operatorname{tr} P_{rr}}` above ``max_position_sigma``
    (the track no longer says where the object is); 2: height more than three
    position sigmas below the ellipsoid (the object has impacted; a coasting
    track would otherwise fly on underground).
    """
    var = Pc[0, 0] + Pc[1, 1] + Pc[2, 2]
    if var > fp[_P_MAXVAR]:
        return 1
    if mk.height(xc) < -3.0 * math.sqrt(var):
        return 2
    return 0


@njit(cache=True)
def _observe_rcs(TF, j, snr, rho, snr_ref, first):
    """Fold the RCS a plot implies, :math:`\\sigma = S\\rho^4 / (S_{ref}\\rho_{ref}^4)`, into track ``j``'s estimate.

    ``snr`` is the plot's reported mean SNR at measured range ``rho``, ``snr_ref`` the
    sensor's :math:`S_{ref}\\rho_{ref}^4` (radar equation, :meth:`sensors.radar.Radar.snr`).
    Running mean of :math:`\\ln\\sigma` with weight :data:`RCS_MEMORY`; the first plot sets it
    (NaN: no estimate yet).
    """
    if first:
        TF[j, _RCS] = np.nan
    if not (snr > 0.0 and snr_ref > 0.0 and rho > 0.0):
        return
    lr = math.log(snr) + 4.0 * math.log(rho) - math.log(snr_ref)
    if not math.isfinite(TF[j, _RCS]):
        TF[j, _RCS] = lr
    else:
        TF[j, _RCS] = (1.0 - RCS_MEMORY) * TF[j, _RCS] + RCS_MEMORY * lr


@njit(cache=True)
def _track_pd(ip, fp, xj, site, det_model, sensor, TF, j):
    """Detection probability of track ``j`` by ``sensor`` for the JPDA weights, and its log weight term.

    Without a detection model (or a Swerling 0 radar, or no RCS yet) the fixed
    :data:`fusion.tracker.JPDA_DETECTION_PROBABILITY`. Otherwise the radar's own
    single-dwell P_D at the track's predicted range for its estimated RCS:
    :math:`\\bar S = S_{ref}\\rho_{ref}^4\\,\\sigma/\\rho^4`, Swerling I/II
    :math:`P_D = P_{fa}^{1/(1+\\bar S)}`, III/IV
    :math:`e^{-T/(1+\\bar S/2)}(1 + T(\\bar S/2)/(1+\\bar S/2)^2)`, :math:`T = -\\ln P_{fa}`
    (:func:`sensors.radar.detection_probability`; Richards 2014, sec. 6.3), clipped
    to :data:`PD_CLIP`. Returns :math:`\\ln(P_D/(1 - P_D P_G))` (Fortmann et al. 1983).
    """
    if ip[_I_PDMODEL] == 0:
        return fp[_P_LOGPD]
    pd = _radar_pd(xj, site, det_model, sensor, TF, j)
    if not math.isfinite(pd):
        return fp[_P_LOGPD]
    pd = min(max(pd, PD_CLIP[0]), PD_CLIP[1])
    return math.log(pd / (1.0 - pd * fp[_P_PG]))


@njit(cache=True)
def _radar_pd(xj, site, det_model, sensor, TF, j):
    """The radar's single-dwell P_D of track ``j`` at state ``xj`` for its RCS estimate (not clipped); NaN if unknown.

    Unknown: no detection model for the sensor (``det_model[sensor, 0] = 0``), a
    Swerling 0 radar or no RCS estimate yet. Formulas in :func:`_track_pd`.
    """
    sw = int(det_model[sensor, 2])
    if not (det_model[sensor, 0] > 0.0) or not math.isfinite(TF[j, _RCS]) or sw == 0:
        return math.nan
    dx = xj[0] - site[0]
    dy = xj[1] - site[1]
    dz = xj[2] - site[2]
    rho2 = dx * dx + dy * dy + dz * dz
    S = math.exp(math.log(det_model[sensor, 0]) + TF[j, _RCS] - 2.0 * math.log(rho2))
    pfa = det_model[sensor, 1]
    if sw <= 2:
        pd = math.exp(math.log(pfa) / (1.0 + S))
    else:
        T = -math.log(pfa)
        h = 0.5 * S
        pd = math.exp(-T / (1.0 + h)) * (1.0 + T * h / ((1.0 + h) * (1.0 + h)))
    return pd


@njit(cache=True)
def _look_misses(fp, tg, sensor, site, R_enu, z, gated, det_model, X, PP, MU, TF, TI, SENS, CNT):
    """Score the looks of ``sensor`` at ``tg`` that missed a confirmed track, and delete the track they disprove.

    A *look* at track ``j`` is a dwell of a sensor that has updated it before
    whose beam held it: a detection of this group lies within half the sensor's
    beamwidth (``det_model[sensor, 3]``, rad) of the track's predicted direction.
    A miss is such a look with no detection in the track's gate. Each miss adds
    :math:`-\\ln(1 - P_D P_G)` to the track's miss score (``TF[j, _MISS]``, reset
    by a hit, :func:`_record_hit`): the log-likelihood ratio, against an object
    being there, of having seen nothing in its gate (the missed-detection term
    of the track score, Blackman & Popoli 1999, sec. 6.2; the same factor
    :math:`1 - P_D P_G` updates the existence probability of IPDA, Musicki,
    Evans & Stankovic, IEEE Trans. AC 39(6), 1994). :math:`P_D` is the radar's own
    for the track's RCS estimate at its range (:func:`_radar_pd`), not clipped
    (:data:`PD_CLIP` keeps the JPDA weights finite; its floor of 0.01 here made
    hundreds of looks at an RV beyond its detection range, dwelling on the stage
    beside it, end a track 30 m from the RV: Hwasong-15, US isolated, trial 0),
    else :data:`fusion.tracker.JPDA_DETECTION_PROBABILITY`. The track is deleted
    when the score passes :math:`\\ln(1/\\alpha)`, ``alpha =
    tracker.miss_deletion_probability``: its object, were it there, would have
    been missed by all these looks with probability below alpha. One look at a
    large body already scores :math:`-\\ln(1 - P_G) = 8.1`, past :math:`\\ln 10^3`,
    so a spent stage's track in re-entry, off its drag model, ends at its first
    miss and restarts. Deleting only coasting tracks (no hit for
    ``delete_after_missed`` scans) avoided that but kept the ghosts of the
    shared pictures, which a coarse radar's wide gate still fed now and then:
    85 % of the Hwasong-15 trilateral steps above the NEES band against 2 %
    (20 trials, measured).

    Why: a coasting track (``deletion = "quality"``) is kept for the coverage
    gaps, where no dwell holds it and so no look counts; but a track that the
    radars look at and never see is not on an object. Measured (Hwasong-15, US
    isolated, trial 5): after the RV/stage separation the two tracks took the
    RV's plots of one TPY-2 and the stage's of the other (ranges 3 m, angles
    200-1,200 m: every sensor-wise pairing fits), flew as ghosts 7 m/s and
    1-2 km off with 0.3 m/s sigma, lost their plots to new tracks at 240 s and
    then coasted to impact with NEES 2e4 while the TPY-2 beams held them.
    """
    if det_model.shape[1] < 4 or not (det_model[sensor, 3] > 0.0) or not math.isfinite(fp[_P_LOOKLLR]):
        return
    half = 0.5 * det_model[sensor, 3]
    k, N = gated.shape
    bit = np.uint64(1) << np.uint64(sensor)
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    hx = np.empty(3)
    for j in range(N):
        if TI[j, _ACTIVE] == 0 or TI[j, _CONFIRMED] == 0 or TF[j, _T_LAST] == tg or (SENS[j] & bit) == 0:
            continue
        miss = True
        for a in range(k):
            if gated[a, j]:
                miss = False
        if not miss:
            continue
        tk.combine(X[j], PP[j], MU[j], xc, Pc)
        tk.radar_hx(xc, site, R_enu, hx)
        look = False
        for a in range(k):
            daz = tk.wrap_angle(z[a, 1] - hx[1]) * math.cos(hx[2])
            de = z[a, 2] - hx[2]
            if daz * daz + de * de <= half * half:
                look = True
                break
        if not look:
            continue
        pd = _radar_pd(xc, site, det_model, sensor, TF, j)
        if not math.isfinite(pd):
            pd = fp[_P_PD0]
        TF[j, _MISS] -= math.log1p(-pd * fp[_P_PG])
        if TF[j, _MISS] > fp[_P_LOOKLLR]:
            TI[j, _ACTIVE] = 0
            CNT[_C_LOOKS] += 1


@njit(cache=True)
def _record_hit(TF, TI, SENS, CNT, j, label, sensor, tg, rev, did, claim):
    """Book an update of track ``j`` by detection ``did`` of ``sensor`` at ``tg``; returns its new hit count.

    ``claim[did] = j``: the slot of the track that took each detection. A hit clears the
    track's miss score (:func:`_look_misses`).
    """
    TI[j, _LASTDET] = did
    claim[did] = j
    TF[j, _MISS] = 0.0
    TF[j, _T_LAST] = tg
    TF[j, _R_LAST] = rev
    TI[j, _HITS] += 1
    TI[j, _OBJECT] = label
    SENS[j] |= np.uint64(1) << np.uint64(sensor)
    CNT[_C_UPD] += 1
    return TI[j, _HITS]


# ------------------------------------------------------------------------------------------------
# JPDA* of the clusters of confirmed tracks
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True)
def _jpda_step(ip, fp, tg, sensor, site, R_enu, rev, z, R, obj, did, claim, snr, det_model, gated, cost, ld,
               X, PP, MU, TF, TI, SENS, CNT, assigned, in_jpda, blk, VB, BB, PB):
    """JPDA* update of the clusters of confirmed tracks that share gated detections.

    Clusters are the connected components of the bipartite graph of gated
    (detection, confirmed track) pairs with 2 to ``JPDA_MAX_CLUSTER`` tracks and
    at most as many detections (Fortmann, Bar-Shalom & Scheffe 1983, sec. III).
    Pair weight :math:`\\log w = \\log\\mathcal N - \\log\\lambda + \\log(P_D/(1-P_DP_G))`, with
    the nonparametric clutter density :math:`\\lambda = m/V` of the cluster
    (:math:`V` the largest track gate, Bar-Shalom et al. 2001, eq. 3.4.4-3;
    Bar-Shalom, Daum & Huang 2009, eq. 37, 41). Each track becomes the
    moment-matched mixture of its hypotheses (:func:`fusion.track_kernels.pda_merge`);
    hits, labels and used detections follow the most probable joint event.
    Marks ``in_jpda`` tracks and ``assigned`` detections.
    """
    k, N = gated.shape
    kind = ip[_I_KIND]
    parent = np.arange(k + N)
    used = np.zeros(k + N, dtype=np.bool_)
    any_pair = False
    for a in range(k):
        for j in range(N):
            if gated[a, j] and TI[j, _CONFIRMED] == 1:
                any_pair = True
                used[a] = True
                used[k + j] = True
                ra, rj = _find(parent, a), _find(parent, k + j)
                if ra != rj:
                    parent[max(ra, rj)] = min(ra, rj)
    if not any_pair:
        return
    root = np.empty(k + N, dtype=np.int64)
    for v in range(k + N):
        root[v] = _find(parent, v) if used[v] else -1
    jmax = ip[_I_JPDA_MAX]
    for c in range(k + N):
        n_d = 0
        n_t = 0
        for v in range(k):
            if root[v] == c:
                n_d += 1
        for v in range(N):
            if root[k + v] == c:
                n_t += 1
        if n_t < 2 or n_t > jmax or n_d > jmax:
            continue
        dets = np.empty(n_d, dtype=np.int64)
        trks = np.empty(n_t, dtype=np.int64)
        n_d = 0
        n_t = 0
        for v in range(k):
            if root[v] == c:
                dets[n_d] = v
                n_d += 1
        for v in range(N):
            if root[k + v] == c:
                trks[n_t] = v
                n_t += 1
        gm = np.zeros((n_d, n_t), dtype=np.bool_)
        lw = np.full((n_d, n_t), -np.inf)
        ld_max = -np.inf
        for a in range(n_d):
            for b in range(n_t):
                if gated[dets[a], trks[b]]:
                    gm[a, b] = True
                    ld_max = max(ld_max, ld[dets[a], trks[b]])
        log_lambda = math.log(n_d) - (fp[_P_LOGVOL0] + 0.5 * ld_max)
        xc = np.empty(6)
        Pc = np.empty((6, 6))
        for b in range(n_t):
            tk.combine(X[trks[b]], PP[trks[b]], MU[trks[b]], xc, Pc)
            logpd = _track_pd(ip, fp, xc, site, det_model, sensor, TF, trks[b])
            for a in range(n_d):
                if gm[a, b]:
                    lw[a, b] = -0.5 * (cost[dets[a], trks[b]] + fp[_P_COSTOFF]) + logpd - log_lambda
        beta, beta0, map_det = jpda_star(lw, gm)
        r = X.shape[1]
        for b in range(n_t):
            j = trks[b]
            first = TI[j, _HITS] == 1
            xk = np.empty((n_d, r, 6))
            Pk = np.empty((n_d, r, 6, 6))
            muk = np.empty((n_d, r))
            bk = np.empty(n_d)
            n = 0
            for a in range(n_d):
                if gm[a, b]:
                    xk[n] = X[j]
                    Pk[n] = PP[j]
                    muk[n] = MU[j]
                    tk.update_track(kind, xk[n], Pk[n], muk[n], z[dets[a]], R[dets[a]], site, R_enu, first)
                    bk[n] = beta[a, b]
                    n += 1
            if ip[_I_REG] == 1:  # the sensitivity's moment-matched update; no bias update from a cluster
                _reg_update(X, PP, MU, VB, BB, PB, j, z[dets[0]], R[dets[0]], site, R_enu, blk[sensor],
                            np.bool_(False), 1.0 - beta0[b])
            tk.pda_merge(kind, X[j].copy(), PP[j].copy(), MU[j].copy(), beta0[b], xk, Pk, muk, bk, np.int64(n),
                         X[j], PP[j], MU[j])
            in_jpda[j] = True
        for b in range(n_t):
            if map_det[b] >= 0:
                a = dets[map_det[b]]
                _record_hit(TF, TI, SENS, CNT, trks[b], obj[a], sensor, tg, rev, did[a], claim)
                _observe_rcs(TF, trks[b], snr[a], z[a, 0], det_model[sensor, 0], np.bool_(False))
                assigned[a] = True


# ------------------------------------------------------------------------------------------------
# One group of detections (one measurement time, one sensor) of one trial
# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# Initiation: the plots of a tentative track and the batch start at confirmation
# ------------------------------------------------------------------------------------------------

_PL_T, _PL_Z, _PL_R, _PL_S, _PL_W = 0, 1, 4, 13, 14  # columns of a stored plot: t, z (3), R (9), sensor; width


@njit(cache=True)
def _store_plot(PL, j, hits, tg, z, R, sensor):
    """Keep the plot of the ``hits``-th hit of tentative track ``j`` in ``PL[j]`` (the newest M plots)."""
    M = PL.shape[1]
    slot = hits - 1
    if slot >= M:  # keep the newest M: drop the oldest
        for i in range(M - 1):
            PL[j, i] = PL[j, i + 1]
        slot = M - 1
    PL[j, slot, _PL_T] = tg
    for i in range(3):
        PL[j, slot, _PL_Z + i] = z[i]
        for m in range(3):
            PL[j, slot, _PL_R + 3 * i + m] = R[i, m]
    PL[j, slot, _PL_S] = sensor


@njit(cache=True)
def _batch_start(ip, fp, PL, j, tg, sites, R_enus, X, PP):
    """Start confirmed track ``j`` from its M stored plots by batch least squares; False if the fit fails.

    :func:`fusion.initiation.batch_fit` on the ballistic model at ``tg`` (the
    last plot), with the thrust mode's white acceleration (IMM: the plots may be
    from the boost) or the filter's own. Success also needs the fit's residual
    chi-square (3M - 6 degrees of freedom) inside the gate probability's
    quantile (the M plots are of one ballistic object, not a chance alignment of
    false alarms or two objects) and its position sigma within
    ``max_position_sigma`` (confirmation on the track's covariance, not on hits
    alone). On success every filter mode takes the fitted state.
    """
    n = PL.shape[1]
    tz = np.empty(n)
    z = np.empty((n, 3))
    R = np.empty((n, 3, 3))
    site = np.empty((n, 3))
    Re = np.empty((n, 3, 3))
    for i in range(n):
        tz[i] = PL[j, i, _PL_T]
        s = int(PL[j, i, _PL_S])
        for a in range(3):
            z[i, a] = PL[j, i, _PL_Z + a]
            site[i, a] = sites[s, a]
            for b in range(3):
                R[i, a, b] = PL[j, i, _PL_R + 3 * a + b]
                Re[i, a, b] = R_enus[s, a, b]
    q = fp[_P_QT] if ip[_I_KIND] == tk.IMM else fp[_P_Q]
    x = np.empty(6)
    P = np.empty((6, 6))
    code, chi2 = batch_fit(tz, z, R, site, Re, n, tg, q, x, P)
    if code <= 0 or not chi2 <= fp[_P_FITGATE]:
        return False
    if P[0, 0] + P[1, 1] + P[2, 2] > fp[_P_MAXVAR]:
        return False
    for m in range(X.shape[1]):
        X[j, m] = x
        PP[j, m] = P
    return True


# ------------------------------------------------------------------------------------------------
# Registration: the two-stage bias estimator's hooks (fusion.registration_kernels)
# ------------------------------------------------------------------------------------------------
# A trial holds one bias vector BB (nb,) with covariance PB (nb, nb) and each track slot its
# sensitivity VB[j] (6, nb); blk[s] is radar s's block in BB (-1: not fused). All are untouched
# under registration = "none" (ip[_I_REG] = 0).


@njit(cache=True)
def _reg_predict(X, PP, MU, VB, j, dt):
    """:math:`V_j \\leftarrow F V_j` from track ``j``'s combined state before its prediction by ``dt``."""
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    tk.combine(X[j], PP[j], MU[j], xc, Pc)
    rk.predict_sensitivity(xc, dt, VB[j])


@njit(cache=True)
def _reg_gate(X, PP, MU, VB, BB, PB, j, z, R, site, R_enu, block):
    """Plot and noise that make the pair statistics of track ``j`` gate the bias-corrected innovation."""
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    tk.combine(X[j], PP[j], MU[j], xc, Pc)
    za = np.empty(3)
    Ra = np.empty((3, 3))
    rk.gate_measurement(xc, VB[j], BB, PB, z, R, site, R_enu, block, za, Ra)
    return za, Ra


@njit(cache=True)
def _reg_update(X, PP, MU, VB, BB, PB, j, z, R, site, R_enu, block, update_bias, weight):
    """Two-stage update of the bias (if ``update_bias``) and of track ``j``'s sensitivity, from its prior."""
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    tk.combine(X[j], PP[j], MU[j], xc, Pc)
    rk.bias_update(xc, Pc, VB[j], BB, PB, z, R, site, R_enu, block, update_bias, weight)


@njit(cache=True)
def _reg_batch(PL, j, tg, sites, R_enus, blk, X, PP, VB):
    """Sensitivity of track ``j``'s batch start (:func:`fusion.registration_kernels.batch_sensitivity`)."""
    n = PL.shape[1]
    tz = np.empty(n)
    Rs = np.empty((n, 3, 3))
    site = np.empty((n, 3))
    Re = np.empty((n, 3, 3))
    blocks = np.empty(n, dtype=np.int64)
    for i in range(n):
        tz[i] = PL[j, i, _PL_T]
        s = int(PL[j, i, _PL_S])
        blocks[i] = blk[s]
        for a in range(3):
            site[i, a] = sites[s, a]
            for b in range(3):
                Rs[i, a, b] = PL[j, i, _PL_R + 3 * a + b]
                Re[i, a, b] = R_enus[s, a, b]
    rk.batch_sensitivity(X[j, 0], PP[j, 0], tz, tg, n, blocks, site, Re, Rs, VB[j])


@njit(cache=True)
def _reg_estimate(t, i, X, PP, MU, TF, TI, VB, BB, PB, ox, oP):
    """Correct the estimates written at grid time ``t[i]``: :math:`\\tilde x + V\\hat b`, :math:`\\tilde P + VP_bV^T`.

    ``V`` is carried to ``t`` on a copy, as the state by :func:`_estimate`; the estimate of the
    track in slot ``j`` is output row ``TI[j, _OID]`` (its id), not row ``j``.
    """
    N = X.shape[0]
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    for j in range(N):
        if TI[j, _ACTIVE] == 0:
            continue
        o = TI[j, _OID]
        if not math.isfinite(ox[o, i, 0]):
            continue
        V = VB[j].copy()
        dt = t - TF[j, _T]
        if dt != 0.0:
            tk.combine(X[j], PP[j], MU[j], xc, Pc)
            rk.predict_sensitivity(xc, dt, V)
        ox[o, i] += V @ BB
        P = oP[o, i] + V @ PB @ V.T
        tk.symmetrize(P)
        oP[o, i] = P


@njit(cache=True)
def _one_plot_tentative(TF, TI, tg):
    """Slot of the tentative track to give up for a new plot when every slot is taken, or -1.

    A track's score, the log-likelihood ratio of target against false alarm, is that of
    its plots less what each missed scan costs (Blackman & Popoli, *Design and Analysis
    of Modern Tracking Systems*, 1999, sec. 6.2). A tentative track that still has a
    single plot and has since missed at least one revisit of its sensor scores below a
    new plot, so the new plot takes its slot: of those, the one that has missed the most
    revisits. One that has not yet had its next look (a real object waiting for its
    second plot looks like this) is kept, and so are confirmed tracks and tentatives
    with two plots or more. Without the rule a flood of one-plot tentatives (false
    alarms of seven radars under trilateral sharing on the salvo: 7,327 plots turned
    away in a trial with 16 slots) kept real objects from starting tracks.
    """
    best, worst = -1, 0.0
    for j in range(TI.shape[0]):
        if TI[j, _ACTIVE] == 1 and TI[j, _CONFIRMED] == 0 and TI[j, _HITS] == 1:
            missed = (tg - TF[j, _T_LAST]) / TF[j, _R_LAST]  # revisits since its plot (>= 1: a look missed)
            if missed >= 1.0 and missed > worst:
                best, worst = j, missed
    return best


@njit(cache=True)
def _group_step(ip, fp, tg, sensor, sites, R_enus, rev, z_in, R_in, obj_in, did_in, snr_in, det_model, X, PP, MU,
                TF, TI, SENS, CNT, PL, claim, blk, VB, BB, PB):
    """Process one trial's detections of one (measurement time ``tg``, ``sensor``) group.

    1. reject detections with non-finite ``z`` or ``R``; 2. delete tracks that
    missed too long or outlived their M-of-N window, predict the rest to ``tg``,
    delete confirmed tracks whose position sigma exceeds the bound; 3. gate every
    (detection, track) pair (chi-square); 4. JPDA* of the confirmed-track
    clusters (with ``association = "jpda"``); 5. GNN of the other pairs,
    update, speed gate of tentative tracks, M-of-N confirmation; 5b. score the
    sensor's looks that held a confirmed track and missed it, and delete the
    tracks they disprove (:func:`_look_misses`); 6. initiate a
    tentative track from each unassigned detection in the lowest free slot; with
    every slot taken and ``when_full = "replace"``, in the slot of the one-plot
    tentative track that has missed the most revisits since its plot
    (:func:`_one_plot_tentative`).
    With ``initiation = "batch"``, at the hit that brings a tentative track to M
    hits in its window it is started afresh from its M plots
    (:func:`_batch_start`) and confirmed only if the fit succeeds. ``did_in``
    numbers the detections within the trial (a track remembers its first and
    last, :func:`_keep_identity`); ``snr_in`` their reported SNR and ``det_model``
    (S, 3) each sensor's :math:`S_{ref}\\rho_{ref}^4`, :math:`P_{fa}`, Swerling case,
    for each track's RCS and its JPDA detection probability (:func:`_track_pd`).
    The module notes of :mod:`fusion.tracker` give the rules and their sources.
    """
    kind = ip[_I_KIND]
    N = X.shape[0]
    site = sites[sensor]
    R_enu = R_enus[sensor]
    k0 = z_in.shape[0]
    keep = np.zeros(k0, dtype=np.bool_)
    k = 0
    for a in range(k0):
        fin = True
        for i in range(3):
            if not math.isfinite(z_in[a, i]):
                fin = False
            for m in range(3):
                if not math.isfinite(R_in[a, i, m]):
                    fin = False
        keep[a] = fin
        if fin:
            k += 1
        else:
            CNT[_C_REJ] += 1
    if k == 0:
        return
    z = z_in[keep]
    R = R_in[keep]
    obj = obj_in[keep]
    did = did_in[keep]
    snr = snr_in[keep]

    xc = np.empty(6)
    Pc = np.empty((6, 6))
    # 2. deletion, prediction, covariance bound
    for j in range(N):
        if TI[j, _ACTIVE] == 0:
            continue
        verdict = _dead(ip, fp, TF, TI, j, tg)
        if verdict == 1:
            CNT[_C_MISSED] += 1
            TI[j, _ACTIVE] = 0
            continue
        if verdict == 2:
            CNT[_C_UNCONF] += 1
            TI[j, _ACTIVE] = 0
            continue
        dt = tg - TF[j, _T]
        # a zero step is an exact identity for the EKF and IMM; the UKF's sigma points round
        if dt != 0.0 or kind == tk.UKF:
            if ip[_I_REG] == 1:
                _reg_predict(X, PP, MU, VB, j, dt)
            tk.predict_track(kind, X[j], PP[j], MU[j], dt, fp[_P_Q], fp[_P_QT], fp[_P_ACC], fp[_P_VFLOOR],
                             fp[_P_BOOST], fp[_P_BALL])
            TF[j, _T] = tg
        if TI[j, _CONFIRMED] == 1:
            tk.combine(X[j], PP[j], MU[j], xc, Pc)
            verdict = _out_of_bounds(fp, xc, Pc)
            if verdict != 0:
                CNT[_C_SIGMA if verdict == 1 else _C_GROUND] += 1
                TI[j, _ACTIVE] = 0

    # 3. gating
    gated = np.zeros((k, N), dtype=np.bool_)
    cost = np.full((k, N), np.inf)
    ld = np.zeros((k, N))
    for a in range(k):
        for j in range(N):
            if TI[j, _ACTIVE] == 0:
                continue
            if ip[_I_REG] == 1:
                za, Ra = _reg_gate(X, PP, MU, VB, BB, PB, j, z[a], R[a], site, R_enu, blk[sensor])
                ok, d2, c, l = tk.pair_stats(kind, X[j], PP[j], MU[j], za, Ra, site, R_enu)
            else:
                ok, d2, c, l = tk.pair_stats(kind, X[j], PP[j], MU[j], z[a], R[a], site, R_enu)
            cost[a, j] = c
            ld[a, j] = l
            gated[a, j] = ok and d2 <= fp[_P_GAMMA]
    assigned = np.zeros(k, dtype=np.bool_)
    in_jpda = np.zeros(N, dtype=np.bool_)

    # 4. JPDA* of clusters of confirmed tracks
    if ip[_I_JPDA] == 1:
        _jpda_step(ip, fp, tg, sensor, site, R_enu, rev, z, R, obj, did, claim, snr, det_model, gated, cost, ld,
                   X, PP, MU, TF, TI, SENS, CNT, assigned, in_jpda, blk, VB, BB, PB)

    # 5. GNN of the rest
    cand = np.zeros((k, N), dtype=np.bool_)
    for a in range(k):
        for j in range(N):
            cand[a, j] = gated[a, j] and not in_jpda[j] and not assigned[a]
    det_of = gnn_assign(cand, cost)
    for j in range(N):
        a = det_of[j]
        if a < 0:
            continue
        if ip[_I_REG] == 1:  # before the bias-free update: the two-stage update uses its prior
            _reg_update(X, PP, MU, VB, BB, PB, j, z[a], R[a], site, R_enu, blk[sensor], TI[j, _CONFIRMED] == 1,
                        1.0)
        tk.update_track(kind, X[j], PP[j], MU[j], z[a], R[a], site, R_enu, TI[j, _HITS] == 1)
        assigned[a] = True
        hits = _record_hit(TF, TI, SENS, CNT, j, obj[a], sensor, tg, rev, did[a], claim)
        _observe_rcs(TF, j, snr[a], z[a, 0], det_model[sensor, 0], np.bool_(False))
        if TI[j, _CONFIRMED] == 0:
            _store_plot(PL, j, hits, tg, z[a], R[a], sensor)
            tk.combine(X[j], PP[j], MU[j], xc, Pc)
            if math.sqrt(xc[3] * xc[3] + xc[4] * xc[4] + xc[5] * xc[5]) > fp[_P_MAXSPEED]:
                TI[j, _ACTIVE] = 0
                CNT[_C_SPEED] += 1
        if (TI[j, _ACTIVE] == 1 and TI[j, _CONFIRMED] == 0 and hits >= ip[_I_M]
                and (tg - TF[j, _T_INIT]) <= fp[_P_WINDOW] * TF[j, _R_INIT]):
            if ip[_I_BATCH] == 0 or ip[_I_M] < 2 or _batch_start(ip, fp, PL, j, tg, sites, R_enus, X, PP):
                if ip[_I_REG] == 1 and ip[_I_BATCH] == 1 and ip[_I_M] >= 2:
                    _reg_batch(PL, j, tg, sites, R_enus, blk, X, PP, VB)
                TI[j, _CONFIRMED] = 1
                CNT[_C_CONF] += 1
            else:
                CNT[_C_DEFER] += 1

    # 5b. looks that held a confirmed track and missed it (ghost and lost tracks end)
    _look_misses(fp, tg, sensor, site, R_enu, z, gated, det_model, X, PP, MU, TF, TI, SENS, CNT)

    # 6. initiation, lowest free slot first, in detection order; a new track's id is the lowest id
    # no live track holds (the slot and the id differ only after a replay renumbered, _keep_identity)
    free = np.empty(N, dtype=np.int64)
    n_free = 0
    held = np.zeros(N, dtype=np.bool_)
    for j in range(N):
        if TI[j, _ACTIVE] == 0:
            free[n_free] = j
            n_free += 1
        else:
            held[TI[j, _OID]] = True
    next_id = 0
    rank = 0
    x0 = np.empty(6)
    P0 = np.empty((6, 6))
    for a in range(k):
        if assigned[a]:
            continue
        if rank < n_free:
            j = free[rank]
            rank += 1
        else:
            j = _one_plot_tentative(TF, TI, tg) if ip[_I_REPLACE] == 1 else -1
            if j < 0:
                CNT[_C_NOSLOT] += 1
                continue
            held[TI[j, _OID]] = False  # its id is free again
            if TI[j, _OID] < next_id:
                next_id = TI[j, _OID]
            CNT[_C_REPLACED] += 1
        tk.initial_state(z[a], R[a], site, R_enu, fp[_P_INITSPEED], x0, P0)
        for m in range(X.shape[1]):
            X[j, m] = x0
            PP[j, m] = P0
        if ip[_I_REG] == 1:
            rk.initial_sensitivity(x0, site, R_enu, blk[sensor], VB[j])
        if kind == tk.IMM:
            MU[j, 0] = 0.5  # no prior knowledge of the phase (fusion.tracker.IMM_MU0)
            MU[j, 1] = 0.5
        else:
            MU[j, 0] = 1.0
        TI[j, _ACTIVE] = 1
        while held[next_id]:
            next_id += 1
        TI[j, _OID] = next_id
        held[next_id] = True
        conf0 = ip[_I_M] <= 1
        TI[j, _CONFIRMED] = 1 if conf0 else 0
        TF[j, _T] = tg
        TF[j, _T_INIT] = tg
        TF[j, _T_LAST] = tg
        TF[j, _R_INIT] = rev
        TF[j, _R_LAST] = rev
        TF[j, _MISS] = 0.0
        TI[j, _HITS] = 1
        TI[j, _OBJECT] = obj[a]
        _observe_rcs(TF, j, snr[a], z[a, 0], det_model[sensor, 0], np.bool_(True))
        TI[j, _FIRSTDET] = did[a]
        TI[j, _LASTDET] = did[a]
        claim[did[a]] = j
        SENS[j] = np.uint64(1) << np.uint64(sensor)
        _store_plot(PL, j, np.int64(1), tg, z[a], R[a], sensor)
        CNT[_C_INIT] += 1
        if conf0:
            CNT[_C_CONF] += 1


# ------------------------------------------------------------------------------------------------
# One trial: the time loop with out-of-sequence replay, and the output estimates
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _keep_identity(old_first, old_last, claim, d_time, TF, TI):
    """After a replay, give each track back the id it was shown under before, in place.

    A track's id (``TI[:, _OID]``, the track axis of the output) is not its storage
    slot: reprocessing from a snapshot re-runs association with the late data in, and
    a late plot can start a track anew or in another order, so the same track could
    come out under another id (measured: Korea's Hwasong-15 RV track changed id twice
    in two seconds under trilateral sharing, which made its firm track 2 s later than
    isolated; on the salvo, an id that followed the storage slot of a snapshot taken
    mid-replay moved a confirmed SRBM track to a new id, which restarted its firm-track
    hold and made it 17-37 s later than isolated). A track restored from the snapshot
    keeps its id; a track the replay started is the shown track ``o`` if it took, in
    the replay, the detection ``o`` had last taken (``claim``: the slot of the track
    that took each detection, kept only if that slot's track started no later than
    the detection), else if it started from the same detection as ``o``. Matched tracks
    take their old ids, the others keep their own id if no match took it, else the
    lowest free one. ``old_first[o]``, ``old_last[o]``: the first and last detection
    of the track shown under id ``o`` before the replay (-1: none). Only ids change,
    never a state or a slot.
    """
    N = TI.shape[0]
    want = np.full(N, -1, dtype=np.int64)  # new id of each slot's track
    taken = np.zeros(N, dtype=np.bool_)  # ids given
    for o in range(N):  # 1. the track that holds the shown track's last detection
        d = old_last[o]
        if d < 0:
            continue
        j = claim[d]
        if j >= 0 and TI[j, _ACTIVE] == 1 and want[j] < 0 and TF[j, _T_INIT] <= d_time[d]:
            want[j] = o
            taken[o] = True
    for o in range(N):  # 2. the track started from the shown track's first detection
        if old_first[o] < 0 or taken[o]:
            continue
        for j in range(N):
            if TI[j, _ACTIVE] == 1 and want[j] < 0 and TI[j, _FIRSTDET] == old_first[o]:
                want[j] = o
                taken[o] = True
                break
    for j in range(N):  # 3. the others keep their id where it is free
        if TI[j, _ACTIVE] == 1 and want[j] < 0 and not taken[TI[j, _OID]]:
            want[j] = TI[j, _OID]
            taken[want[j]] = True
    free = 0
    for j in range(N):  # 4. else the lowest free id
        if TI[j, _ACTIVE] == 1:
            if want[j] < 0:
                while taken[free]:
                    free += 1
                want[j] = free
                taken[free] = True
            TI[j, _OID] = want[j]


@njit(cache=True, inline="always")
def _estimate(ip, fp, t, i, X, PP, MU, TF, TI, SENS, ox, oP, oc, oo, os, oth, ocs):
    """Write the estimate of every live track at grid time ``t[i]`` (read-only on the state).

    A track is live if the deletion rules keep it on the clock ``t - L``
    (``L`` the longest latency of the feed, see :mod:`fusion.tracker`); it is
    predicted to ``t`` on a copy, and hidden when confirmed and out of bounds
    (:func:`_out_of_bounds`). ``ocs`` marks a confirmed track that has missed
    more than D scans on that clock: it is coasting (predicted only).
    ``oth`` gets the IMM's predicted thrust-mode
    probability at ``t`` (left NaN for the single-mode filters).
    """
    N, r = X.shape[0], X.shape[1]
    tc = t - fp[_P_LAG]
    xc = np.empty(6)
    Pc = np.empty((6, 6))
    for j in range(N):
        if TI[j, _ACTIVE] == 0 or _dead(ip, fp, TF, TI, j, tc) != 0:
            continue
        dt = t - TF[j, _T]
        if dt != 0.0:
            xm = X[j].copy()
            Pm = PP[j].copy()
            mu = MU[j].copy()
            tk.predict_track(ip[_I_KIND], xm, Pm, mu, dt, fp[_P_Q], fp[_P_QT], fp[_P_ACC], fp[_P_VFLOOR],
                             fp[_P_BOOST], fp[_P_BALL])
            tk.combine(xm, Pm, mu, xc, Pc)
            thrust = mu[0]
        else:
            tk.combine(X[j], PP[j], MU[j], xc, Pc)
            thrust = MU[j, 0]
        conf = TI[j, _CONFIRMED] == 1
        if conf and _out_of_bounds(fp, xc, Pc) != 0:
            continue
        o = TI[j, _OID]  # the track's id: its row of the output
        ox[o, i] = xc
        ocs[o, i] = conf and _missed(fp, TF, j, tc)
        oP[o, i] = Pc
        oc[o, i] = conf
        oo[o, i] = TI[j, _OBJECT]
        os[o, i] = SENS[j]
        if r == 2:
            oth[o, i] = thrust


@njit(cache=True)
def _reg_pool(cap, N, nb):
    """Snapshot pool of the registration state: VB (cap, N, 6, nb), BB (cap, nb), PB (cap, nb, nb)."""
    return np.empty((cap, N, 6, nb)), np.empty((cap, nb)), np.empty((cap, nb, nb))


@njit(cache=True)
def _snapshot_pool(cap, N, r, M):
    """Empty snapshot pool of ``cap`` saved states of a trial: X, PP, MU, TF, TI, SENS, CNT, PL (module notes)."""
    return (np.empty((cap, N, r, 6)), np.empty((cap, N, r, 6, 6)), np.empty((cap, N, r)), np.empty((cap, N, _NTF)),
            np.empty((cap, N, _NTI), dtype=np.int64), np.empty((cap, N), dtype=np.uint64),
            np.empty((cap, _NC), dtype=np.int64), np.empty((cap, N, M, _PL_W)))


def output_arrays(B, N, T):
    """Empty per-trial outputs of the loop: x (B, N, T, 6), P (.., 6, 6), confirmed, object, sensors, thrust
    probability, coasting (B, N, T) (NaN, False or -1 where no track)."""
    return (np.full((B, N, T, 6), np.nan), np.full((B, N, T, 6, 6), np.nan), np.zeros((B, N, T), dtype=bool),
            np.full((B, N, T), -1, dtype=np.int64), np.zeros((B, N, T), dtype=np.uint64),
            np.full((B, N, T), np.nan), np.zeros((B, N, T), dtype=bool))


@njit(cache=True, inline="always")
def _run_trial(ip, fp, N, r, t, d_time, d_sensor, d_z, d_R, d_obj, d_snr, d_epoch, site_ecef, R_enu, revisit, det_model,
               ox, oP, oc, oo, os, oth, ocs, cnt, run_stats, blk, b_var, ob, oPb):
    """Run one trial: its detections (sorted by measurement time, sensor, record order) through the time loop.

    ``d_epoch[d]`` is the first grid index at or after the detection's arrival.
    Fills the trial's output slices ``ox`` (N, T, 6) ... ``os`` (N, T), its
    counters ``cnt`` (11,) and ``run_stats`` (3,) = group steps, replays, late detections.
    Registration (``ip[_I_REG]``): ``blk`` (S,) each radar's bias block, ``b_var`` (nb,) the
    prior variances of the biases; the final estimate into ``ob`` (nb,) and ``oPb`` (nb, nb).
    """
    T = t.size
    n = d_time.size
    # groups of (measurement time, sensor)
    gid = np.empty(n, dtype=np.int64)
    G = 0
    for d in range(n):
        if d == 0 or d_time[d] != d_time[d - 1] or d_sensor[d] != d_sensor[d - 1]:
            G += 1
        gid[d] = G - 1
    g_start = np.empty(G + 1, dtype=np.int64)
    for d in range(n - 1, -1, -1):
        g_start[gid[d]] = d
    g_start[G] = n
    ep_order = np.argsort(d_epoch, kind="mergesort")
    # restore points: group -> last epoch that restores to it (known from the arrival times)
    restore_at = np.full(G, -1, dtype=np.int64)
    last = -1
    p = 0
    while p < n:
        e = d_epoch[ep_order[p]]
        gmin, gmax = G, -1
        while p < n and d_epoch[ep_order[p]] == e:
            gmin = min(gmin, gid[ep_order[p]])
            gmax = max(gmax, gid[ep_order[p]])
            p += 1
        if gmin <= last:
            restore_at[gmin] = e
        last = max(last, gmax)

    # the state
    X = np.zeros((N, r, 6))
    PP = np.zeros((N, r, 6, 6))
    MU = np.zeros((N, r))
    TF = np.zeros((N, _NTF))
    TI = np.zeros((N, _NTI), dtype=np.int64)
    TI[:, _OBJECT] = -1
    SENS = np.zeros(N, dtype=np.uint64)
    CNT = np.zeros(_NC, dtype=np.int64)
    PL = np.zeros((N, max(ip[_I_M], 1), _PL_W))
    nb = b_var.size
    VB = np.zeros((N, 6, nb))
    BB = np.zeros(nb)
    PB = np.zeros((nb, nb))
    for c in range(nb):
        PB[c, c] = b_var[c]
    # snapshot pool (grows on demand, slots recycled)
    cap = 4
    sX, sPP, sMU, sTF, sTI, sSENS, sCNT, sPL = _snapshot_pool(np.int64(cap), N, r, PL.shape[1])
    sVB, sBB, sPB = _reg_pool(np.int64(cap), N, nb)
    slot_of = np.full(G, -1, dtype=np.int64)
    free_slots = np.arange(cap - 1, -1, -1)
    n_free = cap
    live = np.empty(G, dtype=np.int64)  # restore points holding a slot
    n_live = 0

    arrived = np.zeros(n, dtype=np.bool_)
    claim = np.full(n, -1, dtype=np.int64)
    old_first = np.full(N, -1, dtype=np.int64)
    old_last = np.full(N, -1, dtype=np.int64)
    n_arrived = np.zeros(G, dtype=np.int64)
    processed = -1
    p = 0
    groups = 0
    replays = 0
    late = 0
    for i in range(T):
        p0 = p
        gmin, gmax = G, -1
        while p < n and d_epoch[ep_order[p]] == i:
            d = ep_order[p]
            arrived[d] = True
            n_arrived[gid[d]] += 1
            gmin = min(gmin, gid[d])
            gmax = max(gmax, gid[d])
            p += 1
        if p > p0:
            replay = gmin <= processed
            if replay:
                old_first[:] = -1  # the tracks as shown so far (by id), by their first and last detections
                old_last[:] = -1
                for j in range(N):
                    if TI[j, _ACTIVE] == 1:
                        old_first[TI[j, _OID]] = TI[j, _FIRSTDET]
                        old_last[TI[j, _OID]] = TI[j, _LASTDET]
                for d in range(g_start[gmin], n):  # the replay claims these detections afresh
                    claim[d] = -1
                replays += 1
                for q in range(p0, p):
                    if gid[ep_order[q]] <= processed:
                        late += 1
                s = slot_of[gmin]
                X[:] = sX[s]
                PP[:] = sPP[s]
                MU[:] = sMU[s]
                TF[:] = sTF[s]
                TI[:] = sTI[s]
                SENS[:] = sSENS[s]
                CNT[:] = sCNT[s]
                PL[:] = sPL[s]
                VB[:] = sVB[s]
                BB[:] = sBB[s]
                PB[:] = sPB[s]
                start = gmin
            else:
                start = processed + 1
            stop = max(processed, gmax)
            prev = start - 1
            for g in range(start, stop + 1):
                if n_arrived[g] == 0:
                    continue
                for pt in range(prev + 1, g + 1):  # save the state before g for the restore points in (prev, g]
                    if restore_at[pt] < 0:
                        continue
                    if slot_of[pt] < 0:
                        if n_free == 0:  # grow the pool
                            new = 2 * cap
                            nX, nPP, nMU, nTF, nTI, nS, nC, nPL = _snapshot_pool(new, N, r, PL.shape[1])
                            nX[:cap] = sX
                            nPP[:cap] = sPP
                            nMU[:cap] = sMU
                            nTF[:cap] = sTF
                            nTI[:cap] = sTI
                            nS[:cap] = sSENS
                            nC[:cap] = sCNT
                            nPL[:cap] = sPL
                            sX, sPP, sMU, sTF, sTI, sSENS, sCNT, sPL = nX, nPP, nMU, nTF, nTI, nS, nC, nPL
                            nVB, nBB, nPB = _reg_pool(new, N, nb)
                            nVB[:cap] = sVB
                            nBB[:cap] = sBB
                            nPB[:cap] = sPB
                            sVB, sBB, sPB = nVB, nBB, nPB
                            free_slots = np.empty(new, dtype=np.int64)
                            for f in range(new - cap):
                                free_slots[f] = new - 1 - f
                            n_free = new - cap
                            cap = new
                        n_free -= 1
                        slot_of[pt] = free_slots[n_free]
                        live[n_live] = pt
                        n_live += 1
                    s = slot_of[pt]
                    sX[s] = X
                    sPP[s] = PP
                    sMU[s] = MU
                    sTF[s] = TF
                    sTI[s] = TI
                    sSENS[s] = SENS
                    sCNT[s] = CNT
                    sPL[s] = PL
                    sVB[s] = VB
                    sBB[s] = BB
                    sPB[s] = PB
                a0, a1 = g_start[g], g_start[g + 1]
                sel = np.nonzero(arrived[a0:a1])[0] + a0
                sensor = d_sensor[a0]
                _group_step(ip, fp, d_time[a0], sensor, site_ecef, R_enu, revisit[sensor],
                            d_z[sel], d_R[sel], d_obj[sel], sel, d_snr[sel], det_model, X, PP, MU, TF, TI, SENS,
                            CNT, PL, claim, blk, VB, BB, PB)
                groups += 1
                prev = g
            processed = stop
            if replay:
                _keep_identity(old_first, old_last, claim, d_time, TF, TI)
            m = 0
            for q in range(n_live):  # recycle the snapshots past their last use
                pt = live[q]
                if restore_at[pt] <= i:
                    free_slots[n_free] = slot_of[pt]
                    n_free += 1
                    slot_of[pt] = -1
                else:
                    live[m] = pt
                    m += 1
            n_live = m
        _estimate(ip, fp, t[i], i, X, PP, MU, TF, TI, SENS, ox, oP, oc, oo, os, oth, ocs)
        if ip[_I_REG] == 1:
            _reg_estimate(t[i], i, X, PP, MU, TF, TI, VB, BB, PB, ox, oP)
    cnt[:] = CNT
    ob[:] = BB
    oPb[:] = PB
    run_stats[0] = groups
    run_stats[1] = replays
    run_stats[2] = late


@njit(cache=True, nogil=True)
def _run_trials(trials, ip, fp, N, r, t, off, d_time, d_sensor, d_z, d_R, d_obj, d_snr, d_epoch, site_ecef, R_enu,
                revisit, det_model, ox, oP, oc, oo, os, oth, ocs, cnt, run_stats, blk, b_var, ob, oPb):
    """Trials ``trials`` of a chunk, one after the other: trial ``b`` owns detections ``off[b]:off[b+1]``
    and row ``b`` of every output. Releases the GIL, so threads run disjoint trial sets in parallel."""
    for b in trials:
        lo, hi = off[b], off[b + 1]
        _run_trial(ip, fp, N, r, t, d_time[lo:hi], d_sensor[lo:hi], d_z[lo:hi], d_R[lo:hi], d_obj[lo:hi],
                   d_snr[lo:hi], d_epoch[lo:hi], site_ecef, R_enu, revisit, det_model, ox[b], oP[b], oc[b], oo[b],
                   os[b], oth[b],
                   ocs[b], cnt[b], run_stats[b], blk, b_var, ob[b], oPb[b])


# ------------------------------------------------------------------------------------------------
# Python entry point
# ------------------------------------------------------------------------------------------------


def _parameters(config):
    """Integer and float parameter vectors of the compiled loop from a :class:`sim.config.TrackerConfig`."""
    from fusion import tracker as ref
    from scipy.stats import chi2

    from fusion.association import JPDA_MAX_CLUSTER, gate_threshold

    kind = {"ekf": tk.EKF, "ukf": tk.UKF, "imm": tk.IMM}[config.filter]
    gamma = gate_threshold(config.gate_probability, 3)
    eps = ref._EPS_T
    pd = ref.JPDA_DETECTION_PROBABILITY
    pg = float(config.gate_probability)
    fp = np.zeros(_NP)
    fp[_P_Q] = float(config.process_noise) ** 2
    fp[_P_QT] = ref.IMM_THRUST_NOISE**2
    fp[_P_ACC] = ref.IMM_THRUST_ACCEL
    fp[_P_VFLOOR] = ref.IMM_THRUST_MIN_DIRECTION_SPEED
    fp[_P_BOOST] = ref.IMM_BOOST_DWELL
    fp[_P_BALL] = ref.IMM_BALLISTIC_DWELL
    fp[_P_GAMMA] = gamma
    fp[_P_WINDOW] = (int(config.confirm_n) - 1) * (1.0 + eps)
    fp[_P_D] = int(config.delete_after_missed) * (1.0 + eps)
    fp[_P_MAXVAR] = float(config.max_position_sigma) ** 2
    fp[_P_MAXSPEED] = ref.SPEED_GATE_FACTOR * float(config.init_max_speed)
    fp[_P_INITSPEED] = float(config.init_max_speed)
    fp[_P_LOGPD] = math.log(pd / (1.0 - pd * pg))
    fp[_P_PG] = pg
    fp[_P_COSTOFF] = 0.0 if kind == tk.IMM else 3.0 * math.log(2.0 * math.pi)
    fp[_P_LOGVOL0] = math.log(ref._GATE_VOLUME_C3) + 1.5 * math.log(gamma)
    dof = 3 * int(config.confirm_m) - 6  # residual degrees of freedom of the batch start (fusion.initiation)
    fp[_P_FITGATE] = float(chi2.ppf(pg, dof)) if dof > 0 else math.inf
    alpha = float(config.miss_deletion_probability)
    fp[_P_LOOKLLR] = -math.log(alpha) if alpha > 0.0 else math.inf
    fp[_P_PD0] = pd
    deletion = _DEL_MISSED if config.deletion == "missed" else _DEL_QUALITY
    ip = np.array([kind, int(config.confirm_m), 1 if config.association == "jpda" else 0, JPDA_MAX_CLUSTER,
                   deletion, 1 if config.initiation == "batch" else 0, 0, 1 if config.when_full == "replace" else 0,
                   0], dtype=np.int64)
    return ip, fp


def _announce_compile():
    """Say so on stderr when the loop is about to be compiled (no cached machine code for it yet).

    Numba's on-disk cache (``cache=True``) holds the compiled loop after the first
    run; a fresh install compiles it once (about 3 min of CPU time, measured; README).
    """
    global _ANNOUNCED
    if _ANNOUNCED or _run_trials.signatures:
        return
    _ANNOUNCED = True
    try:  # numba's cache locator (private): the index file exists once the loop has been cached
        cache = _run_trials._cache
        cached = os.path.exists(os.path.join(cache._cache_path, cache._cache_file._index_name))
    except AttributeError:
        cached = False
    if not cached:
        print("gsomia-sim: compiling the tracker loop (first run after an install or an edit of the "
              "kernels: a few minutes; cached afterwards)...", file=sys.stderr, flush=True)


_ANNOUNCED = False


def run_tracker_compiled(dets, arrival, site_ecef, R_enu, t, trial_index, config, revisit=None, latency=None,
                         threads=None, detection_model=None, beamwidth=None, bias_sigma=None):
    """Run the tracker of one nation over a batch of trials with the compiled per-trial loop.

    Same parameters, validation (:class:`sim.errors.InputError` naming the key),
    and result as :func:`fusion.tracker.run_tracker`; ``stats`` holds the same
    per-trial counters and, as scalars, the sums over trials of each trial's
    group steps (``groups``), OOSM restores (``replays``) and late detections
    (``late_detections``), and the per-trial values under ``trial_groups``,
    ``trial_replays``, ``trial_late_detections``.

    ``threads`` (default ``numba.get_num_threads()``, i.e. ``NUMBA_NUM_THREADS``)
    threads run disjoint sets of trials; every trial's result is the same
    whatever the threads and the chunk (each trial is computed alone).

    ``detection_model`` (S, 3), optional: each sensor's :math:`S_{ref}\\rho_{ref}^4`
    (linear SNR times m^4 per m^2 of RCS), false-alarm probability and Swerling case;
    with it (and the detections' ``snr``) each track carries an RCS estimate, and
    under ``jpda_pd = "radar"`` JPDA* weighs it with the radar's own P_D at its
    predicted range (:func:`_track_pd`) instead of the fixed
    :data:`fusion.tracker.JPDA_DETECTION_PROBABILITY`.

    ``beamwidth`` (S,), optional: each sensor's 3 dB beamwidth, rad; with it a
    confirmed track that the sensors' dwells hold and never see is deleted
    (:func:`_look_misses`, ``tracker.miss_deletion_probability``); without it
    (or 0 for a sensor) no dwell counts as a look.
    ``bias_sigma`` (S, 6), optional: the registration prior (:func:`fusion.tracker.run_tracker`);
    the radars with a nonzero row get a bias block (:func:`registration_blocks`).
    """
    from fusion.tracker import TrackHistory, prepare_inputs

    inp = prepare_inputs(dets, arrival, site_ecef, R_enu, t, trial_index, config, revisit, latency)
    t = inp["t"]
    B, N, T = inp["trial_index"].size, int(config.max_tracks), t.size
    ip, fp = _parameters(config)
    S = inp["site_ecef"].shape[0]
    det_model = np.zeros((S, 3))
    det_model[:, 1] = 0.5
    if detection_model is not None:
        dm = np.asarray(detection_model, dtype=np.float64)
        if dm.shape != (S, 3) or not (np.all(dm[:, 0] > 0) and np.all((dm[:, 1] > 0) & (dm[:, 1] < 1))
                                      and np.all(np.isin(dm[:, 2], (0, 1, 2, 3, 4)))):
            raise InputError.single("detection_model", dm.shape, "(sensors, 3): S_ref rho_ref^4 > 0, "
                                    "0 < Pfa < 1, Swerling case 0..4 per sensor")
        det_model = np.ascontiguousarray(dm)
        ip[_I_PDMODEL] = 1 if config.jpda_pd == "radar" else 0
    # column 3: the beamwidth, rad (0: unknown, no look is scored; _look_misses)
    det_model = np.ascontiguousarray(np.column_stack([det_model, np.zeros(S)]))
    if beamwidth is not None:
        bw = np.asarray(beamwidth, dtype=np.float64)
        if bw.shape != (S,) or not np.all(np.isfinite(bw) & (bw >= 0)):
            raise InputError.single("beamwidth", bw.shape, "(sensors,) 3 dB beamwidths, rad, finite and >= 0")
        det_model[:, 3] = bw
    snr = np.asarray(getattr(dets, "snr", None) if getattr(dets, "snr", None) is not None
                     else np.full(len(inp["time"]), np.nan), dtype=np.float64)
    fp[_P_LAG] = float(inp["latency"].max()) if inp["latency"].size else 0.0
    r = 2 if ip[_I_KIND] == tk.IMM else 1
    blk, b_var = registration_blocks(bias_sigma, S, config.registration)
    ip[_I_REG] = 1 if b_var.size else 0
    nb = b_var.size

    use = np.isfinite(inp["arrival"]) & (inp["arrival"] <= t[-1])
    idx = np.nonzero(use)[0]
    row, time, sensor = inp["row"][idx], inp["time"][idx], inp["sensor"][idx]
    order = np.lexsort((idx, sensor, time, row))  # trial, then measurement time, sensor, record order
    idx = idx[order]
    off = np.searchsorted(inp["row"][idx], np.arange(B + 1), side="left").astype(np.int64)
    epoch = np.searchsorted(t, inp["arrival"][idx], side="left").astype(np.int64)

    out_x, out_P, out_conf, out_obj, out_sens, out_thr, out_coast = output_arrays(B, N, T)
    cnt = np.zeros((B, len(COUNTERS)), dtype=np.int64)
    run_stats = np.zeros((B, 3), dtype=np.int64)
    ob = np.zeros((B, nb))
    oPb = np.zeros((B, nb, nb))
    args = (ip, fp, N, r, t, off, np.ascontiguousarray(inp["time"][idx]),
            np.ascontiguousarray(inp["sensor"][idx]), np.ascontiguousarray(inp["z"][idx]),
            np.ascontiguousarray(inp["R"][idx]), np.ascontiguousarray(inp["object"][idx].astype(np.int64)),
            np.ascontiguousarray(snr[idx]), epoch, np.ascontiguousarray(inp["site_ecef"]),
            np.ascontiguousarray(inp["R_enu"]), np.ascontiguousarray(inp["revisit"], dtype=np.float64), det_model,
            out_x, out_P, out_conf, out_obj, out_sens, out_thr, out_coast, cnt, run_stats, blk, b_var, ob, oPb)
    _announce_compile()
    n_threads = max(1, min(int(threads if threads is not None else numba.get_num_threads()), B))
    if n_threads == 1:
        _run_trials(np.arange(B, dtype=np.int64), *args)
    else:
        # Trials dealt round-robin to threads (each trial costs about the same); the kernel releases the GIL.
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            jobs = [pool.submit(_run_trials, np.arange(k, B, n_threads, dtype=np.int64), *args)
                    for k in range(n_threads)]
            for job in jobs:
                job.result()
    stats = {"groups": int(run_stats[:, 0].sum()), "replays": int(run_stats[:, 1].sum()),
             "late_detections": int(run_stats[:, 2].sum()), "trial_groups": run_stats[:, 0].copy(),
             "trial_replays": run_stats[:, 1].copy(), "trial_late_detections": run_stats[:, 2].copy()}
    for c, name in enumerate(COUNTERS):
        stats[name] = cnt[:, c].copy()
    bias = bias_sd = None
    if nb:
        bias = np.full((B, S, rk.NB), np.nan)
        bias_sd = np.full((B, S, rk.NB), np.nan)
        sd = np.sqrt(np.maximum(np.diagonal(oPb, axis1=1, axis2=2), 0.0))
        for s in range(S):
            if blk[s] >= 0:
                bias[:, s] = ob[:, rk.NB * blk[s]:rk.NB * (blk[s] + 1)]
                bias_sd[:, s] = sd[:, rk.NB * blk[s]:rk.NB * (blk[s] + 1)]
    return TrackHistory(t=t, x=out_x, P=out_P, confirmed=out_conf, object=out_obj.astype(np.int32),
                        sensors=out_sens, stats=stats, thrust_prob=out_thr, coasting=out_coast, bias=bias,
                        bias_sigma=bias_sd)


def registration_blocks(bias_sigma, n_sensors, registration):
    """Bias blocks of the compiled loop's registration state.

    Parameters
    ----------
    bias_sigma : array_like, shape (S, 6), or None
        Prior one-sigma bias per sensor: range m, azimuth rad, elevation rad, site
        east, north, up m (:mod:`fusion.registration_kernels`).
    n_sensors : int
        S.
    registration : str
        ``tracker.registration``: ``"estimate"`` or ``"none"``.

    Returns
    -------
    blk : ndarray of int64, shape (S,)
        Block of each sensor in the bias vector, -1 for a sensor with a zero prior
        (its bias is known to be zero: nothing to estimate).
    b_var : ndarray, shape (6 n_blocks,)
        Prior variances of the bias vector; empty (registration off) under ``"none"``,
        without ``bias_sigma`` or when every sigma is zero.

    Raises
    ------
    InputError
        ``bias_sigma`` not (S, 6), not finite or negative; ``registration`` unknown.
    """
    blk = np.full(n_sensors, -1, dtype=np.int64)
    if registration not in ("estimate", "none"):
        raise InputError.single("tracker.registration", registration, "estimate or none")
    if bias_sigma is None or registration == "none":
        return blk, np.zeros(0)
    sig = np.asarray(bias_sigma, dtype=np.float64)
    if sig.shape != (n_sensors, rk.NB) or not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise InputError.single("bias_sigma", sig.shape, f"({n_sensors}, {rk.NB}) finite sigmas >= 0")
    on = np.nonzero(np.any(sig > 0, axis=1))[0]
    blk[on] = np.arange(on.size)
    return blk, np.ascontiguousarray((sig[on] ** 2).ravel())
