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
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    out = np.empty(r.shape)
    ax, ay, az = gravity_j2_components(x, y, z)
    out[..., 0] = ax
    out[..., 1] = ay
    out[..., 2] = az
    return out


def gravity_j2_components(x, y, z):
    """:func:`gravity_j2` on separate coordinate arrays (structure of arrays).

    Parameters
    ----------
    x, y, z : ndarray, shape (...)
        ECEF position components in metres.

    Returns
    -------
    ax, ay, az : ndarray, shape (...)
        Acceleration components in m/s^2 (Vallado 2013, eq. 8-30), written as
        :math:`a_i = -x_i\\,[\\mu/r^3 + k r^{-5}(c_i - 5z^2/r^2)]`,
        :math:`k = \\tfrac32 J_2\\mu R_e^2`, so each component is one product
        on contiguous arrays when the batch is stored component-wise.
    """
    r2 = x * x
    r2 += y * y
    r2 += z * z
    inv_r2 = 1.0 / r2
    inv_r3 = np.sqrt(inv_r2)
    inv_r3 *= inv_r2
    s = z * z
    s *= inv_r2
    s *= 5.0  # 5 z^2 / r^2
    t = inv_r3 * inv_r2
    t *= _K_J2  # k / r^5
    point = GM * inv_r3
    cz = 3.0 - s
    cz *= t
    cz += point
    cxy = 1.0 - s
    cxy *= t
    cxy += point
    return -cxy * x, -cxy * y, -cz * z


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
    G = np.empty(r.shape + (3,))
    gxx, gxy, gxz, gyy, gyz, gzz = gravity_j2_gradient_components(r[..., 0], r[..., 1], r[..., 2])
    G[..., 0, 0] = gxx
    G[..., 0, 1] = G[..., 1, 0] = gxy
    G[..., 0, 2] = G[..., 2, 0] = gxz
    G[..., 1, 1] = gyy
    G[..., 1, 2] = G[..., 2, 1] = gyz
    G[..., 2, 2] = gzz
    return G


def gravity_j2_gradient_components(x, y, z):
    """The six distinct entries of :func:`gravity_j2_gradient` from coordinate arrays.

    Parameters
    ----------
    x, y, z : ndarray, shape (...)
        ECEF position components in metres.

    Returns
    -------
    gxx, gxy, gxz, gyy, gyz, gzz : ndarray, shape (...)
        :math:`G_{ij} = \\partial a_i/\\partial x_j` in 1/s^2 (symmetric), the same
        formula as :func:`gravity_j2_gradient` regrouped per entry:

        .. math::

            G_{ij} = -\\frac{\\mu}{r^3}\\Big(\\delta_{ij} - 3\\frac{x_i x_j}{r^2}\\Big)
              - k\\Big[\\delta_{ij}\\frac{c_i - 5 z^2/r^2}{r^5}
                 - \\frac{5 x_i x_j}{r^7}\\big(c_i - 7 z^2/r^2\\big)
                 - 10\\,\\frac{x_i z\\,\\delta_{j3}}{r^7}\\Big]

        with :math:`c = (1, 1, 3)` and :math:`k = \\tfrac32 J_2\\mu R_e^2`
        (differentiated from Vallado 2013 eq. 8-30).
    """
    r2 = x * x
    r2 += y * y
    r2 += z * z
    inv_r2 = 1.0 / r2
    inv_r3 = np.sqrt(inv_r2)
    inv_r3 *= inv_r2
    mu3 = GM * inv_r3  # mu / r^3
    k5 = inv_r3 * inv_r2
    k5 *= _K_J2  # k / r^5
    k7 = k5 * inv_r2  # k / r^7
    zeta = z * z
    zeta *= inv_r2  # z^2 / r^2
    # outer-product coefficient for x_i x_j (i, j in x, y): 3 mu/r^5 + 5 k/r^7 (1 - 7 z^2/r^2)
    cxy = 1.0 - 7.0 * zeta
    cxy *= 5.0 * k7
    cxy += 3.0 * mu3 * inv_r2
    # diagonal for x, y: -mu/r^3 - k/r^5 (1 - 5 z^2/r^2)
    dxy = 1.0 - 5.0 * zeta
    dxy *= k5
    dxy += mu3
    xc = x * cxy
    yc = y * cxy
    gxx = xc * x
    gxx -= dxy
    gyy = yc * y
    gyy -= dxy
    gxy = xc * y
    # d a_x / d z = d a_z / d x = x z [3 mu/r^5 + 5 k/r^7 (3 - 7 z^2/r^2)]
    cz = 3.0 - 7.0 * zeta
    cz *= 5.0 * k7
    cz += 3.0 * mu3 * inv_r2
    zc = z * cz
    gxz = zc * x
    gyz = zc * y
    # d a_z / d z = -mu/r^3 + 3 mu z^2/r^5 - 3 k/r^5 + 30 k z^2/r^7 - 35 k z^4/r^9
    #             = z * zc - mu/r^3 - k/r^5 (3 - 5 z^2/r^2) + 10 k z^2/r^7
    gzz = zc * z
    gzz -= mu3
    gzz -= (3.0 - 5.0 * zeta) * k5
    gzz += 10.0 * k7 * z * z
    return gxx, gxy, gxz, gyy, gyz, gzz


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
