"""What the command modules share: the console on stderr (stdout is kept for `--json` and
tables) and the one table layout every figure-reporting command prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], no_wrap: bool = False
) -> None:
    """A table of figures on stdout; `--json` variants print JSON instead."""
    table = Table(title=title)
    for column in columns:
        # Wrapped cells fold words too long for the line (paths, URLs) instead of cutting them.
        table.add_column(column, no_wrap=no_wrap, overflow="ellipsis" if no_wrap else "fold")
    for row in rows:
        table.add_row(*row)
    out = Console()
    if no_wrap and not out.is_terminal:  # a log or a pipe: as wide as the table needs
        natural = out.measure(table, options=out.options.update_width(1000)).maximum
        out = Console(width=max(out.width, natural))
    out.print(table)
