#!/usr/bin/env bash
# Copies into the Helm chart the files it renders but does not own, so that monitoring/ and
# config/ stay the one source of truth: Helm reads only files inside the chart directory.
#
#   monitoring/prometheus/rules/*.yml         -> deploy/helm/paystream/files/prometheus/  (PrometheusRule)
#   monitoring/grafana/paystream.json         -> deploy/helm/paystream/files/grafana/     (dashboard ConfigMap)
#   monitoring/alertmanager/alertmanager.yml  -> deploy/helm/paystream/files/alertmanager/ (Alertmanager Secret)
#   config/rules.default.yaml                 -> deploy/helm/paystream/files/             (fraud rules ConfigMap)
#
# Run it after changing any of those; test/integration/deploy.test.ts fails while a copy differs.
# Usage: scripts/sync-chart.sh [--check]   (--check: change nothing, exit 1 naming stale copies)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="$ROOT/deploy/helm/paystream/files"
CHECK=false
case "${1:-}" in
  "") ;;
  --check) CHECK=true ;;
  *) echo "usage: scripts/sync-chart.sh [--check]" >&2; exit 2 ;;
esac

stale=0
# copy SRC DEST: byte for byte, or with --check report the difference.
# A symlink would do on a checkout, but helm warns about it on every run and packaging or Windows
# checkouts do not keep it: the chart holds real copies.
copy() {
  if [ ! -L "$2" ] && cmp -s "$1" "$2"; then return; fi
  if $CHECK; then
    if [ -L "$2" ]; then
      echo "stale: ${2#"$ROOT"/} is a symlink, not a copy of ${1#"$ROOT"/}"
    elif [ -e "$2" ]; then
      echo "stale: ${2#"$ROOT"/} differs from ${1#"$ROOT"/}"
    else
      echo "missing: ${2#"$ROOT"/} (a copy of ${1#"$ROOT"/})"
    fi
    stale=1
  else
    mkdir -p "$(dirname "$2")"
    rm -f -- "$2"
    cp "$1" "$2"
    echo "copied ${1#"$ROOT"/} -> ${2#"$ROOT"/}"
  fi
}

shopt -s nullglob
rules=("$ROOT"/monitoring/prometheus/rules/*.yml)
[ ${#rules[@]} -gt 0 ] || { echo "no rule files in monitoring/prometheus/rules" >&2; exit 1; }
for src in "${rules[@]}"; do copy "$src" "$FILES/prometheus/$(basename "$src")"; done
# A rule file removed from monitoring/ must not live on in the chart.
for dest in "$FILES"/prometheus/*; do
  [ -e "$ROOT/monitoring/prometheus/rules/$(basename "$dest")" ] && continue
  if $CHECK; then
    echo "stale: ${dest#"$ROOT"/} has no source in monitoring/prometheus/rules"
    stale=1
  else
    rm -- "$dest"
    echo "removed ${dest#"$ROOT"/}"
  fi
done
copy "$ROOT/monitoring/grafana/paystream.json" "$FILES/grafana/paystream.json"
copy "$ROOT/monitoring/alertmanager/alertmanager.yml" "$FILES/alertmanager/alertmanager.yml"
copy "$ROOT/config/rules.default.yaml" "$FILES/rules.default.yaml"

if [ "$stale" -ne 0 ]; then
  echo "run scripts/sync-chart.sh to update the chart's copies" >&2
  exit 1
fi
