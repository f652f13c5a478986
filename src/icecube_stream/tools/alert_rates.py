"""Make the alert-rate table (alerts/rates.json) from simulated events.

    python -m icecube_stream.tools.alert_rates [--events 400000] [--seed 7]

The bright tail decides the table, and one event in a hundred has over 1,300 p.e., so the
default simulates enough events (about a minute here) for a few thousand of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from icecube_stream.alerts.rates import RATES_FILE, AlertRates, build_rates
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import SimulationConfig, Simulator


def simulated_rates(n_events: int, seed: int) -> AlertRates:
    config = SimulationConfig()
    simulator = Simulator(icecube_geometry(), config, seed=seed)
    charges, energies, track_like = [], [], []
    for batch in simulator.iter_batches(n_events):
        charges.append(np.add.reduceat(batch.charge, batch.offsets[:-1]))
        energies.append(np.asarray(batch.extra["energy"], np.float64))
        track_like.append(np.asarray(batch.extra["event_type"]) != "cascade")
    return build_rates(
        np.concatenate(charges),
        np.concatenate(energies),
        np.concatenate(track_like),
        config.spectral_index,
        provenance={"simulated_events": n_events, "seed": seed},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RATES_FILE)
    args = parser.parse_args()
    simulated_rates(args.events, args.seed).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
