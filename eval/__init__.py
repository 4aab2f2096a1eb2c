"""Offline evaluation: held-out metrics, baselines and reports for a router bundle."""
