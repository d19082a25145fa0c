"""Notional catalog of North Korean ballistic missiles (open-source estimates).

Every figure below is an unclassified, public open-source *estimate* or an
*assumption* of this project; none is an official value. Masses and burn
times were taken where published and otherwise chosen (marked ``assumption``)
so that the point-mass model of :mod:`sim.dynamics` reaches about the published
maximum range of the class with its re-entry vehicle (RV) and flies every
publicly reported flight of the class since 2017 (REC, below). Stages burn at
constant mass flow with one effective (altitude-averaged) specific impulse,
so the thrust of stage ``i`` is :math:`F_i = \\dot m_i I_{sp,i} g_0`.

Radar cross sections (RCS) are notional, frequency-independent averages in
m^2 per object kind and phase: the missile body with its booster in boost,
the RV after burnout (midcourse and re-entry), and the spent last stage.
Orders of magnitude follow the open literature (RV 0.01 to 0.1 m^2 for a
cone seen near nose-on; tumbling tanks and spent stages 1 to 10 m^2).

Sources (cited by key in the ``sources`` field of each class)
------------------------------------------------------------
CSIS
    CSIS Missile Defense Project, *Missile Threat*, missile pages for KN-23,
    Nodong, Hwasong-12/14/15/17/18, Pukguksong-3 (2017-2024).
SS2012
    M. Schiller, *Characterizing the North Korean Nuclear Missile Threat*,
    RAND TR-1268, 2012; M. Schiller & R. Schmucker, *Explaining the Musudan*,
    2012 (Nodong engine, masses and burn time).
W2017
    D. Wright, UCS *All Things Nuclear* posts on the Hwasong-12 (May 2017),
    Hwasong-14 (July 2017) and Hwasong-15 (Nov. 2017) flights, ranges and
    payload trade-offs.
E2017
    M. Elleman, *38 North*, analyses of the Hwasong-12 (May 2017), Hwasong-14
    (July 2017) and Hwasong-15 (Dec. 2017) launches.
E2023
    M. Elleman / J. Schilling, *38 North*, Hwasong-17 (2022) and Hwasong-18
    (2023) solid-propellant ICBM analyses; KCNA photographs of Hwasong-19
    (Oct. 2024).
S2016
    J. Schilling, "North Korea's large rocket engine test: a significant step
    forward for Pyongyang's ICBM program", *38 North*, Sept. 2016, on the
    KCNA-claimed 80 tf engine (ground tests Sept. 2016 and 18 March 2017).
KN23
    38 North and Japan MoD reports on the KN-23 (2019): about 7.5 m long,
    0.95 m diameter, depressed, "irregular" trajectory with a pull-up, like
    the Russian 9M723 Iskander.
UCS2000
    A. Sessler et al., *Countermeasures*, UCS/MIT, 2000 (RV and tank RCS
    orders of magnitude, ballistic coefficients of RVs and decoys).
P2017
    T. Postol, M. Schiller, R. Schmucker, analyses of North Korean RVs and
    Hwasong-14 re-entry (2017).
REC
    The flight record in ``tests/data/published_flights.csv`` (Japan MoD,
    ROK JCS and KCNA releases of each flight, 2017-2024; each row names its
    sources). Where a figure below was changed so that the class flies every
    flight of its record (issue 21), the comment says which flight sized it.

Test payloads
-------------
The lofted tests of 2017-2024 reached apogees that the classes sized to an
operational re-entry vehicle could not (Hwasong-17: 6,248.5 km claimed by KCNA
against 3,400 km from the earlier figures). A lighter payload for lofted
tests is the common reading of those flights in the open literature (W2017,
E2017, E2023), so ``rv_mass`` of the ICBMs and the Hwasong-12 is the *test*
payload, an assumption sized so that the highest recorded apogee lies inside
the lofted envelope with a few per cent to spare. ``max_range`` stays the
published estimate (the cap that ``trajectory`` enforces) or the longest
recorded flight where that is longer; with the light test payload the model
would fly some classes farther than their published range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

G0 = 9.80665  # m/s^2, standard gravity (definition of specific impulse, CGPM 1901)


@dataclass(frozen=True)
class Stage:
    """One propulsive stage.

    Attributes
    ----------
    burn_time : float
        s.
    propellant_mass : float
        kg, burnt at constant mass flow over ``burn_time``.
    dry_mass : float
        kg, the stage's inert mass (case or tanks, engine, interstage).
    isp : float
        Effective specific impulse over the burn, s.
    propellant : str
        ``"liquid"`` or ``"solid"``.
    """

    burn_time: float
    propellant_mass: float
    dry_mass: float
    isp: float
    propellant: str

    @property
    def mass_flow(self) -> float:
        """Propellant mass flow, kg/s."""
        return self.propellant_mass / self.burn_time

    @property
    def thrust(self) -> float:
        """Thrust :math:`\\dot m I_{sp} g_0`, N."""
        return self.mass_flow * self.isp * G0


@dataclass(frozen=True)
class MissileClass:
    """A missile class of the catalog (notional, open-source estimates).

    Attributes
    ----------
    key : str
        Catalog key, e.g. ``"icbm-hwasong15"``.
    name : str
        Display name.
    stages : tuple of Stage
        First stage first.
    rv_mass : float
        Re-entry vehicle (payload) mass, kg; for the classes sized to their lofted
        tests, the lighter test payload (module docstring, "Test payloads").
    rv_ballistic_coeff : float
        RV ballistic coefficient :math:`\\beta = m/(C_D A)`, kg/m^2. For a
        class whose body does not separate (``separates`` False) it is the
        coefficient of the burnt-out body carrying the warhead.
    stage_ballistic_coeff : float
        Spent last stage (tumbling), kg/m^2.
    drag_area : float
        :math:`C_D A` of the whole missile in boost, m^2.
    max_range : float
        Largest ground range a flight may request, m: the published maximum-range
        estimate of the class, or its longest recorded flight where that is longer
        (module docstring, "Test payloads").
    separates : bool
        True if the RV separates from the last stage at burnout (a second
        ``"stage"`` object); False for a single body flying to the target
        (KN-23, like the Iskander).
    glide_lift_to_drag : float
        Lift-to-drag ratio of the body in the quasi-ballistic glide that a
        ``depressed`` shape and a ``pull-up`` manoeuvre use (0: no lift).
    vertical_rise : float
        Vertical rise before pitch-over, s (assumption: 4-8 s, typical of
        ballistic missiles; Zarchan, *Tactical and Strategic Missile
        Guidance*, ch. on boost).
    rcs_booster, rcs_rv, rcs_stage : float
        Notional RCS (m^2) of the missile with its booster in boost, of the
        RV after burnout, and of the spent stage.
    sources : tuple of str
        Citation keys (module docstring) and remarks; every number is an
        *estimate* unless marked *assumption*.
    """

    key: str
    name: str
    stages: tuple[Stage, ...]
    rv_mass: float
    rv_ballistic_coeff: float
    stage_ballistic_coeff: float
    drag_area: float
    max_range: float
    separates: bool
    glide_lift_to_drag: float
    vertical_rise: float
    rcs_booster: float
    rcs_rv: float
    rcs_stage: float
    sources: tuple[str, ...]

    @property
    def burn_time(self) -> float:
        """Total burn time of all stages (no coast between stages), s."""
        return float(sum(s.burn_time for s in self.stages))

    @property
    def launch_mass(self) -> float:
        """Lift-off mass, kg."""
        return float(self.rv_mass + sum(s.propellant_mass + s.dry_mass for s in self.stages))

    @property
    def propellant(self) -> str:
        """``"liquid"``, ``"solid"`` (all stages) or ``"mixed"``."""
        kinds = {s.propellant for s in self.stages}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def rcs(self, object_kind: str, phase) -> np.ndarray:
        """Notional RCS (m^2) of an object of this class by kind and phase.

        Parameters
        ----------
        object_kind : str
            ``"rv"`` or ``"stage"`` (as in ``Truth.object_kind``).
        phase : array_like of int
            Truth phase labels: 0 boost, 1 midcourse, 2 re-entry, -1 not in flight.

        Returns
        -------
        ndarray
            RCS in m^2, same shape as ``phase``; 0 where not in flight.

        Raises
        ------
        ValueError
            Unknown ``object_kind``.
        """
        p = np.asarray(phase)
        if object_kind == "rv":
            out = np.where(p == 0, self.rcs_booster, self.rcs_rv)
        elif object_kind == "stage":
            out = np.full(p.shape, self.rcs_stage)
        else:
            raise ValueError(f"object_kind must be 'rv' or 'stage', got {object_kind!r}")
        return np.where(p < 0, 0.0, out).astype(np.float64)


_L, _S = "liquid", "solid"

# Common RCS figures (estimates, UCS2000 orders of magnitude): booster bodies are
# metre-class cylinders seen broadside from the side (several m^2), RVs small cones.
MISSILES: dict[str, MissileClass] = {
    "srbm-kn23": MissileClass(
        key="srbm-kn23",
        name="KN-23 (Hwasong-11Ga)",
        # 3.4 t launch mass, 7.5 m x 0.95 m, 500 kg payload (CSIS, KN23; estimate).
        # Burn time and propellant split: assumption. The burn was 35 s, sized for about 690 km; the
        # 2021-09-15 rail-launched flight, 800 km with a 60 km apogee (ROK JCS, KCNA; REC), needs a
        # flatter, longer boost and a lighter payload: with 35 s the depressed program reached at most
        # 745 km, and with 50 s and 500 kg it needed an apogee of at least 95 km at 800 km. 50 s and a
        # 400 kg test payload (assumption, see "Test payloads") fly it.
        stages=(Stage(burn_time=50.0, propellant_mass=2550.0, dry_mass=365.0, isp=262.0, propellant=_S),),
        rv_mass=400.0,
        # Whole 765 kg body, CD 0.25 (slender fineness-8 body at Mach 5-7, zero-lift drag
        # 0.2-0.3: Fleeman, Tactical Missile Design, 2nd ed., AIAA 2006, ch. 2), 0.709 m^2: assumption.
        rv_ballistic_coeff=765.0 / (0.25 * 0.709),
        stage_ballistic_coeff=4500.0,  # unused: the body does not separate
        drag_area=0.25 * 0.709,  # CD 0.25 x pi (0.95 m)^2 / 4 (assumption, as above)
        # CSIS: 450-690 km (estimate); 800 km flown on 2021-09-15 (ROK JCS, KCNA; REC).
        max_range=800e3,
        separates=False,
        # Quasi-ballistic finned body gliding at angle of attack, hypersonic L/D about 2
        # (assumption; slender bodies with fins reach 1.5-2.5, Fleeman 2006 ch. 2). Sized so
        # that the 2019-07-25 flight, 600 km with a 50 km apogee (KN23), lies inside the envelope.
        glide_lift_to_drag=2.0,
        vertical_rise=4.0,
        rcs_booster=1.0,
        rcs_rv=0.1,  # whole slender body after burnout (estimate)
        rcs_stage=0.0,
        sources=("CSIS", "KN23", "UCS2000", "REC", "burn time, mass split and 400 kg test payload: assumption"),
    ),
    "mrbm-nodong": MissileClass(
        key="mrbm-nodong",
        name="Nodong (Hwasong-7)",
        # 16.25 t launch mass, 110 s burn, Isp 226 s SL / 255 s vac (SS2012; estimate).
        stages=(Stage(burn_time=110.0, propellant_mass=12_900.0, dry_mass=2_150.0, isp=245.0, propellant=_L),),
        rv_mass=1_200.0,  # warhead section (SS2012, estimate)
        rv_ballistic_coeff=3_000.0,  # UCS2000 order of magnitude (estimate)
        stage_ballistic_coeff=800.0,  # tumbling tank section (assumption)
        drag_area=0.3 * 1.33,  # 1.3 m diameter (CSIS), CD 0.3 (assumption)
        max_range=1_300e3,  # CSIS: 1,200-1,500 km (estimate)
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=6.0,
        rcs_booster=5.0,
        rcs_rv=0.1,
        rcs_stage=5.0,
        sources=("SS2012", "CSIS", "UCS2000"),
    ),
    "irbm-hwasong12": MissileClass(
        key="irbm-hwasong12",
        name="Hwasong-12",
        # Single Paektusan engine stage, about 24 t; 4,500 km with 650 kg (E2017, W2017; estimate).
        # Burn time from the engine's claimed 80 tf (784.5 kN) thrust (KCNA ground tests of Sept. 2016
        # and 2017-03-18; J. Schilling, 38 North, Sept. 2016, finds 80 tf plausible): 19.7 t at
        # Isp 295 s burns in 19.7e3 x 295 x 9.80665 / 784.5e3 = 73 s (estimate; the older 100 s
        # assumption meant 58 tf, which made the 2017-08-29 flight 7 % longer than reported).
        stages=(Stage(burn_time=73.0, propellant_mass=19_700.0, dry_mass=1_900.0, isp=295.0, propellant=_L),),
        # Test payload 500 kg (assumption, see "Test payloads"; W2017 gives 500-650 kg): with 650 kg the
        # class reached 4,554 km from Mupyong-ri on the 2022-10-04 bearing, short of the 4,600 km Japan
        # reported, and lofted at most 2,150 km at 787 km against the 2,111.5 km of 2017-05-14 (REC).
        rv_mass=500.0,
        # Slender cone RV, hypersonic CD about 0.1 on a 0.9 m base: 650 / (0.1 x 0.64) ~ 10,000 kg/m^2;
        # 8,000 kg/m^2 taken (assumption within the UCS2000 range for conical RVs).
        rv_ballistic_coeff=8_000.0,
        stage_ballistic_coeff=700.0,
        drag_area=0.3 * 2.11,  # 1.64 m diameter (CSIS)
        # 4,600 km: the longest recorded flight (Japan MoD, 2022-10-04; ROK JCS: about 4,500 km), beyond
        # the published 4,500 km estimate (E2017, W2017, CSIS; with 650 kg).
        max_range=4_600e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=4.0,
        rcs_booster=8.0,
        rcs_rv=0.05,
        rcs_stage=8.0,
        sources=("E2017", "W2017", "S2016", "CSIS", "UCS2000", "REC", "burn time from the claimed 80 tf thrust (estimate); RV ballistic coefficient and "
                 "500 kg test payload: assumption"),
    ),
    "icbm-hwasong14": MissileClass(
        key="icbm-hwasong14",
        name="Hwasong-14",
        # First stage as Hwasong-12; small vernier-engine second stage (E2017, W2017; estimate).
        stages=(
            Stage(burn_time=110.0, propellant_mass=19_700.0, dry_mass=1_900.0, isp=295.0, propellant=_L),
            Stage(burn_time=300.0, propellant_mass=3_300.0, dry_mass=500.0, isp=300.0, propellant=_L),
        ),
        # Test payload 300 kg (assumption, see "Test payloads"; W2017 and E2017 read the July 2017 flights
        # as lightly loaded): with 500 kg the class lofted at most 3,186 km at 998 km, short of the
        # 3,724.9 km of 2017-07-28 (KCNA, REC); 300 kg lofts to about 4,090 km. The long second-stage
        # burn is kept: a 150 s burn lofts as high but makes the 2017-07-04 flight 5 % shorter than the
        # reported 39 min.
        rv_mass=300.0,
        rv_ballistic_coeff=4_000.0,
        stage_ballistic_coeff=500.0,
        drag_area=0.3 * 2.11,
        max_range=10_000e3,  # W2017: about 10,000 km (estimate)
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=6.0,
        rcs_booster=8.0,
        rcs_rv=0.05,
        rcs_stage=2.0,
        sources=("E2017", "W2017", "P2017", "CSIS", "UCS2000", "REC",
                 "second-stage burn time and 300 kg test payload: assumption"),
    ),
    "icbm-hwasong15": MissileClass(
        key="icbm-hwasong15",
        name="Hwasong-15",
        # Twin-chamber first stage, larger second stage, about 13,000 km (W2017, E2017; estimate).
        stages=(
            Stage(burn_time=95.0, propellant_mass=48_000.0, dry_mass=4_500.0, isp=290.0, propellant=_L),
            Stage(burn_time=110.0, propellant_mass=7_000.0, dry_mass=900.0, isp=310.0, propellant=_L),
        ),
        rv_mass=1_000.0,
        rv_ballistic_coeff=4_000.0,
        stage_ballistic_coeff=600.0,
        drag_area=0.3 * 4.15,  # 2.3 m diameter (E2017)
        max_range=13_000e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=6.0,
        rcs_booster=10.0,
        rcs_rv=0.05,
        rcs_stage=4.0,
        sources=("W2017", "E2017", "CSIS", "UCS2000", "burn times: assumption, calibrated to the 2017-11-29 53 min flight"),
    ),
    "icbm-hwasong17": MissileClass(
        key="icbm-hwasong17",
        name="Hwasong-17",
        # Four-chamber first stage, about 100 t, 15,000 km (E2023, CSIS; estimate).
        # Burn times (assumption): the first stage has twice the chambers of the Hwasong-15's twin-chamber
        # first stage (E2023, CSIS), so twice its thrust here (2 x 1,437 kN): 80 t at Isp 285 s burns in
        # 80e3 x 285 x 9.80665 / 2.874e6 = 78 s. The older 140 s and 230 s burns (half that thrust, and a
        # long second-stage burn) lost so much to gravity on a lofted path that the class lofted at most
        # 3,415 km at 1,090 km, against the 6,040.9-6,248.5 km of 2022-2023 (KCNA, REC).
        stages=(
            Stage(burn_time=78.0, propellant_mass=80_000.0, dry_mass=8_000.0, isp=285.0, propellant=_L),
            Stage(burn_time=150.0, propellant_mass=14_000.0, dry_mass=2_000.0, isp=300.0, propellant=_L),
        ),
        # Test payload 750 kg (assumption, see "Test payloads"): lofts to about 6,650 km at 1,090 km.
        rv_mass=750.0,
        rv_ballistic_coeff=4_000.0,
        stage_ballistic_coeff=600.0,
        drag_area=0.3 * 5.73,  # 2.7 m diameter
        max_range=15_000e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=7.0,
        rcs_booster=15.0,
        rcs_rv=0.05,
        rcs_stage=5.0,
        sources=("E2023", "CSIS", "UCS2000", "REC", "stage masses, burn times and 750 kg test payload: assumption"),
    ),
    "icbm-hwasong18": MissileClass(
        key="icbm-hwasong18",
        name="Hwasong-18",
        # Three-stage solid ICBM (E2023, CSIS; estimate).
        stages=(
            Stage(burn_time=70.0, propellant_mass=32_000.0, dry_mass=4_000.0, isp=260.0, propellant=_S),
            Stage(burn_time=60.0, propellant_mass=11_000.0, dry_mass=1_500.0, isp=275.0, propellant=_S),
            Stage(burn_time=60.0, propellant_mass=2_800.0, dry_mass=400.0, isp=280.0, propellant=_S),
        ),
        # Test payload 500 kg (assumption, see "Test payloads"): with 600 kg the class lofted at most
        # 6,327 km at 1,001 km, short of the 6,648.4 km of 2023-07-12 (KCNA, REC).
        rv_mass=500.0,
        rv_ballistic_coeff=5_000.0,
        stage_ballistic_coeff=1_000.0,
        drag_area=0.3 * 3.8,  # about 2.2 m diameter
        max_range=15_000e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=4.0,
        rcs_booster=10.0,
        rcs_rv=0.05,
        rcs_stage=2.0,
        sources=("E2023", "CSIS", "UCS2000", "REC", "stage masses, burn times and 500 kg test payload: assumption"),
    ),
    "icbm-hwasong19": MissileClass(
        key="icbm-hwasong19",
        name="Hwasong-19",
        # Larger three-stage solid ICBM shown in Oct. 2024 (E2023 key, CSIS; estimate).
        stages=(
            Stage(burn_time=75.0, propellant_mass=45_000.0, dry_mass=5_500.0, isp=260.0, propellant=_S),
            Stage(burn_time=65.0, propellant_mass=15_000.0, dry_mass=2_000.0, isp=275.0, propellant=_S),
            Stage(burn_time=60.0, propellant_mass=3_500.0, dry_mass=500.0, isp=280.0, propellant=_S),
        ),
        # Test payload 600 kg (assumption, see "Test payloads"): with 1,000 kg the class lofted at most
        # 5,502 km at 1,001 km, short of the 7,687.5 km of 2024-10-31 (KCNA, REC); 600 kg: about 8,000 km.
        rv_mass=600.0,
        rv_ballistic_coeff=5_000.0,
        stage_ballistic_coeff=1_000.0,
        drag_area=0.3 * 4.5,  # about 2.4 m diameter
        max_range=15_000e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=4.0,
        rcs_booster=12.0,
        rcs_rv=0.05,
        rcs_stage=2.5,
        sources=("E2023", "CSIS", "UCS2000", "REC", "stage masses, burn times and 600 kg test payload: assumption"),
    ),
    "slbm-pukguksong3": MissileClass(
        key="slbm-pukguksong3",
        name="Pukguksong-3",
        # Two-stage solid SLBM, about 1,900 km (CSIS; estimate). Launch from a
        # submerged platform is modelled as a launch from sea level.
        stages=(
            Stage(burn_time=60.0, propellant_mass=8_000.0, dry_mass=1_500.0, isp=255.0, propellant=_S),
            Stage(burn_time=50.0, propellant_mass=1_500.0, dry_mass=450.0, isp=270.0, propellant=_S),
        ),
        rv_mass=700.0,
        rv_ballistic_coeff=4_000.0,
        stage_ballistic_coeff=1_000.0,
        drag_area=0.3 * 1.77,  # 1.5 m diameter
        max_range=1_900e3,
        separates=True,
        glide_lift_to_drag=0.0,
        vertical_rise=4.0,
        rcs_booster=5.0,
        rcs_rv=0.05,
        rcs_stage=2.0,
        sources=("CSIS", "UCS2000", "stage masses and burn times: assumption"),
    ),
}
"""Catalog keys -> :class:`MissileClass` (the scenario validator checks ``missile`` against these keys)."""


def rcs_m2(missile: str, object_kind: str, phase) -> np.ndarray:
    """Notional RCS (m^2) of an object of catalog class ``missile``; see :meth:`MissileClass.rcs`."""
    return MISSILES[missile].rcs(object_kind, phase)
