"""False-alarm rate, p_astro and energy of an alert: estimates from simulated rates, not
measurements (docs/alerts.md says so wherever they are shown).

The simulator draws neutrino energies from E^-g. Reweighted, the same events stand for two
populations: atmospheric neutrinos (E^-3.7) and astrophysical ones (E^-2.37, IceCube's diffuse
muon-neutrino index), with equal fluxes at 100 TeV, where IceCube's measured spectra cross.
The atmospheric population is taken as the background of the whole trigger stream, so

- far(q): the trigger rate times the background share that is track-like with charge >= q,
- p_astro(q): the astrophysical share of track-like events with charge >= q (cumulative, a
  lower bound on the share at exactly q, steadier in the sparse bright tail),
- nu_energy(q): the median true energy of track-like events in q's charge bin.

The charge is the only input: the classifier and the containment cut make real alerts rarer, so
far is an upper bound for the policy's alerts. The table ships as rates.json, made by
`python -m icecube_stream.tools.alert_rates`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

RATES_FILE = Path(__file__).with_name("rates.json")
ATMOSPHERIC_INDEX = 3.7
ASTROPHYSICAL_INDEX = 2.37
CROSSOVER_GEV = 1.0e5
CHARGE_EDGES = np.geomspace(10.0, 1.0e6, 41)


@dataclass(frozen=True)
class AlertRates:
    charge_edges: list[float]  # lower edges of the charge bins, p.e.
    background_share: list[float]  # per edge: background share with charge >= edge
    p_astro: list[float]  # per edge, cumulative
    nu_energy_tev: list[float]  # per bin
    provenance: dict[str, Any] = field(default_factory=dict)

    def _bin(self, charge: NDArray[np.float64]) -> NDArray[np.intp]:
        index = np.searchsorted(self.charge_edges, charge, side="right") - 1
        return np.clip(index, 0, len(self.charge_edges) - 1)

    def far_hz(self, charge: NDArray[np.float64], trigger_rate_hz: float) -> NDArray[np.float64]:
        return trigger_rate_hz * np.asarray(self.background_share)[self._bin(charge)]

    def p_astro_at(self, charge: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.p_astro)[self._bin(charge)]

    def nu_energy_at(self, charge: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.nu_energy_tev)[self._bin(charge)]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def load_rates(path: Path = RATES_FILE) -> AlertRates:
    return AlertRates(**json.loads(path.read_text()))


def build_rates(
    charge: NDArray[np.float64],
    energy_gev: NDArray[np.float64],
    track_like: NDArray[np.bool_],
    generation_index: float,
    provenance: dict[str, Any] | None = None,
) -> AlertRates:
    """The table from simulated events: their charge, true energy and true topology."""
    relative = energy_gev / CROSSOVER_GEV
    generated = relative ** (-generation_index)
    atmospheric = relative ** (-ATMOSPHERIC_INDEX) / generated
    astrophysical = relative ** (-ASTROPHYSICAL_INDEX) / generated
    edges = CHARGE_EDGES
    background, p_astro, energy = [], [], []
    for k, edge in enumerate(edges):
        above = track_like & (charge >= edge)
        background.append(float(atmospheric[above].sum() / atmospheric.sum()))
        signal, noise = astrophysical[above].sum(), atmospheric[above].sum()
        p_astro.append(float(signal / (signal + noise)) if above.any() else np.nan)
        upper = edges[k + 1] if k + 1 < edges.size else np.inf
        inside = track_like & (charge >= edge) & (charge < upper)
        energy.append(float(np.median(energy_gev[inside]) / 1e3) if inside.any() else np.nan)
    return AlertRates(
        charge_edges=edges.tolist(),
        background_share=background,
        p_astro=_filled(np.asarray(p_astro)),
        nu_energy_tev=_filled(np.maximum.accumulate(np.nan_to_num(energy, nan=0.0))),
        provenance=provenance or {},
    )


def _filled(values: NDArray[np.float64]) -> list[float]:
    """Bins without simulated events take the nearest populated bin below (or above, at the
    bottom): the table answers for every charge."""
    values = np.where(values > 0, values, np.nan)
    known = np.flatnonzero(np.isfinite(values))
    if known.size == 0:
        raise ValueError("no track-like simulated event: cannot estimate alert rates")
    index = np.maximum.accumulate(np.where(np.isfinite(values), np.arange(values.size), 0))
    index = np.where(np.arange(values.size) < known[0], known[0], index)
    filled: list[float] = values[index].tolist()
    return filled
