# perspective in a container: the server by default, every command by name.
#
#   docker build -t perspective .
#   docker run -d -p 8000:8000 perspective                         # the server on :8000 (GET /health)
#   docker run --rm -v "$PWD/photos:/data" perspective infer -d /data -o /data/scores.csv
#
# BASE is any image with Python 3.10+ and its venv module: python:3.11-slim from Docker Hub by
# default; docker/test.sh builds on a Debian base it makes with debootstrap. docker/pip/ may hold
# the build machine's pip settings (pip.conf, a CA bundle): used while building, left out of the image.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/perspective \
    PATH=/opt/perspective/bin:$PATH

COPY requirements.txt /src/
COPY docker/pip/ /tmp/pip/
# The pinned, tested versions (requirements.txt as constraints) of what the package needs; the test,
# documentation and benchmark tools listed there are not installed. This layer (7 GB with the CUDA torch) depends
# on requirements.txt alone, so a change to the code or the README rebuilds only what follows.
RUN python3 -m venv /opt/perspective \
    && if [ -f /tmp/pip/pip.conf ]; then export PIP_CONFIG_FILE=/tmp/pip/pip.conf; fi \
    && grep -v -e '^pytest' -e '^hypothesis' -e '^schemathesis' -e '^ruff' -e '^selenium' -e '^nbclient' \
       -e '^ipykernel' -e '^nbconvert' -e '^mkdocs' -e '^import-linter' -e '^pytorch-ood' /src/requirements.txt > /tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt

COPY pyproject.toml README.md /src/
COPY perspective /src/perspective
COPY trained_models /src/trained_models
RUN if [ -f /tmp/pip/pip.conf ]; then export PIP_CONFIG_FILE=/tmp/pip/pip.conf; fi \
    && pip install --no-deps /src \
    && rm -rf /src /tmp/pip /tmp/runtime.txt \
    && useradd --create-home --uid 1000 perspective

USER perspective
WORKDIR /home/perspective
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["perspective"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
