"""`produce --watch` against real Kafka and MongoDB: files known by content, sent once, resumed,
archived; a file under a name seen before is still sent in full."""

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from icecube_stream.config import Settings
from icecube_stream.events.dataset import DatasetWriter, EventDataset
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator
from icecube_stream.stream.watcher import FileIdentity, FileProgress, watch
from icecube_stream.wire.frame import decode_frame
from icecube_stream.wire.topics import PULSES, topic_codec
from support import wait_for

pytestmark = pytest.mark.integration


def write_files(root: Path, n_events: int, per_file: int, first_event_id: int) -> list[int]:
    """batch_1.parquet, batch_2.parquet, ... under root/train, settled long ago; their ids."""
    geometry = icecube_geometry()
    simulator = Simulator(geometry, seed=first_event_id, first_event_id=first_event_id)
    with DatasetWriter(root, geometry, events_per_file=per_file) as writer:
        for batch in simulator.iter_batches(n_events):
            writer.append(batch)
    for path in (root / "train").iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))
    return [int(e) for b in EventDataset(root).iter_batches() for e in b.event_id]


class Watcher:
    """`watch` in a thread until stop(); what it said, line by line."""

    def __init__(self, settings: Settings, root: Path, rate_hz: float | None = None) -> None:
        self.lines: list[str] = []
        self.running = True
        self.thread = threading.Thread(
            target=watch,
            kwargs={"settings": settings, "root": root, "archive": root / "archive",
                    "rate_hz": rate_hz, "poll_s": 0.2, "say": self.lines.append,
                    "keep_going": lambda: self.running},
        )  # fmt: skip
        self.thread.start()

    def stop(self) -> list[str]:
        self.running = False
        self.thread.join(timeout=30)
        return self.lines


def watch_until_archived(settings: Settings, root: Path, n_files: int) -> list[str]:
    watcher = Watcher(settings, root)
    try:
        wait_for(lambda: len(list((root / "archive" / "train").glob("*.parquet"))) >= n_files,
                 60, "archiving")  # fmt: skip
    finally:
        lines = watcher.stop()
    assert not list((root / "train").glob("batch_*.parquet"))
    return lines


def sent_event_ids(settings: Settings) -> Counter[int]:
    """Every event id on the pulses topic, with how often it was sent."""
    codec = topic_codec(PULSES, settings.topics_dir)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(PULSES)])
    sent: Counter[int] = Counter()
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 3:
        for message in consumer.consume(100, timeout=0.5):
            sent.update(decode_frame(message.value(), codec).event_id.tolist())
            quiet_since = time.monotonic()
    consumer.close()
    return sent


def test_watch_resumes_a_file_from_its_acknowledged_prefix(
    private: Settings, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    ids = write_files(incoming, 300, 150, first_event_id=1)
    second = EventDataset(incoming).batch_path(2)
    # As if an earlier run had the first 100 events of the second file acknowledged.
    progress = FileProgress(private)
    progress.save(FileProgress.key(incoming, FileIdentity.of(second).sha256), acked_events=100)

    lines = watch_until_archived(private, incoming, 2)

    assert sent_event_ids(private) == Counter(ids[:150] + ids[250:])
    assert any("50 sent and acknowledged now, 100 skipped" in line for line in lines), lines
    documents = list(progress.collection.find({}))
    assert {d["status"] for d in documents} == {"archived"}
    assert sorted(d["acked_events"] for d in documents) == [150, 150]
    progress.close()


def test_a_new_file_under_a_name_seen_before_is_sent_in_full(
    private: Settings, tmp_path: Path
) -> None:
    """The report that found this: batch_1.parquet of 10 events sent from one folder made the
    next batch_1.parquet, elsewhere and of other content, skip its first 10 events."""
    sent: list[int] = []
    for k, n_events in enumerate((10, 50, 50, 50)):
        root = tmp_path / f"folder-{k}"
        sent += write_files(root, n_events, n_events, first_event_id=1000 * (k + 1))
        lines = watch_until_archived(private, root, 1)
        assert lines and f"{n_events} sent and acknowledged now" in lines[0], lines
        assert "skipped" not in lines[0]
    assert sent_event_ids(private) == Counter(sent)


def test_the_same_file_dropped_twice_is_archived_again_without_resending(
    private: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "incoming"
    ids = write_files(root, 40, 40, first_event_id=7)
    watch_until_archived(private, root, 1)
    archived = root / "archive" / "train" / "batch_1.parquet"
    archived.replace(root / "train" / "batch_1.parquet")  # dropped in again
    os.utime(root / "train" / "batch_1.parquet", (time.time() - 60, time.time() - 60))

    lines = watch_until_archived(private, root, 1)

    assert "sent in full by an earlier run" in lines[0] and "not resent" in lines[0], lines
    assert sent_event_ids(private) == Counter(ids)
    assert archived.exists()


def test_a_file_replaced_while_it_is_sent_is_refused_then_sent_anew(
    private: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "incoming"
    write_files(root, 600, 600, first_event_id=1)
    replacement = tmp_path / "replacement"
    new_ids = write_files(replacement, 300, 300, first_event_id=5000)
    for folder in (root, replacement):  # each file self-describing, as files arriving one by one
        (folder / "train_meta.parquet").unlink()
    target = root / "train" / "batch_1.parquet"
    watcher = Watcher(private, root, rate_hz=200)
    try:
        wait_for(lambda: sent_so_far(private) > 0, 30, "the first frames of the file")
        (replacement / "train" / "batch_1.parquet").replace(target)  # the writer came back
        os.utime(target, (time.time() - 60, time.time() - 60))
        archived = root / "archive" / "train" / "batch_1.parquet"
        wait_for(archived.exists, 60, "the replacement to be archived")
    finally:
        lines = watcher.stop()
    assert "changed while being sent" in lines[0] and "left in place" in lines[0], lines
    assert "300 sent and acknowledged now" in lines[1], lines
    assert set(new_ids) <= set(sent_event_ids(private))


def sent_so_far(settings: Settings) -> int:
    progress = FileProgress(settings)
    try:
        return sum(d.get("acked_events", 0) for d in progress.collection.find({}))
    finally:
        progress.close()
