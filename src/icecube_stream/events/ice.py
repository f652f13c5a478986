"""South Pole ice at 400 nm versus depth, and the per-DOM numbers the simulator takes from it.

The glacier is not uniform: dust from past climates settled in layers, and the thickest of them
(about 70,000 years old) sits in the middle of IceCube at 1950-2100 m depth. There light is
scattered every few metres and absorbed within tens of metres; just below it lies the clearest
ice of the detector. The table is a coarse version of IceCube's SPICE Mie ice model (Aartsen et
al., NIM A 711 (2013) 73, arXiv:1301.5361, measured with the in-ice LED flashers): its 10 m layers
averaged into 40 m bins, 20 m in the dust layer (docs/ice.md has the derivation and the sources).

The simulator has no photon propagation, so the two lengths enter through two shortcuts, both
taken at the DOM's own depth (not averaged along the light's path):

- expected charge falls off with the diffusion attenuation length sqrt(λa λe / 3);
- the Pandel delay's scattering and absorption lengths, AMANDA's fit for the ice at its depths
  (1500-2000 m), are scaled by the local λe and λa relative to this table's mean over those depths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Depth (m below the surface) of the detector's origin, z = 0.
ORIGIN_DEPTH_M = 1948.07

#: (depth m, effective scattering length λe m, absorption length λa m) at 400 nm, from SPICE Mie.
ICE_TABLE: tuple[tuple[float, float, float], ...] = (
    (1440.0, 16.0, 57.0),
    (1480.0, 29.0, 100.0),
    (1520.0, 21.0, 75.0),
    (1560.0, 15.0, 51.0),
    (1600.0, 21.0, 70.0),
    (1640.0, 28.0, 101.0),
    (1680.0, 39.0, 141.0),
    (1720.0, 21.0, 76.0),
    (1760.0, 27.0, 93.0),
    (1800.0, 38.0, 125.0),
    (1840.0, 27.0, 95.0),
    (1880.0, 30.0, 100.0),
    (1920.0, 44.0, 158.0),
    (1950.0, 23.0, 87.0),
    (1970.0, 17.0, 59.0),
    (1990.0, 10.0, 35.0),
    (2010.0, 12.0, 42.0),
    (2030.0, 6.0, 22.0),
    (2050.0, 6.0, 22.0),
    (2070.0, 11.0, 38.0),
    (2090.0, 30.0, 113.0),
    (2120.0, 40.0, 140.0),
    (2160.0, 37.0, 122.0),
    (2200.0, 33.0, 108.0),
    (2240.0, 53.0, 167.0),
    (2280.0, 72.0, 213.0),
    (2320.0, 64.0, 209.0),
    (2360.0, 29.0, 105.0),
    (2400.0, 53.0, 177.0),
    (2440.0, 71.0, 224.0),
)

#: z range (m) of the main dust layer, depth ~1948-2098 m; `stats` reports hits above, in and
#: below it.
DUST_LAYER_Z_M = (-150.0, 0.0)

#: AMANDA's Pandel fit (Ahrens et al., NIM A 524 (2004) 169): τ, λ and λa, for the ice at
#: AMANDA-II's depths, which `PANDEL_REFERENCE_DEPTHS_M` names.
PANDEL_TAU_NS = 557.0
PANDEL_LAMBDA_M = 33.3
PANDEL_ABSORPTION_M = 98.0
PANDEL_REFERENCE_DEPTHS_M = (1500.0, 2000.0)

_TABLE = np.array(ICE_TABLE)
# Ascending z for np.interp; coefficients (1/length) are what add up along a path, so they are
# what gets interpolated and averaged.
_Z = ORIGIN_DEPTH_M - _TABLE[::-1, 0]
_SCATTERING = 1.0 / _TABLE[::-1, 1]
_ABSORPTION = 1.0 / _TABLE[::-1, 2]


def depth_m(z: ArrayLike) -> NDArray[np.float64]:
    """Depth below the surface of detector coordinate z."""
    return ORIGIN_DEPTH_M - np.asarray(z, dtype=np.float64)


def scattering_length(z: ArrayLike) -> NDArray[np.float64]:
    """Effective scattering length λe (m) at 400 nm; held constant beyond the table's ends."""
    return 1.0 / np.interp(np.asarray(z, dtype=np.float64), _Z, _SCATTERING)


def absorption_length(z: ArrayLike) -> NDArray[np.float64]:
    """Absorption length λa (m) at 400 nm; held constant beyond the table's ends."""
    return 1.0 / np.interp(np.asarray(z, dtype=np.float64), _Z, _ABSORPTION)


def attenuation_length(z: ArrayLike) -> NDArray[np.float64]:
    """Diffusion attenuation length sqrt(λa λe / 3) (m): how fast light fades with distance once
    it has scattered a few times, which is what most hits far from the source see."""
    return np.sqrt(absorption_length(z) * scattering_length(z) / 3.0)


def _mean_lengths(depths: tuple[float, float]) -> tuple[float, float]:
    """λe and λa of the ice between two depths (lengths of the mean coefficients)."""
    z = ORIGIN_DEPTH_M - np.linspace(depths[0], depths[1], 501)
    return (
        float(1.0 / np.mean(np.interp(z, _Z, _SCATTERING))),
        float(1.0 / np.mean(np.interp(z, _Z, _ABSORPTION))),
    )


#: λe and λa of the ice Pandel's constants were fitted in (about 24 m and 82 m).
REFERENCE_SCATTERING_M, REFERENCE_ABSORPTION_M = _mean_lengths(PANDEL_REFERENCE_DEPTHS_M)


@dataclass(frozen=True)
class DomOptics:
    """Per-DOM optical parameters at each DOM's depth."""

    attenuation_m: NDArray[np.float64]  # for the expected charge
    pandel_lambda_m: NDArray[np.float64]  # Gamma shape = distance / pandel_lambda_m
    pandel_rate_per_ns: NDArray[np.float64]  # Gamma rate = 1/τ + (c / n_group) / λa(Pandel)


def dom_optics(z: ArrayLike, group_velocity_m_per_ns: float) -> DomOptics:
    """Attenuation length and Pandel parameters for sensors at heights `z` (m)."""
    pandel_lambda = PANDEL_LAMBDA_M * scattering_length(z) / REFERENCE_SCATTERING_M
    pandel_absorption = PANDEL_ABSORPTION_M * absorption_length(z) / REFERENCE_ABSORPTION_M
    return DomOptics(
        attenuation_m=attenuation_length(z),
        pandel_lambda_m=pandel_lambda,
        pandel_rate_per_ns=1.0 / PANDEL_TAU_NS + group_velocity_m_per_ns / pandel_absorption,
    )
