import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icecube_stream.cli import app
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.evaluate import evaluate, get_reconstructor
from icecube_stream.events.stats import DEPTH_REFERENCE, REFERENCE, compute_stats, stats_rows

pytestmark = pytest.mark.unit


def _truth(batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
    assert batch.azimuth is not None and batch.zenith is not None
    return batch.azimuth, batch.zenith


def _opposite(batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
    az, zen = _truth(batch)
    return np.mod(az + np.pi, 2 * np.pi), np.pi - zen


def test_evaluate_scores_perfect_and_opposite_reconstructors(dataset_dir: Path) -> None:
    batches = list(EventDataset(dataset_dir).iter_batches(events_per_chunk=500))
    perfect = evaluate(batches, _truth).summary()
    assert perfect["n_events"] == 1500
    assert perfect["mean_angular_error_rad"] == pytest.approx(0.0, abs=1e-7)
    worst = evaluate(batches, _opposite).summary()
    assert worst["median_angular_error_rad"] == pytest.approx(np.pi, abs=1e-6)
    assert set(worst["per_type"]) == {"track", "starting_track", "cascade"}
    assert sum(v["n_events"] for v in worst["per_type"].values()) == 1500


def test_linefit_is_far_better_than_random_on_tracks(dataset_dir: Path) -> None:
    result = evaluate(EventDataset(dataset_dir).iter_batches(), get_reconstructor("linefit"))
    summary = result.summary()
    assert summary["mean_angular_error_rad"] < 1.2
    assert summary["per_type"]["track"]["median_angular_error_rad"] < 0.5
    assert (
        summary["per_type"]["cascade"]["median_angular_error_rad"]
        > summary["per_type"]["track"]["median_angular_error_rad"]
    )


def test_unknown_model_and_missing_truth_are_errors(simulated: EventBatch) -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_reconstructor("nope")
    part = take_events(simulated, 0, 10)
    unlabelled = EventBatch(
        part.geometry,
        part.event_id,
        part.offsets,
        part.sensor_id,
        part.time,
        part.charge,
        part.auxiliary,
    )
    with pytest.raises(ValueError, match="no truth"):
        evaluate([unlabelled], get_reconstructor("linefit"))


def test_stats_agree_with_a_direct_computation(simulated: EventBatch) -> None:
    halves = [take_events(simulated, 0, 700), take_events(simulated, 700, 1500)]
    stats = compute_stats(halves).as_dict()
    counts = simulated.pulse_counts
    assert stats["n_events"] == 1500
    assert stats["pulses_median"] == np.median(counts)
    assert stats["pulses_max"] == counts.max()
    k = int(np.argmax(counts))
    sl = slice(simulated.offsets[k], simulated.offsets[k + 1])
    assert stats["charge_median_pe"] == np.median(simulated.charge)
    first = simulated.time[simulated.offsets[:-1]]
    assert stats["first_time_median_ns"] == np.median(first)
    assert len(np.unique(simulated.sensor_id[sl])) <= counts[k]
    rows = stats_rows(stats)
    assert len(rows) >= 10 and all(len(r) == 3 for r in rows)


def test_stats_show_the_dust_layer_in_a_depth_profile(simulated: EventBatch) -> None:
    halves = [take_events(simulated, 0, 700), take_events(simulated, 700, 1500)]
    stats = compute_stats(halves).as_dict()
    profile = stats["depth_profile"]
    assert list(profile) == ["below_dust", "dust_layer", "above_dust"]
    g = simulated.geometry
    assert sum(band["sensors"] for band in profile.values()) == g.n_sensors
    # The dust band against a direct computation over both halves at once.
    z = g.positions[:, 2]
    in_dust = (z >= -150.0) & (z < 0.0)
    event = np.repeat(np.arange(simulated.n_events), simulated.pulse_counts)
    hlc = ~simulated.auxiliary
    first_hlc = np.full(simulated.n_events, np.inf)
    np.minimum.at(first_hlc, event[hlc], simulated.time[hlc])
    sel = hlc & in_dust[simulated.sensor_id]
    pairs = np.unique(event[sel] * g.n_sensors + simulated.sensor_id[sel]).size
    dust = profile["dust_layer"]
    assert dust["hit_dom_percent"] == pytest.approx(100 * pairs / (in_dust.sum() * 1500))
    assert dust["hlc_charge_median_pe"] == np.median(simulated.charge[sel])
    assert dust["hlc_delay_median_ns"] == np.median(simulated.time[sel] - first_hlc[event[sel]])
    assert -150.0 <= dust["sensor_z_m"][0] < dust["sensor_z_m"][1] < 0.0
    # Murky ice: far fewer of its DOMs see light than above or below it.
    hits = {key: band["hit_dom_percent"] for key, band in profile.items()}
    assert hits["dust_layer"] < 0.5 * min(hits["above_dust"], hits["below_dust"]), hits
    # It is in the printed table and in strict JSON.
    rows = {label: value for label, value, _ in stats_rows(stats)}
    assert rows["depth bands, by the hit sensor"] == "above / dust / below"
    shown = [float(v.replace(",", "")) for v in rows[DEPTH_REFERENCE[0][1]].split(" / ")]
    assert shown == pytest.approx(
        [hits[k] for k in ("above_dust", "dust_layer", "below_dust")], abs=0.006
    )
    json.dumps(stats, allow_nan=False)
    assert len(stats_rows(compute_stats([]).as_dict())) == len(REFERENCE)


def test_cli_simulate_evaluate_stats(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-sim"
    result = runner.invoke(
        app,
        ["simulate", "--events", "300", "--out", str(out), "--seed", "2", "--batch-size", "200"],
    )
    assert result.exit_code == 0, result.output
    assert "events/s" in result.stderr
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "batch_1.parquet",
        "batch_2.parquet",
    ]

    result = runner.invoke(app, ["evaluate", "--data", str(out), "--model", "linefit", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert summary["n_events"] == 300
    assert 0 < summary["median_angular_error_rad"] < np.pi
    assert {"mean_angular_error_rad", "per_type"} <= set(summary)
    # The table is for people: degrees, the same figures.
    result = runner.invoke(app, ["evaluate", "--data", str(out), "--model", "linefit"])
    assert result.exit_code == 0, result.output
    assert "(deg)" in result.stdout and "(rad)" not in result.stdout
    assert f"{np.degrees(summary['median_angular_error_rad']):.1f}" in result.stdout

    result = runner.invoke(app, ["stats", "--data", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_events"] == 300

    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "data directory not found" in result.stderr
