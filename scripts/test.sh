#!/usr/bin/env bash
# The whole test suite: static checks, unit tests (no servers) and integration tests against
# the real local Kafka, Redis, PostgreSQL and Prometheus, which this script starts (idempotent).
# One `node --test` run, so the closing summary counts every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NODE="./node_modules/.bin/node"
[ -x "$NODE" ] || { echo "run npm ci first (Node 24 is pinned as a devDependency)"; exit 1; }
echo "== node $("$NODE" --version)"
bash scripts/services.sh up
echo "== typecheck"
"$NODE" node_modules/typescript/bin/tsc --noEmit
echo "== lint"
node_modules/.bin/biome check .
echo "== tests (unit + integration)"
"$NODE" --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec \
  "test/unit/**/*.test.ts" "test/integration/**/*.test.ts"
