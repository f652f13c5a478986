"""`produce --watch`: send batch files as they arrive, resume after a restart, archive when done.

Progress lives in MongoDB (`emitter_files`, one document per file): the number of the file's
events that Kafka acknowledged as a contiguous prefix. A restarted emitter skips that prefix, so
it re-sends at most the frames that were in flight when it stopped (the worker's event_id-keyed
writes absorb those). A file is moved to the archive only once all its events are acknowledged.
Files should arrive by rename (atomic); a file modified in the last `settle_s` is left for later.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.events.format import EventDataError, EventDataset
from icecube_stream.stream.emitter import EmitReport, FrameProducer, completed_events, pace_until
from icecube_stream.stream.frames import frames_from_batch

PROGRESS_COLLECTION = "emitter_files"
SAVE_EVERY_S = 1.0


@dataclass
class AckedPrefix:
    """How many leading events of a file are acknowledged, from out-of-order frame reports."""

    start: int
    ends: list[int] = field(default_factory=list)  # event count after each frame, in send order
    acked: list[bool] = field(default_factory=list)
    _first_open: int = 0

    def sent(self, events_after: int) -> int:
        self.ends.append(events_after)
        self.acked.append(False)
        return len(self.ends) - 1

    def acknowledge(self, index: int) -> None:
        self.acked[index] = True
        while self._first_open < len(self.acked) and self.acked[self._first_open]:
            self._first_open += 1

    def callback(self, index: int) -> Callable[[bool], None]:
        def delivered(acknowledged: bool) -> None:
            if acknowledged:
                self.acknowledge(index)

        return delivered

    @property
    def events(self) -> int:
        return self.ends[self._first_open - 1] if self._first_open else self.start


class FileProgress:
    def __init__(self, settings: Settings) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
        self.collection = self.client[settings.mongo_database][PROGRESS_COLLECTION]

    def get(self, name: str) -> dict[str, Any]:
        return self.collection.find_one({"_id": name}) or {"_id": name, "acked_events": 0}

    def save(self, name: str, **fields: Any) -> None:
        self.collection.update_one({"_id": name}, {"$set": fields}, upsert=True)

    def close(self) -> None:
        self.client.close()


def settled(path: Path, settle_s: float) -> bool:
    return time.time() - path.stat().st_mtime >= settle_s


def send_file(
    settings: Settings,
    dataset: EventDataset,
    batch_id: int,
    progress: FileProgress,
    producer: FrameProducer,
    rate_hz: float | None = None,
) -> int:
    """Send one file from where it stopped; the number of its events acknowledged in all."""
    path = dataset.batch_path(batch_id)
    name = f"{dataset.split}/{path.name}"
    start = int(progress.get(name).get("acked_events", 0))
    prefix = AckedPrefix(start)
    sent, started, saved = start, time.monotonic(), 0.0
    for chunk in dataset.iter_file(batch_id, skip=start):
        for frame in frames_from_batch(
            chunk, name, settings.frame_max_events, settings.frame_max_pulses
        ):
            if rate_hz:
                pace_until(started + (sent - start) / rate_hz)
            sent += completed_events(frame)
            index = prefix.sent(sent)
            producer.send(frame, prefix.callback(index))
            if time.monotonic() - saved >= SAVE_EVERY_S:
                saved = time.monotonic()
                progress.save(name, acked_events=prefix.events, status="sending")
                metrics.EMITTER_HEARTBEAT.set_to_current_time()
    unacknowledged = producer.flush()
    done = unacknowledged == 0 and prefix.events == sent
    progress.save(name, acked_events=prefix.events, total_events=sent,
                  status="sent" if done else "sending")  # fmt: skip
    return prefix.events if done else -1


def watch(
    settings: Settings,
    root: Path,
    archive: Path,
    split: str = "train",
    rate_hz: float | None = None,
    poll_s: float = 2.0,
    settle_s: float = 2.0,
    say: Callable[[str], None] = print,
    keep_going: Callable[[], bool] = lambda: True,
) -> EmitReport:
    """Send every settled batch file under root/split, archive it, and wait for more."""
    report = EmitReport()
    producer = FrameProducer(settings, report)
    progress = FileProgress(settings)
    try:
        while keep_going():
            metrics.EMITTER_HEARTBEAT.set_to_current_time()
            try:
                dataset = EventDataset(root, split=split)
            except EventDataError:
                time.sleep(poll_s)  # nothing to send yet
                continue
            for batch_id in dataset.batch_ids:
                path = dataset.batch_path(batch_id)
                if not settled(path, settle_s):
                    continue
                acked = send_file(settings, dataset, batch_id, progress, producer, rate_hz)
                if acked < 0:
                    say(f"{path.name}: not every frame was acknowledged; will retry")
                    continue
                target = archive / split / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
                progress.save(f"{split}/{path.name}", status="archived", archived_to=str(target))
                say(f"{path.name}: {acked} events acknowledged, archived to {target}")
            time.sleep(poll_s)
    finally:
        producer.flush()
        progress.close()
    return report
