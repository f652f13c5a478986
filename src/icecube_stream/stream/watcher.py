"""`produce --watch`: send batch files as they arrive, resume after a restart, archive when done.

Progress lives in MongoDB (`emitter_files`, one document per file content and watch root): the
number of the file's events that Kafka acknowledged as a contiguous prefix. A file is known by the
SHA-256 of its bytes, never by its name (Kaggle batches are all `batch_N.parquet`), so a new file
under an old name starts at event 0, and a file sent in full before is archived without resending.
A restarted emitter skips the acknowledged prefix, so it re-sends at most the frames acknowledged
since the last progress save or still in flight (the worker's event_id-keyed writes absorb
those). A file is archived only once all its events are acknowledged, and refused, left in place,
if it changed while being sent. Files should arrive by rename (atomic); a file modified in the
last `settle_s` is left for later.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pymongo import MongoClient

from icecube_stream import metrics
from icecube_stream.config import Settings
from icecube_stream.connections import mongo_options
from icecube_stream.events.dataset import EventDataset
from icecube_stream.events.layout import EventDataError
from icecube_stream.stream.emitter import EmitReport, FrameProducer, completed_events, pace_until
from icecube_stream.stream.framing import frames_from_batch

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


@dataclass(frozen=True)
class FileIdentity:
    """A file's content fingerprint, and the stat that tells whether it changed since."""

    sha256: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        stat = path.stat()  # before hashing: a write during hashing then shows as a change
        with path.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        return cls(digest, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def unchanged(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino) == (
            self.size, self.mtime_ns, self.inode
        )  # fmt: skip


@dataclass
class FileOutcome:
    """What one pass over one file did, for the report line."""

    name: str
    sha256: str
    events: int
    sent_now: int = 0  # acknowledged by Kafka in this run
    acked_before: int = 0  # acknowledged by an earlier run, so not sent now
    sent_from: str | None = None  # where the content was when it was sent in full before
    status: str = "sending"  # sent | unacknowledged | changed
    archived_to: Path | None = None

    def describe(self) -> str:
        line = f"{self.name}: {self.events} events in the file (sha256 {self.sha256[:12]})"
        if self.status == "changed":
            return (
                f"{line}; it changed while being sent ({self.sent_now} events sent): refused, "
                "left in place, sent again once it stops changing (from event 0 if new bytes)"
            )
        if self.sent_from is not None:
            line += f"; sent in full by an earlier run (from {self.sent_from}): not resent"
        else:
            line += f"; {self.sent_now} sent and acknowledged now"
            if self.acked_before:
                line += f", {self.acked_before} skipped (acknowledged by an earlier run)"
        if self.status == "unacknowledged":
            return f"{line}; not every frame was acknowledged: will retry"
        return f"{line}; archived to {self.archived_to}" if self.archived_to else line


class FileProgress:
    """Per-file progress documents, keyed by the watch root and the file's SHA-256."""

    def __init__(self, settings: Settings) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            settings.mongo_url, **mongo_options(settings)
        )
        self.collection = self.client[settings.mongo_database][PROGRESS_COLLECTION]

    @staticmethod
    def key(root: Path, sha256: str) -> str:
        return f"{root.resolve()}#{sha256}"

    def get(self, key: str) -> dict[str, Any]:
        return {"_id": key, "acked_events": 0, **(self.collection.find_one({"_id": key}) or {})}

    def save(self, key: str, **fields: Any) -> None:
        self.collection.update_one({"_id": key}, {"$set": fields}, upsert=True)

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
) -> FileOutcome:
    """Send one file from its acknowledged prefix on; skip it when its content was sent before."""
    path = dataset.batch_path(batch_id)
    name = f"{dataset.split}/{path.name}"
    identity = FileIdentity.of(path)
    key = FileProgress.key(dataset.root, identity.sha256)
    known = progress.get(key)
    total = dataset.meta_for_batch(batch_id).height
    outcome = FileOutcome(
        name, identity.sha256, total, acked_before=int(known.get("acked_events", 0))
    )
    if known.get("status") in {"sent", "archived"} and outcome.acked_before >= total:
        outcome.sent_from, outcome.status = str(known.get("path", name)), "sent"
        return outcome
    progress.save(key, root=str(dataset.root.resolve()), name=name, path=str(path.resolve()),
                  sha256=identity.sha256, size=identity.size, total_events=total)  # fmt: skip
    prefix = AckedPrefix(outcome.acked_before)
    sent, started, saved = outcome.acked_before, time.monotonic(), 0.0
    try:
        for chunk in dataset.iter_file(batch_id, skip=outcome.acked_before):
            for frame in frames_from_batch(
                chunk, name, settings.frame_max_events, settings.frame_max_pulses
            ):
                if rate_hz:
                    pace_until(started + (sent - outcome.acked_before) / rate_hz)
                sent += completed_events(frame)
                index = prefix.sent(sent)
                producer.send(frame, prefix.callback(index))
                if time.monotonic() - saved >= SAVE_EVERY_S:
                    saved = time.monotonic()
                    progress.save(key, acked_events=prefix.events, status="sending")
                    metrics.EMITTER_HEARTBEAT.set_to_current_time()
    except (EventDataError, pl.exceptions.PolarsError):
        if identity.unchanged(path):
            raise  # unreadable as it is, not because it changed under us
    unacknowledged = producer.flush()
    outcome.sent_now = prefix.events - outcome.acked_before
    if not identity.unchanged(path):
        outcome.status = "changed"
    elif unacknowledged or prefix.events < sent:
        outcome.status = "unacknowledged"
    else:
        outcome.status = "sent"
    progress.save(key, acked_events=prefix.events, status=outcome.status)
    return outcome


def archive_file(path: Path, archive_dir: Path, sha256: str) -> Path:
    """Move a sent file into the archive, never over an archived file of other content."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / path.name
    if target.exists() and FileIdentity.of(target).sha256 != sha256:
        target = archive_dir / f"{path.stem}.{sha256[:12]}{path.suffix}"
    shutil.move(path, target)
    return target


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
    unreadable: dict[Path, int] = {}  # path -> mtime_ns when it could not be read
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
                if not path.exists() or not settled(path, settle_s):
                    continue
                if unreadable.get(path) == path.stat().st_mtime_ns:
                    continue  # reported already; tried again once it changes
                try:
                    outcome = send_file(settings, dataset, batch_id, progress, producer, rate_hz)
                except (EventDataError, pl.exceptions.PolarsError) as error:
                    unreadable[path] = path.stat().st_mtime_ns
                    say(f"{split}/{path.name}: cannot be read, left in place: {error}")
                    continue
                if outcome.status == "sent":
                    outcome.archived_to = archive_file(path, archive / split, outcome.sha256)
                    progress.save(FileProgress.key(root, outcome.sha256), status="archived",
                                  archived_to=str(outcome.archived_to))  # fmt: skip
                say(outcome.describe())
            time.sleep(poll_s)
    finally:
        producer.flush()
        progress.close()
    return report
