/** Processors found through a headless Service's DNS name, again on every reading. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseHostPort } from "../../../src/dashboard/config.ts";
import { dnsUpstreams } from "../../../src/dashboard/sources.ts";

describe("processor discovery by DNS", () => {
  it("reads every address the name resolves to, and follows replicas coming and going", async () => {
    let answer = ["10.0.0.2", "10.0.0.1"];
    const find = dnsUpstreams({ host: "paystream-processor", port: 9464 }, async () => answer);
    const first = await find();
    assert.deepEqual(
      first.map((u) => u.label),
      ["http://10.0.0.1:9464", "http://10.0.0.2:9464"],
    );
    answer = ["10.0.0.2", "10.0.0.3"];
    const second = await find();
    assert.deepEqual(
      second.map((u) => u.label),
      ["http://10.0.0.2:9464", "http://10.0.0.3:9464"],
    );
    assert.equal(second[0], first[1], "a replica that stays keeps its upstream");
  });

  it("turns a failed lookup into one upstream that reports why", async () => {
    const find = dnsUpstreams({ host: "nope.invalid", port: 9464 }, async () => {
      throw Object.assign(new Error("getaddrinfo ENOTFOUND nope.invalid"), { code: "ENOTFOUND" });
    });
    const [u, ...rest] = await find();
    assert.equal(rest.length, 0);
    const a = await u!.request("GET", "/status");
    assert.equal(a.status, 0);
    assert.match(a.error ?? "", /nope\.invalid:9464: ENOTFOUND/);
  });

  it("resolves a real name with the system resolver", async () => {
    const ups = await dnsUpstreams({ host: "localhost", port: 1 })();
    assert.ok(ups.length >= 1);
    assert.ok(
      ups.every((u) => /^http:\/\/(127\.0\.0\.1|\[::1\]):1$/.test(u.label)),
      ups.map((u) => u.label).join(),
    );
  });

  it("parses host:port and names what is wrong otherwise", () => {
    assert.deepEqual(parseHostPort("paystream-processor.payments.svc:9464"), {
      host: "paystream-processor.payments.svc",
      port: 9464,
    });
    assert.throws(() => parseHostPort("http://x:1"), /not host:port/);
    assert.throws(() => parseHostPort("x:0"), /not host:port/);
    assert.throws(() => parseHostPort("x"), /not host:port/);
  });
});
