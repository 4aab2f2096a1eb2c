"""Errors of the replay; each names the file (and line) or value at fault and the valid choices."""

from router.errors import RouterError


class ReplayError(RouterError):
    """A replay input cannot be read: a missing path, an unknown format, an unreadable file."""
