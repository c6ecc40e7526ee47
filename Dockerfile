# One image for every service: `yokeflow-intervention service <name>` picks the role.

# Stage 1: the dashboard, built from the committed lockfile into the API's package folder.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# Stage 2: the Python packages, pinned.
FROM python:3.11-slim-bookworm AS build
WORKDIR /app
RUN python -m venv /venv
COPY requirements.lock ./
RUN /venv/bin/pip install --no-cache-dir -r requirements.lock
COPY agent/ agent/
COPY pyproject.toml README.md ./
COPY yokeflow_intervention/__init__.py yokeflow_intervention/
COPY shared/ shared/
COPY services/ services/
COPY cli/ cli/
# The dashboard ships as package data of the API: built into services/api/dashboard.
COPY --from=web /src/services/api/dashboard/ services/api/dashboard/
RUN /venv/bin/pip install --no-cache-dir --no-deps ./agent .

# Stage 3: the runtime, without build tools, as an unprivileged user.
FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 yokeflow
COPY --from=build /venv /venv
WORKDIR /app
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 YOKEFLOW_API_HOST=0.0.0.0
USER yokeflow
ENTRYPOINT ["yokeflow-intervention"]
CMD ["--help"]
