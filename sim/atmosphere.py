"""Standard-atmosphere air density for drag, as a table built once from ``ambiance``.

``ambiance`` implements the ICAO 1993 standard atmosphere (identical to the
U.S. Standard Atmosphere 1976 up to 32 km and its extension to 80 km), valid
from -5 km to 81.02 km geometric height. Drag needs density at
any height a missile reaches, so this module tabulates ln(rho) from 0 to 81 km
every 250 m (a cubic spline in ln(rho)) and, above the table ceiling, extrapolates exponentially with the
scale height fitted to the top 5 km of the table, down to zero density above
:data:`TOP_OF_ATMOSPHERE` (120 km). At 100 km the extrapolation gives 8e-7 kg/m^3
(U.S. Standard Atmosphere 1976: 5.6e-7) and at 120 km 3.5e-8 kg/m^3 (USSA76: 2.2e-8), so the
drag it drops is of the order of 1e-6 m/s^2 for a re-entry vehicle: negligible
against the J2 term. Below 0 m the sea-level density is used (an object
below the ellipsoid has already impacted).

References
----------
ICAO Doc 7488/3, *Manual of the ICAO Standard Atmosphere*, 3rd ed., 1993;
U.S. Standard Atmosphere, NOAA/NASA/USAF, 1976 (Table I, densities above 86 km);
``ambiance`` Python package (A. Schneider), ``Atmosphere(h).density``.
"""

from __future__ import annotations

import numpy as np
from ambiance import Atmosphere
from scipy.interpolate import CubicSpline

TABLE_CEILING = 81_000.0  # m, upper limit of ambiance (ICAO 1993 goes to 80 km; ambiance 81.02 km)
TOP_OF_ATMOSPHERE = 120_000.0  # m, density set to zero above (documented cut-off, see module docstring)
TABLE_STEP = 250.0  # m; ln(rho) is smooth, linear interpolation in ln(rho) errs < 0.1 % at this step

_H = np.arange(0.0, TABLE_CEILING + 0.5 * TABLE_STEP, TABLE_STEP)
_LN_RHO = np.log(Atmosphere(_H).density)
# Scale height of the top 5 km of the table (about 6.4 km), used above the ceiling.
_SCALE_HEIGHT = -(5000.0) / (_LN_RHO[-1] - _LN_RHO[-1 - int(5000.0 / TABLE_STEP)])
_INV_STEP = 1.0 / TABLE_STEP
_N = _H.size
# ln(rho) as a C2 cubic spline (its slope at the ceiling clamped to the extrapolation's -1/H, so
# the density is also C1 there): linear interpolation would put a kink in the drag every 250 m,
# and every kink costs a fixed-step RK4 its order (the truth integrator crosses hundreds).
_SPLINE = CubicSpline(_H, _LN_RHO, bc_type=("not-a-knot", (1, -1.0 / _SCALE_HEIGHT)))
_C3, _C2, _C1, _C0 = (np.ascontiguousarray(c) for c in _SPLINE.c)  # highest power first


def density(h_m):
    """Air density at geometric height above the ellipsoid.

    Parameters
    ----------
    h_m : array_like
        Height in metres, any shape.

    Returns
    -------
    ndarray
        Density in kg/m^3, same shape: the ICAO 1993 table (cubic spline of
        :math:`\\ln\\rho`, C2) for 0 <= h <= 81 km, sea level below 0, an exponential
        :math:`\\rho(h) = \\rho(h_c)\\,e^{-(h-h_c)/H}` with the scale height
        :math:`H` of the table top above the ceiling :math:`h_c`, and zero
        above 120 km.
    """
    h = np.asarray(h_m, dtype=np.float64)
    hc = np.clip(h, 0.0, TABLE_CEILING)
    i = np.minimum((hc * _INV_STEP).astype(np.intp), _N - 2)
    w = hc - _H[i]
    ln_rho = ((_C3[i] * w + _C2[i]) * w + _C1[i]) * w + _C0[i]
    above = np.maximum(h - TABLE_CEILING, 0.0)
    rho = np.exp(ln_rho - above / _SCALE_HEIGHT)
    return np.where(h > TOP_OF_ATMOSPHERE, 0.0, rho)


def scale_height_above_table() -> float:
    """Scale height (m) of the exponential extrapolation above 81 km."""
    return float(_SCALE_HEIGHT)
