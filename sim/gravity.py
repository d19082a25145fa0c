"""Gravity (point mass + J2) and rotating-frame accelerations in ECEF.

The equations of motion are written in the rotating ECEF frame:

.. math::

    \\ddot{\\mathbf r} = \\mathbf g(\\mathbf r) - 2\\,\\boldsymbol\\omega\\times\\dot{\\mathbf r}
                        - \\boldsymbol\\omega\\times(\\boldsymbol\\omega\\times\\mathbf r)
                        + \\mathbf a_{\\text{thrust}} + \\mathbf a_{\\text{drag}}

with :math:`\\mathbf g` the gravitational acceleration of the point mass plus the
J2 zonal harmonic.

References
----------
Vallado, *Fundamentals of Astrodynamics and Applications*, 4th ed., 2013,
eq. 8-30 (J2 acceleration); Zipfel, *Modeling and Simulation of Aerospace
Vehicle Dynamics*, 2nd ed., 2007, sec. 10.2 (Coriolis and centrifugal terms).
"""

from __future__ import annotations

import numpy as np

from sim.earth import EARTH_ROTATION_RATE, GM, J2, SEMI_MAJOR_AXIS

_K_J2 = 1.5 * J2 * GM * SEMI_MAJOR_AXIS**2  # m^5/s^2
_C = np.array([1.0, 1.0, 3.0])


def gravity_j2(r_ecef):
    """Gravitational acceleration of point mass plus J2, in ECEF axes.

    Parameters
    ----------
    r_ecef : array_like, shape (..., 3)
        Position in metres (ECEF).

    Returns
    -------
    ndarray, shape (..., 3)
        Acceleration in m/s^2.

    Notes
    -----
    .. math::

        a_i = -\\frac{\\mu x_i}{r^3}
              - \\frac{3}{2}J_2\\mu R_e^2\\,\\frac{x_i}{r^5}\\Big(c_i - 5\\frac{z^2}{r^2}\\Big),
        \\quad c = (1, 1, 3)

    (Vallado 2013, eq. 8-30).
    """
    r = np.asarray(r_ecef, dtype=np.float64)
    r2 = np.einsum("...i,...i->...", r, r)
    rn = np.sqrt(r2)
    inv_r3 = 1.0 / (r2 * rn)
    z2_r2 = r[..., 2] ** 2 / r2
    j2 = (_K_J2 / (r2 * r2 * rn))[..., None] * (_C - 5.0 * z2_r2[..., None])
    return -(GM * inv_r3)[..., None] * r - j2 * r


def gravity_j2_gradient(r_ecef):
    """Gradient d g / d r of :func:`gravity_j2`, shape ``(..., 3, 3)``, in 1/s^2.

    Parameters
    ----------
    r_ecef : array_like, shape (..., 3)
        Position in metres (ECEF).

    Returns
    -------
    ndarray, shape (..., 3, 3)
        ``G[..., i, j] = d a_i / d x_j`` (symmetric).

    Notes
    -----
    Point mass: :math:`-\\mu/r^3\\,(I - 3\\hat r\\hat r^T)`. J2 term, with
    :math:`f_i = c_i x_i r^{-5} - 5 x_i z^2 r^{-7}` and :math:`a^{J2} = -k f`:

    .. math::

        \\frac{\\partial f_i}{\\partial x_j} = c_i\\delta_{ij}r^{-5} - 5c_i x_i x_j r^{-7}
            - 5\\big(\\delta_{ij} z^2 r^{-7} + 2 x_i z\\,\\delta_{j3} r^{-7}
            - 7 x_i x_j z^2 r^{-9}\\big)

    Differentiated from Vallado 2013 eq. 8-30.
    """
    r = np.asarray(r_ecef, dtype=np.float64)
    r2 = np.einsum("...i,...i->...", r, r)
    rn = np.sqrt(r2)
    eye = np.eye(3)
    outer = r[..., :, None] * r[..., None, :]
    r5 = (r2 * r2 * rn)[..., None, None]
    r7 = r5 * r2[..., None, None]
    r9 = r7 * r2[..., None, None]
    z = r[..., 2][..., None, None]
    point = -(GM / (r2 * rn))[..., None, None] * (eye - 3.0 * outer / r2[..., None, None])
    ci = _C[:, None]
    dz = np.zeros(r.shape[:-1] + (3, 3))
    dz[..., :, 2] = r  # x_i * delta_j3
    df = (
        ci * eye / r5
        - 5.0 * ci * outer / r7
        - 5.0 * (eye * z**2 / r7 + 2.0 * z * dz / r7 - 7.0 * outer * z**2 / r9)
    )
    return point - _K_J2 * df


def frame_acceleration(r_ecef, v_ecef):
    """Coriolis plus centrifugal acceleration in the rotating ECEF frame.

    Parameters
    ----------
    r_ecef, v_ecef : array_like, shape (..., 3)
        Position (m) and velocity relative to the Earth (m/s), ECEF.

    Returns
    -------
    ndarray, shape (..., 3)
        :math:`-2\\omega\\times v - \\omega\\times(\\omega\\times r)` in m/s^2,
        with :math:`\\omega = (0, 0, \\Omega_E)`.
    """
    r = np.asarray(r_ecef, dtype=np.float64)
    v = np.asarray(v_ecef, dtype=np.float64)
    w = EARTH_ROTATION_RATE
    out = np.empty(np.broadcast_shapes(r.shape, v.shape))
    out[..., 0] = 2.0 * w * v[..., 1] + w * w * r[..., 0]
    out[..., 1] = -2.0 * w * v[..., 0] + w * w * r[..., 1]
    out[..., 2] = 0.0
    return out


def ballistic_acceleration(r_ecef, v_ecef):
    """Drag-free ballistic acceleration in ECEF: J2 gravity plus frame terms, ``(..., 3)`` m/s^2."""
    return gravity_j2(r_ecef) + frame_acceleration(r_ecef, v_ecef)
