# One image for the api, the worker and the migrations; the command picks the role.
# GPU images: build with --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12 on a CUDA base (docs/models.md; k8s/overlays/gpu).
FROM node:20-bookworm-slim
ARG ONNXRUNTIME_NODE_INSTALL=skip
ENV ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL} NODE_ENV=production NX_DAEMON=false
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY apps apps
COPY libs libs
COPY tools/bench tools/bench
# npm workspaces: the lockfile names these too (test harness, end-to-end tests; nothing in them runs in the image)
COPY tools/platform tools/platform
COPY tools/e2e tools/e2e
COPY prisma prisma
COPY prisma.config.ts tsconfig.base.json ./
RUN npm ci --include=dev --no-audit --no-fund
COPY models models
USER node
CMD ["node", "-r", "@swc-node/register", "apps/api/src/main.ts"]
