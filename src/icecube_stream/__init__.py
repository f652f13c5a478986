"""Real-time neutrino-direction reconstruction for IceCube-style detector data."""

__version__ = "0.1.0"
