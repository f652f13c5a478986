"""Pure physics: direction conventions, angular metrics and analytic first-guess fits (no I/O)."""
