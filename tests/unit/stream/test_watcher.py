import hashlib
from pathlib import Path

import pytest

from icecube_stream.stream.watcher import AckedPrefix, FileIdentity, FileOutcome, archive_file

pytestmark = pytest.mark.unit


def test_acked_prefix_counts_only_a_contiguous_run_of_acknowledged_frames() -> None:
    prefix = AckedPrefix(start=100)
    frames = [prefix.sent(after) for after in (164, 228, 228, 292)]  # a split event's part: 228
    assert prefix.events == 100
    prefix.acknowledge(frames[1])
    assert prefix.events == 100  # frame 0 still open
    prefix.acknowledge(frames[0])
    assert prefix.events == 228
    prefix.callback(frames[3])(True)
    prefix.callback(frames[2])(False)  # failed delivery: stays open
    assert prefix.events == 228
    prefix.callback(frames[2])(True)
    assert prefix.events == 292


def test_a_file_is_known_by_its_bytes_and_a_rewrite_shows_as_a_change(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "batch_1.parquet", tmp_path / "b" / "batch_1.parquet"
    for path, content in ((first, b"ten events"), (second, b"fifty events")):
        path.parent.mkdir()
        path.write_bytes(content)
    identity = FileIdentity.of(first)
    assert identity.sha256 == hashlib.sha256(b"ten events").hexdigest()
    assert identity.sha256 != FileIdentity.of(second).sha256  # same name, other content
    assert identity.unchanged(first)
    second.replace(first)  # the writer came back with other bytes
    assert not identity.unchanged(first)
    assert not identity.unchanged(tmp_path / "gone.parquet")


def test_archiving_never_overwrites_an_archived_file_of_other_content(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    for content in (b"first", b"second", b"second"):
        path = tmp_path / "batch_1.parquet"
        path.write_bytes(content)
        archive_file(path, archive, hashlib.sha256(content).hexdigest())
    kept = {p.name: p.read_bytes() for p in archive.iterdir()}
    second = f"batch_1.{hashlib.sha256(b'second').hexdigest()[:12]}.parquet"
    assert kept == {"batch_1.parquet": b"first", second: b"second"}


@pytest.mark.parametrize(
    ("outcome", "says", "never_says"),
    [
        (FileOutcome("train/batch_1.parquet", "ab" * 32, 50, sent_now=50, status="sent"),
         ["50 events in the file", "50 sent and acknowledged now"], ["skipped", "earlier"]),
        (FileOutcome("train/batch_1.parquet", "ab" * 32, 50, sent_now=40, acked_before=10,
                     status="sent"),
         ["40 sent and acknowledged now, 10 skipped (acknowledged by an earlier run)"], []),
        (FileOutcome("train/batch_1.parquet", "ab" * 32, 50, acked_before=50, sent_from="/in/x",
                     status="sent"),
         ["sent in full by an earlier run (from /in/x): not resent"], ["acknowledged now"]),
        (FileOutcome("train/batch_1.parquet", "ab" * 32, 50, sent_now=20, status="unacknowledged"),
         ["not every frame was acknowledged: will retry"], ["archived"]),
        (FileOutcome("train/batch_1.parquet", "ab" * 32, 50, sent_now=20, status="changed"),
         ["changed while being sent", "refused, left in place"], ["archived"]),
    ],
)  # fmt: skip
def test_the_report_line_never_reads_a_skip_as_a_send(
    outcome: FileOutcome, says: list[str], never_says: list[str]
) -> None:
    line = outcome.describe()
    assert all(text in line for text in says), line
    assert not any(text in line for text in never_says), line
