import pytest

from icecube_stream.events.batch import concat_batches
from icecube_stream.events.dataset import DatasetWriter, EventDataset
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.stream import emitter
from icecube_stream.stream.framing import frames_from_batch

pytestmark = pytest.mark.unit


def test_completed_events_counts_a_split_event_once(make_batch) -> None:  # type: ignore[no-untyped-def]
    frames = list(frames_from_batch(make_batch([5, 230, 5]), "b", 10, 100))
    assert [emitter.completed_events(f) for f in frames] == [1, 0, 0, 1, 1]


def test_dataset_batches_limit_and_loop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    batch = concat_batches(list(Simulator(icecube_geometry(), seed=6).iter_batches(120)))
    with DatasetWriter(tmp_path, batch.geometry, events_per_file=50) as writer:
        writer.append(batch)
    dataset = EventDataset(tmp_path)
    once = [b.n_events for _, b in emitter.dataset_batches(dataset)]
    assert sum(once) == 120
    looped = sum(b.n_events for _, b in emitter.dataset_batches(dataset, limit=300, loop=True))
    assert looped == 300
    assert sum(b.n_events for _, b in emitter.dataset_batches(dataset, limit=70)) == 70
