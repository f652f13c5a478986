"""The figure tables: nothing is cut when the output is a log or a pipe."""

import pytest

from icecube_stream.cli.common import print_table

pytestmark = pytest.mark.unit

WIDE = ["in flight when hit", "events_in_progress 1492, messages_held 88"]


def test_a_no_wrap_table_in_a_pipe_takes_the_width_it_needs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    columns = [f"column {k}" for k in range(8)]
    print_table("wide", columns, [WIDE + [f"value {k}" for k in range(6)]], no_wrap=True)
    out = capsys.readouterr().out
    for text in [*columns, *WIDE, "value 5"]:
        assert text in out


def test_a_wrapped_table_folds_a_long_path_instead_of_cutting_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    path = "/state/skymaps/IceCube-1234567890.multiorder.fits"
    print_table("map", ("", ""), [("url", path)])
    cells = [line.split("│")[2].strip() for line in capsys.readouterr().out.splitlines()
             if line.count("│") == 3]  # fmt: skip
    assert "".join(cells) == path
