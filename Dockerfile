# One image for every Postern role: `postern control-plane`, `sidecar`,
# `gateway`, and the injected init container's `redirect`.
#   docker build -t postern .
#   docker run --rm postern --help

# Build: all dependencies, the bundle (dist/postern.js and its chunks).
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: postinstall would bundle sources not copied yet; the bundle is the next step.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node build/bundle.ts

# Production dependencies only (the bundle leaves the Kubernetes client,
# OpenTelemetry and pino to node_modules).
FROM node:24-slim AS deps
WORKDIR /opt/postern
COPY package.json package-lock.json ./
COPY build/postinstall.mjs build/postinstall.mjs
RUN npm ci --omit=dev --no-audit --no-fund

# The image: Node, iptables for `postern redirect`, the bundle and the
# production dependencies; no npm, no compiler, no sources. Non-root by
# default (the sidecar's UID, 1337); only the redirect init container runs
# as root, with NET_ADMIN and NET_RAW (the injection says so).
FROM node:24-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends iptables \
  && rm -rf /var/lib/apt/lists/* \
  && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
     /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
  && groupadd --gid 1337 postern && useradd --uid 1337 --gid 1337 --no-create-home postern
WORKDIR /opt/postern
COPY --from=deps /opt/postern/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 1337:1337
ENTRYPOINT ["node", "--disable-warning=DEP0060", "/opt/postern/dist/postern.js"]
