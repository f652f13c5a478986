"""A short `icecube-stream chaos` run on the live stack: worker SIGKILLs while it holds work,
the broker killed, MongoDB and the model server down, a spell of 500 answers, a second worker
joining and leaving, the poison corpus. Every row: nothing lost, nothing written twice to
MongoDB, no alert lost or sent twice, backlog back within 30 s; every poison message ends as
the corpus says."""

from typing import Any

import pytest

from icecube_stream.config import Settings
from icecube_stream.events.batch import EventBatch, take_events
from icecube_stream.tools.chaos import Chaos, Plan

pytestmark = pytest.mark.chaos

SHORT = Plan(worker_kills=2, kafka_down_s=3.0, mongo_down_s=6.0, model_down_s=12.0,
             model_errors_s=6.0, second_worker_s=8.0, settle_s=32.0)  # fmt: skip


def test_a_short_chaos_run_loses_nothing(
    champion: tuple[Settings, Any], events: EventBatch
) -> None:
    settings = champion[0].model_copy(
        update={
            "model_retry_max_s": 4.0,  # the outage outlasts it
            # A loose alert policy (the tiny champion's figures mean little): alerts in flight.
            "alert_min_track_probability": 0.0,
            "alert_min_charge": 1000.0,
            "alert_max_radius90_deg": 180.0,
        }
    )
    lines: list[str] = []
    outcome = Chaos(settings, take_events(events, 0, 3000), lines.append).run(SHORT, 1000.0)
    table = "\n".join(str(r.as_dict()) for r in outcome.rows)
    print(table)
    assert [r.fault for r in outcome.rows][:2] == ["worker SIGKILL"] * 2
    assert all(r.in_flight != "none seen" for r in outcome.rows[:2]), table
    (errors,) = [r for r in outcome.rows if r.fault.startswith("model server answers 500")]
    assert " 0 requests answered 500" not in errors.in_flight, table
    assert outcome.poison_mismatches == [], outcome.poison_mismatches
    assert all(r.lost == 0 and r.mongo_duplicates == 0 for r in outcome.rows), table
    assert all(r.alerts_lost == 0 and r.alert_duplicates == 0 for r in outcome.rows), table
    assert sum(r.alerts for r in outcome.rows[:2]) > 0, "no alert among the killed workers' work"
    assert outcome.ok, table
