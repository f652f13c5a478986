"""`skymap EVENT_ID`: an alert's stored sky map in figures, and drawn on request; a thin wrapper
over icecube_stream.sky (astropy and matplotlib load only when the command runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from icecube_stream.cli.common import console, print_table
from icecube_stream.stack.kafka import current_settings


def skymap_command(
    event_id: Annotated[int, typer.Argument(help="The event whose alert sky map to read.")],
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Also draw the map to this PNG file (Mollweide and zoom)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """The sky map of an alert: best fit, 50 % / 90 % areas, pixels, where it is stored.

    Maps live under ICECUBE_SKYMAP_URL (a folder or an fsspec URL); only alerts have one.
    """
    from icecube_stream.sky.skymap import best_fit, containment
    from icecube_stream.sky.store import plot_skymap, read_skymap, skymap_url

    url = skymap_url(current_settings().skymap_base_url, event_id)
    try:
        table = read_skymap(url)
    except FileNotFoundError:
        console.print(
            f"[red]error:[/red] no sky map for event {event_id} at {url} (only alerts have one)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    ra, dec = best_fit(table)
    report = {
        "event_id": event_id,
        "url": url,
        "object": table.meta.get("OBJECT"),
        "date_obs": table.meta.get("DATE-OBS"),
        "ra_deg": ra,
        "dec_deg": dec,
        "area50_deg2": round(containment(table, 0.5), 6),
        "area90_deg2": round(containment(table, 0.9), 6),
        "pixels": len(table),
        "png": None if png is None else str(png),
    }
    if png is not None:
        plot_skymap(table, str(png))
    if as_json:
        typer.echo(json.dumps(report))
        return
    print_table(
        f"sky map of event {event_id}",
        ("", ""),
        [
            ("name", str(report["object"])),
            ("time (UTC)", str(report["date_obs"])),
            ("best fit RA, Dec (deg)", f"{ra:.3f}, {dec:+.3f}"),
            ("50 % area (deg²)", f"{report['area50_deg2']:.4g}"),
            ("90 % area (deg²)", f"{report['area90_deg2']:.4g}"),
            ("pixels", str(report["pixels"])),
            ("url", url),
            *([("png", str(png))] if png is not None else []),
        ],
    )
