"""Where on the sky an event came from: equatorial coordinates, containment, sky maps."""
