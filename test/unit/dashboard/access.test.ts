/**
 * Who may read and write the dashboard (src/dashboard/server.ts, dashboardAccess): its own
 * credentials only, never the collector's token; which reads are protected for each kind of
 * credential. Over HTTP: test/integration/http-hostile.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isPaystreamError } from "../../../src/core/errors.ts";
import { dashboardAccess } from "../../../src/dashboard/server.ts";
import { hashBasicPassword, parseBasicCredential } from "../../../src/lib/http.ts";

const token = "dashboard-token-0123456789";
const basic = parseBasicCredential(hashBasicPassword("ops", "passphrase"));
const http = { host: "0.0.0.0" };
const auth = (over: Partial<Parameters<typeof dashboardAccess>[0]> = {}) => ({
  token: undefined,
  basic: undefined,
  openReads: false,
  insecureOpenApi: false,
  ...over,
});

describe("dashboard access", () => {
  it("refuses to start without its own credentials, naming both options", () => {
    assert.throws(
      () => dashboardAccess(auth(), http, false),
      (err: unknown) =>
        isPaystreamError(err) && /--auth-token/.test(err.message) && /--basic-auth/.test(err.message),
    );
  });

  it("protects the data reads with a token, everything but the probes with a Basic login only", () => {
    assert.deepEqual(dashboardAccess(auth({ token }), http, false).protectedReads, ["/api/"]);
    assert.deepEqual(dashboardAccess(auth({ token, basic }), http, false).protectedReads, ["/api/"]);
    assert.deepEqual(dashboardAccess(auth({ basic }), http, false).protectedReads, ["/"]);
    assert.deepEqual(dashboardAccess(auth({ token, openReads: true }), http, false).protectedReads, []);
  });

  it("is open in demo mode and with --insecure-open-api, and says which", () => {
    assert.equal(dashboardAccess(auth(), { host: "127.0.0.1" }, true).open, "demo");
    const open = dashboardAccess(auth({ insecureOpenApi: true }), http, false);
    assert.equal(open.open, "insecure-open-api");
    assert.deepEqual(open.protectedReads, []);
  });
});
