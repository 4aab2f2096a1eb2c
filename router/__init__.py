"""tierwise serving core: embed a turn, score each tier's P(adequate), pick the cheapest adequate tier."""

__version__ = "0.1.0"
