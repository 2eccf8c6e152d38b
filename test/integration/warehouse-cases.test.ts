/**
 * fraud_cases (migrations 002, 003: status columns and their guards) and
 * fraud_alerts.rule_set_version on DuckDB and PostgreSQL: one test body run for both, each on
 * a fresh database.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { DuckDbWarehouse } from "../../src/adapters/warehouse/duckdb.ts";
import { PostgresWarehouse } from "../../src/adapters/warehouse/postgres-sink.ts";
import type { Alert } from "../../src/contracts/alert.ts";
import type { FraudCase } from "../../src/contracts/case.ts";
import { applyStatus, fileAlert } from "../../src/core/cases.ts";
import { services, uniqueName } from "../helpers/services.ts";

const tmp = mkdtempSync(join(tmpdir(), "paystream-whc-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 2, 1, 12);

function alert(id: string, rule: string, t: number, version?: number): Alert {
  return {
    alertId: id,
    ruleId: rule,
    ruleType: "velocity_count",
    severity: rule === "big" ? "critical" : "medium",
    accountId: "acc-9",
    transactionId: `tx-${id}`,
    eventTimeMs: t,
    detectedAtMs: t + 1,
    figures: { count: 5 },
    ...(version === undefined ? {} : { ruleSetVersion: version }),
  };
}

type Wh = DuckDbWarehouse | PostgresWarehouse;

const backends: [string, () => Promise<Wh>][] = [
  ["duckdb", () => DuckDbWarehouse.open(join(tmp, `${uniqueName("c")}.duckdb`))],
  [
    "postgres",
    () => PostgresWarehouse.open(services.postgres, { schema: uniqueName("whc").replaceAll("-", "_") }),
  ],
];

for (const [name, open] of backends) {
  describe(`fraud_cases on ${name}`, () => {
    it("upserts by case_id: a replay rewrites, an older state never overwrites a newer one", async () => {
      const wh = await open();
      try {
        const one = fileAlert(undefined, alert("c1", "velocity", T0, 3), 60_000).case;
        const two = fileAlert(one, alert("c2", "big", T0 + 1000, 3), 60_000).case;
        await wh.writeCases([one]);
        await wh.writeCases([one, two]); // the same case twice in one write: the latest wins
        await wh.writeCases([two]); // replay
        await wh.writeCases([one]); // an older state arriving late
        const counts = await wh.countByKey("fraud_cases", ["c1", "missing"]);
        assert.deepEqual([...counts], [["c1", 1]]);
        let row = await wh.getCase("c1");
        assert.equal(row?.hit_count, 2);
        assert.equal(row?.severity, "critical");
        assert.deepEqual(JSON.parse(String(row?.alert_ids)), ["c1", "c2"]);
        assert.deepEqual(JSON.parse(String(row?.rule_ids)), ["velocity", "big"]);
        assert.equal(row?.first_seen, T0);
        assert.equal(row?.last_seen, T0 + 1000);
        const resolved: FraudCase = applyStatus(two, { status: "resolved_fraud", by: "ana", atMs: T0 });
        await wh.writeCases([resolved]);
        row = await wh.getCase("c1");
        assert.equal(row?.status, "resolved_fraud");
      } finally {
        await wh.close();
      }
    });

    it("status columns: a status change lands; filing and status writes race without losing either", async () => {
      const wh = await open();
      try {
        const id = uniqueName("s1");
        const one = fileAlert(undefined, alert(id, "velocity", T0), 60_000).case;
        const two = fileAlert(one, alert(`${id}-2`, "big", T0 + 1000), 60_000).case;
        const three = fileAlert(two, alert(`${id}-3`, "velocity", T0 + 2000), 60_000).case;
        const acked = applyStatus(two, { status: "acknowledged", by: "ana", atMs: T0 + 10 });
        const resolved = applyStatus(acked, {
          status: "resolved_fraud",
          by: "bo",
          atMs: T0 + 20,
          note: "customer confirmed, DOB 1980-02-03",
        });
        await wh.writeCases([one]);
        let row = await wh.getCase(id);
        assert.deepEqual([row?.status, row?.status_by, row?.status_at], ["open", null, null]);
        assert.deepEqual(JSON.parse(String(row?.status_history)), []);

        // The status sync writes the analyst's change (its copy has two hits).
        await wh.writeCases([resolved]);
        row = await wh.getCase(id);
        assert.deepEqual(
          [row?.status, row?.status_by, row?.status_at, row?.hit_count],
          ["resolved_fraud", "bo", T0 + 20, 2],
        );
        assert.deepEqual(JSON.parse(String(row?.status_history)), [
          { status: "acknowledged", by: "ana", at: new Date(T0 + 10).toISOString() },
          { status: "resolved_fraud", by: "bo", at: new Date(T0 + 20).toISOString() },
        ]);
        assert.doesNotMatch(JSON.stringify(row), /customer confirmed|1980/);

        // Filing writes computed before the change: more hits (never changed) and the same
        // hits (acknowledged, older): the hits are taken, the newer status stays.
        await wh.writeCases([three]);
        await wh.writeCases([acked]);
        row = await wh.getCase(id);
        assert.deepEqual(
          [row?.status, row?.status_by, row?.status_at, row?.hit_count],
          ["resolved_fraud", "bo", T0 + 20, 3],
        );
        assert.equal(row?.last_seen, T0 + 2000);
        assert.deepEqual(JSON.parse(String(row?.alert_ids)), [id, `${id}-2`, `${id}-3`]);

        // A later status change synced from a copy with fewer hits never shrinks them.
        const reopened = applyStatus(resolved, { status: "open", by: "cy", atMs: T0 + 30 });
        await wh.writeCases([reopened]);
        row = await wh.getCase(id);
        assert.deepEqual(
          [row?.status, row?.status_by, row?.status_at, row?.hit_count],
          ["open", "cy", T0 + 30, 3],
        );
        assert.equal(JSON.parse(String(row?.status_history)).length, 3);

        // Replaying every write, in any order and in one batch, changes nothing but updated_at.
        const { updated_at: _, ...settled } = row ?? {};
        for (const batch of [[one, resolved, three, acked, reopened], [reopened, one], [three], [acked]]) {
          await wh.writeCases(batch);
          const { updated_at: __, ...again } = (await wh.getCase(id)) ?? {};
          assert.deepEqual(again, settled);
        }
        assert.deepEqual([...(await wh.countByKey("fraud_cases", [id]))], [[id, 1]]);
      } finally {
        await wh.close();
      }
    });

    it("fraud_alerts carries rule_set_version (NULL for an unversioned alert)", async () => {
      const wh = await open();
      try {
        await wh.writeAlerts([alert("v1", "velocity", T0, 7), alert("v2", "velocity", T0)]);
        assert.equal((await wh.getAlert("v1"))?.rule_set_version, 7);
        assert.equal((await wh.getAlert("v2"))?.rule_set_version, null);
        assert.equal((await wh.tableColumns("fraud_alerts")).at(-1), "rule_set_version");
      } finally {
        await wh.close();
      }
    });
  });
}
