"""How `--help` reads: docstrings as Markdown, flags without a value placeholder.

Markdown, because typer's default rich mode keeps every line break of a docstring, so a
paragraph wrapped at 100 columns in the source came out ragged at any other width; Markdown
rejoins paragraphs and wraps them to the terminal, and keeps blank-line paragraphs and lists.


typer 0.29 fills the type column of its rich option panels from `TyperOption.display_type_rich`,
which does not check `is_flag` (its plain-text help does), so every flag read `--json <bool>`,
as if it took a value. Patched here once for every command rather than per option; drop this
module when typer's own help shows no `<bool>` (tests/unit/test_cli_help.py tells).
"""

from __future__ import annotations

from typing import Any, Final

from typer.core import TyperOption

#: Every typer.Typer(...) of the command line passes this as rich_markup_mode.
HELP_MARKUP: Final = "markdown"
_typer_display_type = TyperOption.display_type_rich


def _display_type(option: TyperOption, ctx: Any) -> str | None:
    """None for a flag or a counter (`-vvv`), as typer's plain help does: they take no value."""
    if option.is_flag or option.count:
        return None
    return _typer_display_type(option, ctx)


def hide_flag_metavars() -> None:
    """Idempotent: the original method is kept from import time."""
    TyperOption.display_type_rich = _display_type  # type: ignore[method-assign,assignment]
