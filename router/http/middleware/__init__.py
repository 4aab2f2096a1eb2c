"""Pure-ASGI middleware, one per module; router.http.app.middleware() lists them in order."""
