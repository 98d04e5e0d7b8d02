# syntax=docker/dockerfile:1
# Portcullis container image.
#   docker build -t portcullis .
#   docker run -p 8080:8080 -p 9090:9090 -v "$PWD/policies:/etc/portcullis/policies:ro" portcullis
# The policy directory is watched: edit a mounted file (or let Kubernetes swap a ConfigMap) and the
# new policy is validated and swapped in without a restart; an invalid one is refused and logged.

ARG NODE_IMAGE=node:24-slim

# ── build: compile TypeScript to dist/ ───────────────────────────────────────────────────────────
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ── runtime: production dependencies, dist/ and the example policies only ──────────────────────
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Reverse-proxy policy sidecar: API keys, JWTs, YAML RBAC, Redis-backed limits, circuit breakers and hash-chained audit in front of any HTTP upstream." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/portcullis/portcullis" \
      org.opencontainers.image.documentation="https://github.com/portcullis/portcullis/tree/main/docs"

ENV NODE_ENV=production \
    LOG_LEVEL=info
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script of a dependency runs in the image; the cache is dropped so
# the layer holds only node_modules.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY policies ./policies
# The default policy location; mount your own directory over it (read-only is fine).
COPY policies /etc/portcullis/policies

# Files stay owned by root and are only read: the process cannot rewrite its own code or policy,
# and the container runs with a read-only root filesystem.
USER node
EXPOSE 8080 9090

# slim has no curl: ask the admin listener with Node itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('node:http').get('http://127.0.0.1:9090/healthz', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]

ENTRYPOINT ["node", "--no-memory-reducer", "dist/main.js"]
CMD ["serve", "--policy", "/etc/portcullis/policies", "--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:9090"]
