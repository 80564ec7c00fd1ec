# syntax=docker/dockerfile:1
# Small, non-root image with the same entry points as a local install:
#   docker run IMAGE serve | worker | db upgrade | erp-standin | status ...
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/*.whl

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    INVSYNC_LOG_FORMAT=json \
    INVSYNC_HOST=0.0.0.0 \
    INVSYNC_PORT=8000
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home invsync
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels newstore-inventory-sync && rm -rf /wheels
WORKDIR /app
USER invsync
EXPOSE 8000
# The port `serve` listens on (INVSYNC_PORT), whatever it is set to.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD python -c "import os,sys,urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INVSYNC_PORT', '8000'), timeout=2).status != 200)"
ENTRYPOINT ["inventory-sync"]
CMD ["serve"]
