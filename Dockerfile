# Serving image: torch-free (onnxruntime + tokenizers). Only what serving runs is copied:
# router/ and tierwise/ (the CLI's `serve`), never training/, labeling/ or eval/.
# Same install and start steps as the README: scripts/bootstrap serve, then scripts/serve.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/bootstrap scripts/serve scripts/
COPY router/ router/
COPY tierwise/ tierwise/
RUN scripts/bootstrap serve
COPY models/ models/
# Two volumes the unprivileged user writes: var/ (the call log and the workers' shared sessions
# and budgets, var/state.db) and models/ (bundles: mount a folder there and `tierwise deploy
# --models-dir` it, or drop a bundle in and move DEFAULT; every worker follows DEFAULT within
# ROUTER_RELOAD_POLL_S, no rebuild, no restart).
RUN mkdir -p var && chown -R nobody var models
VOLUME ["/app/var", "/app/models"]
ENV TIERWISE_HOST=0.0.0.0 TIERWISE_PORT=8000 TIERWISE_WORKERS=2 ROUTER_MODEL_DIR=/app/models \
    ROUTER_SESSION_URL=sqlite:///var/state.db ROUTER_RELOAD_POLL_S=5
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
USER nobody
CMD ["scripts/serve"]
