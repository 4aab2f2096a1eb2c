# Serving image: torch-free (onnxruntime + tokenizers), the shipped default model included.
# Same install and start steps as the README: scripts/bootstrap serve, then scripts/serve.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY router/ router/
COPY training/ training/
COPY labeling/ labeling/
COPY eval/ eval/
COPY tierwise/ tierwise/
RUN scripts/bootstrap serve
COPY models/ models/
# The call log (var/calls.db, see scripts/serve) must be writable by the unprivileged user.
RUN mkdir -p var && chown nobody var
VOLUME /app/var
ENV TIERWISE_HOST=0.0.0.0 TIERWISE_PORT=8000 TIERWISE_WORKERS=2 ROUTER_MODEL_DIR=/app/models
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
USER nobody
CMD ["scripts/serve"]
