# taskchat: a slim image, locked dependencies, a non-root user, a health check.
#   docker build -t taskchat .
#   docker run -p 8000:8000 -e DATABASE_URL=… -e DATABASE_DIRECT_URL=… -e JWT_SECRET=… taskchat
# The start logic is docker/entrypoint.sh (the tests run it outside a container).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    ENVIRONMENT=production

# the runtime dependencies, pinned by requirements.lock, in a layer of their own
WORKDIR /app
COPY pyproject.toml requirements.lock ./
RUN python -m venv /venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /data --create-home taskchat

# the working directory holds what is local to a container: the SQLite file when no
# DATABASE_URL is given, the development secret when no JWT_SECRET is
USER taskchat
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
