"""Where on the sky an event came from: equatorial coordinates, containment, sky maps.

Importing the package pins astropy to offline operation, process-wide: the Earth-orientation
(IERS) and leap-second tables come from the installed `astropy-iers-data` package, never from
the network. A worker must not stall on, or fail for, a download in the middle of a stream, and
the machines it runs on may have no route out. Times past the installed tables still convert:
astropy warns and extrapolates (UT1-UTC and polar motion are below a second and an arcsecond, a
few thousandths of a degree at most), where its default would raise.
"""

from __future__ import annotations

from astropy.utils import data as _astropy_data  # type: ignore[import-untyped]
from astropy.utils import iers as _iers

_iers.conf.auto_download = False
_iers.conf.iers_degraded_accuracy = "warn"
_astropy_data.conf.allow_internet = False
