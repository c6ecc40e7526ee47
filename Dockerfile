# One image for every service: `yokeflow-intervention service <name>` picks the role.

# Stage 1: the dashboard, built from the committed lockfile.
FROM node:20-bookworm-slim AS web
WORKDIR /web
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
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY services/ services/
COPY cli/ cli/
RUN /venv/bin/pip install --no-cache-dir --no-deps .

# Stage 3: the runtime, without build tools, as an unprivileged user.
FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 yokeflow
COPY --from=build /venv /venv
COPY --from=web /web/dist /app/web/dist
WORKDIR /app
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 YOKEFLOW_API_HOST=0.0.0.0
USER yokeflow
ENTRYPOINT ["yokeflow-intervention"]
CMD ["--help"]
