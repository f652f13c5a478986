"""Sky maps as files: FITS in and out through fsspec, so one URL setting serves a local folder
(tests, the local stack) and an object store (`s3://bucket/prefix` with s3fs installed).

Files are named after the event (`IceCube-{event_id}.multiorder.fits`), so a map written again
after a crash replaces the first one instead of adding a second, and the header carries no
creation date: the same event and fit give the same bytes. A local file is written beside its
final name and renamed into place, so a reader never sees half a map; object stores replace
whole objects on their own.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import fsspec  # type: ignore[import-untyped]
import numpy as np
from astropy.io import fits  # type: ignore[import-untyped]
from astropy.table import Table  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

from icecube_stream.sky.skymap import header_cards, render_png

SUFFIX = ".multiorder.fits"


def skymap_url(base_url: str, event_id: int) -> str:
    """Where the map of an event lives under a folder or fsspec prefix."""
    return f"{base_url.rstrip('/')}/IceCube-{int(event_id)}{SUFFIX}"


def skymap_bytes(table: Table) -> bytes:
    """The FITS file: an empty primary HDU and the UNIQ/PROBDENSITY binary table."""
    columns = Table(
        {
            "UNIQ": np.asarray(table["UNIQ"], np.int64),
            "PROBDENSITY": table["PROBDENSITY"],
        }
    )
    hdu = fits.table_to_hdu(columns)
    hdu.header.extend(header_cards(table.meta))
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()


def write_skymap(table: Table, url: str) -> str:
    """Store a map at `url` (a path or fsspec URL); returns the URL."""
    _put(url, skymap_bytes(table))
    return url


def read_skymap(url: str) -> Table:
    """The map at `url`, header keys in `meta`; FileNotFoundError when there is none."""
    fs, path = fsspec.core.url_to_fs(url)
    data = fs.cat_file(path)
    with fits.open(io.BytesIO(data)) as hdus:
        table = Table.read(hdus[1])
    table["UNIQ"] = np.asarray(table["UNIQ"], np.int64)
    return table


def plot_skymap(table: Table, png_url: str, *, title: str | None = None) -> str:
    """Draw a map (see `skymap.render_png`) to a PNG at a path or fsspec URL."""
    _put(png_url, render_png(table, title=title))
    return png_url


def _put(url: str, data: bytes) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        partial.replace(target)
    else:
        fs.pipe_file(path, data)
