import pytest

from icecube_stream.stream.watcher import AckedPrefix

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
