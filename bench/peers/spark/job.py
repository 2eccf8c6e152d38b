"""
The deployment guide's Spark Structured Streaming processor, written for the Spark peer
benchmark (bench/peers/spark/run.ts starts it; README.md beside this file says what it
does, what was tuned and how it differs from paystream's processor).

Two streaming queries in one Spark application (local mode, one JVM), both reading the
paystream transactions topic (JSON values, key = account_id):

  rows    Kafka -> parse + validate -> 10 s watermark on event time
          -> dropDuplicatesWithinWatermark(transaction_id) -> mask -> parquet (append)
  alerts  Kafka -> the same parse, watermark and dedup -> 60 s windows sliding 5 s per
          account (count, sum, ...) -> rule thresholds -> JSON alerts to a Kafka topic (update)

A streaming query has one sink, so the two outputs are two queries; each reads the topic
and keeps its own dedup state (that is Spark's cost of two sinks, and it is measured).

Progress goes to stdout as one JSON object per line, prefixed "PSPARK ", for the driver:
  {"ev": "started", ...}           both queries started
  {"ev": "progress", "query": ...} one per micro-batch (StreamingQueryProgress, condensed)
  {"ev": "terminated", ...}        a query stopped (with the error, if any)
Everything Spark logs goes to stderr.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQueryListener

# The thresholds of paystream's default rules (config/rules.default.yaml).
VELOCITY_COUNT = 10  # transactions in 60 s
AMOUNT_SUM = "10000.00"  # sum of amounts in 60 s
CARD_TESTING_SMALL_COUNT = 5  # small charges in the window...
CARD_TESTING_SMALL_MAX = "2.00"  # ...each at most this...
CARD_TESTING_LARGE_MIN = "100.00"  # ...then a charge at least this large
MERCHANT_SPREAD = 6  # distinct merchants in 60 s
GEO_COUNTRIES = 3  # distinct countries in 60 s (the country half of geo_velocity)

SEVERITY = {
    "velocity_count": "high",
    "amount_sum": "medium",
    "card_testing": "critical",
    "merchant_spread": "medium",
    "geo_velocity": "high",
}

TX_SCHEMA = T.StructType(
    [
        T.StructField("schema_version", T.LongType()),
        T.StructField("transaction_id", T.StringType()),
        T.StructField("account_id", T.StringType()),
        T.StructField("card_number", T.StringType()),
        T.StructField("cardholder_name", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("ip_address", T.StringType()),
        T.StructField("device_id", T.StringType()),
        # A decimal string ("12.34") or a number: read as text, parsed exactly below.
        T.StructField("amount", T.StringType()),
        T.StructField("currency", T.StringType()),
        T.StructField("merchant_id", T.StringType()),
        T.StructField("merchant_category", T.StringType()),
        T.StructField("country", T.StringType()),
        T.StructField("city", T.StringType()),
        T.StructField("lat", T.DoubleType()),
        T.StructField("lon", T.DoubleType()),
        T.StructField("event_time", T.StringType()),
    ]
)


def emit(obj):
    sys.stdout.write("PSPARK " + json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def epoch_ms(iso):
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Progress(StreamingQueryListener):
    """Condensed StreamingQueryProgress per micro-batch, for the driver."""

    def onQueryStarted(self, event):
        emit({"ev": "query_started", "query": event.name, "t": int(time.time() * 1000)})

    def onQueryProgress(self, event):
        p = event.progress
        ends = {}
        for s in p.sources:
            if s.endOffset:
                for topic, parts in json.loads(s.endOffset).items():
                    ends[topic] = sum(int(v) for v in parts.values())
        state = [
            {
                "op": op.operatorName,
                "rows": op.numRowsTotal,
                "updated": op.numRowsUpdated,
                "removed": op.numRowsRemoved,
                "dropped": op.numRowsDroppedByWatermark,
                "memBytes": op.memoryUsedBytes,
            }
            for op in p.stateOperators
        ]
        emit(
            {
                "ev": "progress",
                "query": p.name,
                "batch": p.batchId,
                "start": epoch_ms(p.timestamp),
                "ms": p.batchDuration,
                "rows": p.numInputRows,
                "durations": p.durationMs,
                "watermark": p.eventTime.get("watermark"),
                "end": ends,
                "state": state,
                "t": int(time.time() * 1000),
            }
        )

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        emit({"ev": "terminated", "id": str(event.id), "error": event.exception})


def parse_args():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--bootstrap", required=True)
    a.add_argument("--topic", required=True, help="transactions topic")
    a.add_argument("--alerts-topic", required=True)
    a.add_argument("--rows-dir", required=True, help="parquet output directory (masked rows)")
    a.add_argument("--checkpoint-dir", required=True)
    a.add_argument("--jars", required=True, help="comma-separated connector jars (setup.sh --print)")
    a.add_argument("--driver-memory", default="4g")
    a.add_argument("--cores", type=int, default=2, help="local[N]")
    a.add_argument("--shuffle-partitions", type=int, default=2)
    a.add_argument("--max-offsets-per-trigger", type=int, default=250_000)
    a.add_argument("--trigger", default="0 seconds", help="processing-time trigger interval")
    a.add_argument("--state-store", choices=["rocksdb", "hdfs"], default="rocksdb")
    a.add_argument("--starting-offsets", default="earliest")
    a.add_argument("--agg-fallback-threshold", type=int, default=10_000_000)
    a.add_argument("--track-state-rows", action="store_true", help="RocksDB row counts (a get per put)")
    a.add_argument(
        "--distinct-rules",
        action="store_true",
        help="also merchant_spread and the country half of geo_velocity (collect_set: slow)",
    )
    a.add_argument("--no-changelog", dest="changelog", action="store_false")
    a.add_argument("--queries", default="rows,alerts", help="which of the two queries to run")
    return a.parse_args()


def build_session(args):
    b = (
        SparkSession.builder.appName("paystream-spark-peer")
        .master(f"local[{args.cores}]")
        .config("spark.jars", args.jars)
        # One JVM is driver and executor in local mode: this is the whole heap.
        .config("spark.driver.memory", args.driver_memory)
        # 200 by default: 200 state-store partitions (RocksDB instances) per stateful
        # operator and 200 tasks per shuffle for 2 cores. Sized to the cores instead.
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        # The web UI keeps a listener on every task and stage: nothing here reads it.
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "false")
        # Per-batch state commit as a changelog upload instead of a RocksDB checkpoint.
        .config(
            "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled",
            "true" if args.changelog else "false",
        )
        .config("spark.sql.streaming.checkpointLocation", args.checkpoint_dir)
        # With --distinct-rules, collect_set makes the window aggregation an
        # ObjectHashAggregate, which falls back to sorting once a task holds more than 128
        # groups (the default); a micro-batch of 100K transactions holds ~1.2M (account,
        # window) groups. Keep it hash-based.
        .config("spark.sql.objectHashAggregate.sortBased.fallbackThreshold", str(args.agg_fallback_threshold))
    )
    if args.state_store == "rocksdb":
        b = b.config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        # Counting rows costs a RocksDB get before every put; the row count is only a metric.
        b = b.config(
            "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows",
            "true" if args.track_state_rows else "false",
        )
    return b.getOrCreate()


def transactions(spark, args):
    """Kafka -> parsed, validated transactions with a 10 s watermark, deduplicated."""
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", args.starting_offsets)
        .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        # Spark asks the broker for the partition's offset range after every poll: poll
        # more per request than the client's default 500 records / 1 MiB per partition.
        .option("kafka.max.poll.records", "20000")
        .option("kafka.max.partition.fetch.bytes", str(16 << 20))
        .option("kafka.fetch.max.bytes", str(64 << 20))
        .load()
    )
    # Parsed once, inside a one-element inline(): a plain select + where lets the optimizer
    # push the validation filter below the projection and prune from_json per field, which
    # parses every record's JSON once per field the filter reads (~10 times: seen in
    # explain()). A generator is a barrier the filter is not pushed through.
    t = raw.select(
        F.inline(
            F.array(
                F.struct(
                    F.from_json(F.col("value").cast("string"), TX_SCHEMA).alias("t"),
                    F.col("timestamp").alias("kafka_ts"),
                    F.col("partition").alias("kafka_partition"),
                    F.col("offset").alias("kafka_offset"),
                )
            )
        )
    ).select("t.*", "kafka_ts", "kafka_partition", "kafka_offset")
    t = t.withColumn("amount_dec", F.col("amount").try_cast("decimal(18,2)")).withColumn(
        "event_ts", F.try_to_timestamp(F.col("event_time"))
    )
    # Validation (paystream sends these to its DLQ with a reason; here they are dropped).
    # The event-time bounds are paystream's (src/contracts/transaction.ts): at most 5 min
    # ahead of processing time, at most 7 days old. Without the upper bound one record
    # stamped in the future drags the watermark forward and every honest record behind it
    # becomes "late" and is dropped by the dedup and the windows (the collector sends such
    # records among its malformed ones).
    now = F.current_timestamp()
    valid = t.where(
        (F.col("event_ts") <= now + F.expr("INTERVAL 5 MINUTES"))
        & (F.col("event_ts") >= now - F.expr("INTERVAL 7 DAYS"))
        & (F.col("schema_version") == 1)
        & F.col("transaction_id").isNotNull()
        & F.col("account_id").isNotNull()
        & F.col("merchant_id").isNotNull()
        & F.col("event_ts").isNotNull()
        & (F.col("amount_dec") > 0)
        & F.col("card_number").rlike("^[0-9]{12,19}$")
        & F.col("currency").rlike("^[A-Z]{3}$")
    )
    return valid.withWatermark("event_ts", "10 seconds").dropDuplicatesWithinWatermark(["transaction_id"])


def masked_rows(tx, salt):
    """The warehouse row: no raw card, name, email, IP or device (salted SHA-256 tokens)."""

    def token(kind, c):
        return F.sha2(F.concat(F.lit(salt + kind + ":"), F.col(c)), 256)

    pan = F.col("card_number")
    return tx.select(
        "transaction_id",
        "account_id",
        "schema_version",
        F.substring(pan, 1, 6).alias("card_bin"),
        F.substring(pan, -4, 4).alias("card_last4"),
        token("card", "card_number").alias("card_token"),
        token("name", "cardholder_name").alias("name_token"),
        token("email", "email").alias("email_token"),
        token("ip", "ip_address").alias("ip_token"),
        token("device", "device_id").alias("device_token"),
        F.col("amount_dec").alias("amount"),
        (F.col("amount_dec") * 100).cast("long").alias("amount_minor"),
        "currency",
        "merchant_id",
        "merchant_category",
        "country",
        "city",
        F.round("lat", 2).alias("lat"),
        F.round("lon", 2).alias("lon"),
        "event_time",
        F.col("event_ts").alias("event_ts"),
        "kafka_partition",
        "kafka_offset",
        F.current_timestamp().alias("processed_at"),
    )


def alerts(tx, distinct_rules):
    """
    60 s windows sliding 5 s per account, the default rules' thresholds, one alert per rule
    and window. Every aggregation buffer is a fixed-width number (counts, sums in minor
    units, longs), so Spark runs a code-generated hash aggregate. A string in a buffer
    (max_by of a transaction id) would make it a sort-based aggregate, and collect_set
    (the distinct-merchant and distinct-country rules, --distinct-rules) an object hash
    aggregate that measured several times slower here; see README.md.
    """
    cents = lambda s: int(round(float(s) * 100))  # noqa: E731
    amount = F.col("amount_minor")
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.sum(amount).alias("total_minor"),
        F.count_if(amount <= F.lit(cents(CARD_TESTING_SMALL_MAX))).alias("small_n"),
        # The newest transaction's amount (by event time): card_testing's "then a large one".
        F.max_by(amount, "event_ts").alias("last_minor"),
        F.max("event_ts").alias("last_event_ts"),
        # The alert points at the transaction that arrived last in the window (the one whose
        # arrival made the window re-evaluate) by its Kafka partition and offset in one long,
        # so that the aggregation buffer stays fixed-width. Its append time starts the
        # latency clock.
        F.max_by("source_pos", "kafka_ts").alias("source_pos"),
    ]
    if distinct_rules:
        aggs += [
            F.size(F.collect_set("merchant_id")).alias("merchants"),
            F.size(F.collect_set("country")).alias("countries"),
        ]
    src = tx.withColumn("amount_minor", (F.col("amount_dec") * 100).cast("long")).withColumn(
        "source_pos", F.col("kafka_partition").cast("long") * F.lit(1 << 40) + F.col("kafka_offset")
    )
    w = src.groupBy(F.window("event_ts", "60 seconds", "5 seconds"), "account_id").agg(*aggs)
    checks = [
        F.when(F.col("n") >= VELOCITY_COUNT, F.lit("velocity_count")),
        F.when(F.col("total_minor") >= cents(AMOUNT_SUM), F.lit("amount_sum")),
        F.when(
            (F.col("small_n") >= CARD_TESTING_SMALL_COUNT) & (F.col("last_minor") >= cents(CARD_TESTING_LARGE_MIN)),
            F.lit("card_testing"),
        ),
    ]
    figures = [
        F.col("n").alias("count"),
        F.format_number(F.col("total_minor") / 100, 2).alias("sum"),
        F.col("total_minor").alias("sumMinor"),
        F.col("small_n").alias("smallCount"),
        F.col("window.start").cast("string").alias("windowStart"),
        F.col("window.end").cast("string").alias("windowEnd"),
    ]
    if distinct_rules:
        checks += [
            F.when(F.col("merchants") >= MERCHANT_SPREAD, F.lit("merchant_spread")),
            F.when(F.col("countries") >= GEO_COUNTRIES, F.lit("geo_velocity")),
        ]
        figures += [F.col("merchants").alias("distinctMerchants"), F.col("countries").alias("distinctCountries")]
    fired = F.filter(F.array(*checks), lambda r: r.isNotNull())
    sev = F.create_map(*[x for kv in SEVERITY.items() for x in (F.lit(kv[0]), F.lit(kv[1]))])
    a = w.select("*", F.explode(fired).alias("rule"))
    value = F.to_json(
        F.struct(
            F.sha2(F.concat_ws("|", "account_id", "rule", F.col("window.start").cast("string")), 256)
            .substr(1, 32)
            .alias("alert_id"),
            F.col("rule").alias("rule_id"),
            F.col("rule").alias("rule_type"),
            sev[F.col("rule")].alias("severity"),
            "account_id",
            F.shiftright(F.col("source_pos"), 40).cast("int").alias("source_partition"),
            (F.col("source_pos") % F.lit(1 << 40)).alias("source_offset"),
            F.date_format("last_event_ts", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias("event_time"),
            F.date_format(F.current_timestamp(), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias("detected_at"),
            F.struct(*figures).alias("figures"),
        )
    )
    return a.select(F.col("account_id").alias("key"), value.alias("value"))


def main():
    args = parse_args()
    salt = os.environ.get("SPARK_PEER_SALT", "")
    if len(salt) < 16:
        sys.exit("job.py: set SPARK_PEER_SALT (>= 16 characters): the masking tokens are salted hashes")
    spark = build_session(args)
    spark.sparkContext.setLogLevel("WARN")
    if os.environ.get("SPARK_PEER_DEBUG_LOGGER"):
        jvm = spark._jvm
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            os.environ["SPARK_PEER_DEBUG_LOGGER"], jvm.org.apache.logging.log4j.Level.DEBUG
        )
    spark.streams.addListener(Progress())

    which = set(args.queries.split(","))
    trigger = {"processingTime": args.trigger}
    queries = []
    if "rows" in which:
        queries.append(start_rows(spark, args, salt, trigger))
    if "alerts" in which:
        queries.append(start_alerts(spark, args, trigger))
    emit({"ev": "started", "t": int(time.time() * 1000), "spark": spark.version, "queries": sorted(which)})

    stopping = {"now": False}

    def on_term(_sig, _frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        while not stopping["now"]:
            if spark.streams.awaitAnyTermination(1):
                break
    except Exception as err:  # noqa: BLE001 - a failed query: report it and stop the other
        emit({"ev": "failed", "error": str(err)[:2000]})
        raise
    finally:
        # spark.stop() can hang after a SIGTERM: whatever happens, be gone in 20 s.
        watchdog = threading.Timer(20.0, lambda: os._exit(0))
        watchdog.daemon = True
        watchdog.start()
        for q in queries:
            try:
                q.stop()
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
        emit({"ev": "stopped", "t": int(time.time() * 1000)})
        spark.stop()


def start_rows(spark, args, salt, trigger):
    return (
        masked_rows(transactions(spark, args), salt)
        .writeStream.queryName("rows")
        .format("parquet")
        .option("path", args.rows_dir)
        .option("checkpointLocation", os.path.join(args.checkpoint_dir, "rows"))
        .outputMode("append")
        .trigger(**trigger)
        .start()
    )


def start_alerts(spark, args, trigger):
    return (
        alerts(transactions(spark, args), args.distinct_rules)
        .writeStream.queryName("alerts")
        .format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("topic", args.alerts_topic)
        .option("checkpointLocation", os.path.join(args.checkpoint_dir, "alerts"))
        # Alerts while the window is open (update), not once it closes 70 s later (append).
        .outputMode("update")
        .trigger(**trigger)
        .start()
    )


if __name__ == "__main__":
    main()
