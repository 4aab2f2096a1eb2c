"""Retrain the router from labeled logs: validate, embed, fit per-tier heads, export ONNX, track."""
