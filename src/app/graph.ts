/**
 * The adapter graph of a pipeline process: the record log, the alert and dedup stores and
 * the warehouse, each real or embedded on its own (`paystream up --redis ...` runs the
 * embedded log against a real Redis). Opened in the order that fails fastest: the warehouse
 * URL is parsed before any connection, then Kafka, Redis, and the warehouse last (it may
 * run migrations).
 */
import type { InspectableWarehouse } from "../contracts/ports.ts";
import type { Logger } from "../lib/log.ts";
import { openRecordLog, type ProducerCompression, type RecordLog, type TopicNames } from "./log.ts";
import { type AlertStores, openAlertStores } from "./stores.ts";
import { checkWarehouseUrl, openWarehouseForWriting } from "./warehouse.ts";

export interface GraphSpec {
  clientId: string;
  /** Kafka bootstrap brokers; undefined: the embedded log. */
  brokers: readonly string[] | undefined;
  /** Redis URL; undefined: the embedded alert and dedup store. */
  redisUrl: string | undefined;
  /** Warehouse URL: duckdb:<path> | postgres://... | bigquery://project/dataset. */
  warehouse: string;
  /** The topics this process uses, created if missing. */
  topics: TopicNames;
  compression?: ProducerCompression;
}

export interface AdapterGraph {
  readonly log: RecordLog;
  readonly stores: AlertStores;
  readonly warehouse: InspectableWarehouse;
  /** Closes the producer, the warehouse, then the alert stores. */
  close(): Promise<void>;
}

export async function openGraph(spec: GraphSpec, log: Logger): Promise<AdapterGraph> {
  checkWarehouseUrl(spec.warehouse);
  const opened: { close(): Promise<void> }[] = [];
  try {
    const recordLog = await openRecordLog({
      brokers: spec.brokers,
      clientId: spec.clientId,
      topics: spec.topics,
      ...(spec.compression ? { compression: spec.compression } : {}),
    });
    opened.push(recordLog);
    const stores = await openAlertStores(spec.redisUrl, log);
    opened.push(stores);
    const warehouse = await openWarehouseForWriting(spec.warehouse, log);
    let closing: Promise<void> | undefined;
    return {
      log: recordLog,
      stores,
      warehouse,
      close: () => {
        closing ??= (async () => {
          await recordLog.close();
          await warehouse.close();
          await stores.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    // A later part failing leaves no connection of an earlier one behind.
    for (const o of opened.reverse()) await o.close().catch(() => {});
    throw err;
  }
}
