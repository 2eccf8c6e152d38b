import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connectRedis } from "../../src/adapters/redis/client.ts";
import { connectPostgres } from "../../src/adapters/warehouse/postgres.ts";
import { ErrorCodes, PaystreamError } from "../../src/core/errors.ts";
import { services, uniqueName } from "../helpers/services.ts";

describe("Redis and PostgreSQL through the project's adapters", () => {
  it("Redis answers PING and round-trips a pipelined write", async () => {
    const redis = await connectRedis({ url: services.redis });
    try {
      assert.equal(await redis.ping(), "PONG");
      const key = uniqueName("it:redis");
      const replies = await redis.multi().set(key, "v", { EX: 30 }).get(key).del(key).execAsPipeline();
      assert.deepEqual(replies, ["OK", "v", 1]);
    } finally {
      redis.destroy();
    }
  });

  it("PostgreSQL answers select 1 and runs DDL/DML", async () => {
    const pool = await connectPostgres(services.postgres);
    try {
      const r = await pool.query("select 1 as one");
      assert.equal(r.rows[0].one, 1);
      const table = uniqueName("it_pg").replaceAll("-", "_");
      await pool.query(`create table ${table} (id text primary key)`);
      await pool.query(`insert into ${table} values ($1) on conflict do nothing`, ["a"]);
      await pool.query(`insert into ${table} values ($1) on conflict do nothing`, ["a"]);
      const c = await pool.query(`select count(*)::int as n from ${table}`);
      assert.equal(c.rows[0].n, 1);
      await pool.query(`drop table ${table}`);
    } finally {
      await pool.end();
    }
  });

  it("an unreachable Redis gives a typed, retriable error naming the address", async () => {
    await assert.rejects(
      connectRedis({ url: "redis://127.0.0.1:1", connectTimeoutMs: 1000 }),
      (err: unknown) => {
        assert.ok(err instanceof PaystreamError);
        assert.equal(err.code, ErrorCodes.REDIS_UNAVAILABLE);
        assert.equal(err.retriable, true);
        assert.match(err.message, /127\.0\.0\.1:1/);
        return true;
      },
    );
  });

  it("an unreachable PostgreSQL gives a typed error without the password", async () => {
    await assert.rejects(connectPostgres("postgres://u:s3cret@127.0.0.1:1/db"), (err: unknown) => {
      assert.ok(err instanceof PaystreamError);
      assert.equal(err.code, ErrorCodes.WAREHOUSE_UNAVAILABLE);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
  });
});
