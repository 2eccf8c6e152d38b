#!/usr/bin/env bash
# Installs what the Spark peer benchmark needs, outside the repo and idempotently:
#   ~/.cache/paystream/spark-venv   a Python venv with pyspark from PyPI
#   ~/.cache/paystream/spark-jars   the Kafka connector and its runtime dependencies from Maven Central
# A second run checks what is there and downloads nothing. Java 17 must be on PATH (Spark 4 needs 17+).
#
#   bash bench/peers/spark/setup.sh          # install / verify
#   bash bench/peers/spark/setup.sh --print  # print the venv python and the jar list (used by run.ts)
set -euo pipefail

# 4.0.0, not the newest 4.0.x: the Maven Central this machine reaches has
# spark-token-provider-kafka-0-10_2.13 (a compile dependency of the connector) only at
# 4.0.0, 4.1.1 and 4.2.0, and connector, token provider and pyspark must be the same version.
SPARK_VERSION="${PAYSTREAM_SPARK_VERSION:-4.0.0}"
SCALA="2.13"
CACHE="${PAYSTREAM_CACHE:-$HOME/.cache/paystream}"
VENV="$CACHE/spark-venv"
JARS="$CACHE/spark-jars"
MAVEN="https://repo1.maven.org/maven2"

# group:artifact:version, the connector's compile-scope dependencies (from its POM) that
# pyspark's own jars/ does not already ship (lz4, snappy, zstd, slf4j, jsr305 and
# scala-parallel-collections it does). kafka-clients is the version the 4.0.0 POM names.
ARTIFACTS=(
  "org.apache.spark:spark-sql-kafka-0-10_${SCALA}:${SPARK_VERSION}"
  "org.apache.spark:spark-token-provider-kafka-0-10_${SCALA}:${SPARK_VERSION}"
  "org.apache.kafka:kafka-clients:3.9.0"
  "org.apache.commons:commons-pool2:2.12.0"
)

jar_name() { local IFS=:; set -- $1; echo "$2-$3.jar"; }

if [[ "${1:-}" == "--print" ]]; then
  echo "python=$VENV/bin/python"
  for a in "${ARTIFACTS[@]}"; do echo "jar=$JARS/$(jar_name "$a")"; done
  exit 0
fi

command -v java >/dev/null || { echo "setup.sh: java not found (Spark ${SPARK_VERSION} needs Java 17+)" >&2; exit 1; }
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
  echo "setup.sh: Java $java_major found; Spark ${SPARK_VERSION} needs 17 or newer" >&2
  exit 1
fi

mkdir -p "$CACHE" "$JARS"

# ---------------------------------------------------------------- Python venv + pyspark
have=""
if [[ -x "$VENV/bin/python" ]]; then
  have=$("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)' 2>/dev/null || true)
fi
if [[ "$have" != "$SPARK_VERSION" ]]; then
  echo "setup.sh: installing pyspark ${SPARK_VERSION} into $VENV (about 450 MB, once)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "pyspark==${SPARK_VERSION}"
else
  echo "setup.sh: pyspark ${SPARK_VERSION} already in $VENV"
fi

# ---------------------------------------------------------------- Kafka connector jars
for a in "${ARTIFACTS[@]}"; do
  IFS=: read -r group artifact version <<<"$a"
  file="$artifact-$version.jar"
  url="$MAVEN/${group//.//}/$artifact/$version/$file"
  if [[ -s "$JARS/$file" && -s "$JARS/$file.sha1" ]] &&
    [[ "$(sha1sum "$JARS/$file" | cut -d' ' -f1)" == "$(cut -d' ' -f1 <"$JARS/$file.sha1")" ]]; then
    continue
  fi
  echo "setup.sh: fetching $file from Maven Central"
  curl -fsSL --retry 3 -o "$JARS/$file.sha1.part" "$url.sha1"
  curl -fsSL --retry 3 -o "$JARS/$file.part" "$url"
  want=$(cut -d' ' -f1 <"$JARS/$file.sha1.part")
  got=$(sha1sum "$JARS/$file.part" | cut -d' ' -f1)
  if [[ "$want" != "$got" ]]; then
    rm -f "$JARS/$file.part" "$JARS/$file.sha1.part"
    echo "setup.sh: checksum mismatch for $file (want $want, got $got)" >&2
    exit 1
  fi
  mv "$JARS/$file.part" "$JARS/$file"
  mv "$JARS/$file.sha1.part" "$JARS/$file.sha1"
done

"$VENV/bin/python" -c 'import pyspark; print("setup.sh: ready: pyspark", pyspark.__version__)'
echo "setup.sh: jars in $JARS: $(cd "$JARS" && ls ./*.jar | xargs -n1 basename | tr '\n' ' ')"
