"""The HTTP layer: FastAPI app (router.http.app.create_app), its routes, the Anthropic gateway,
the runs API, roll-out and shadow models, Prometheus metrics, middleware and the call log."""
