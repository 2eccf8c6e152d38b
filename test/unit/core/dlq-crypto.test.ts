/**
 * core/dlq-crypto.ts: the sealed original of a DLQ record (AES-256-GCM, node:crypto). It
 * opens only with the key it names and only as the entry it was written for; every other
 * case is a typed failure, never an exception and never wrong bytes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DlqRawEnvelope } from "../../../src/contracts/dlq.ts";
import {
  DlqKey,
  DlqKeyring,
  defaultDlqKeyId,
  isDlqKeyId,
  parseDlqKeyHex,
  type RawBinding,
} from "../../../src/core/dlq-crypto.ts";
import { ConfigError } from "../../../src/core/errors.ts";

const HEX = "a1".repeat(32);
const key = new DlqKey(parseDlqKeyHex(HEX), "2026-q1");
const at: RawBinding = { sourceTopic: "payments.transactions", sourcePartition: 7, sourceOffset: 1234n };
const original = { key: "acct-42", value: Buffer.from('{"card_number":"4111111111111111"}') };

describe("DLQ key", () => {
  it("takes exactly 64 hex digits and never quotes them in an error", () => {
    assert.equal(parseDlqKeyHex(HEX).byteLength, 32);
    for (const bad of ["", "a1".repeat(31), "a1".repeat(33), `${"a1".repeat(31)}zz`, "secret-passphrase"]) {
      assert.throws(
        () => parseDlqKeyHex(bad),
        (err: unknown) => err instanceof ConfigError && (bad === "" || !err.message.includes(bad)),
      );
    }
    assert.throws(() => new DlqKey(Buffer.alloc(16)), ConfigError);
    assert.throws(() => new DlqKey(Buffer.alloc(32), "has space"), ConfigError);
  });

  it("has a default id: a short hash, stable per key, different across keys, not the key", () => {
    const bytes = parseDlqKeyHex(HEX);
    const id = defaultDlqKeyId(bytes);
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.equal(new DlqKey(bytes).id, id);
    assert.notEqual(defaultDlqKeyId(Buffer.alloc(32, 2)), id);
    assert.ok(!HEX.includes(id));
    assert.ok(isDlqKeyId(id));
  });
});

describe("seal and open", () => {
  it("round-trips key and bytes, with a fresh IV every time", () => {
    const a = key.seal(original, at);
    const b = key.seal(original, at);
    assert.notEqual(a, b, "random IV");
    const bytes = Buffer.from(a, "base64");
    assert.equal(bytes[0], DlqRawEnvelope.version);
    assert.ok(!bytes.includes(original.value), "no plaintext in the envelope");
    const opened = new DlqKeyring([key]).open(a, "2026-q1", at);
    assert.ok(opened.ok);
    assert.equal(opened.record.key, "acct-42");
    assert.deepEqual(opened.record.value, original.value);
  });

  it("keeps 'no key' apart from an empty key, and takes bytes that are not UTF-8", () => {
    const ring = new DlqKeyring([key]);
    const none = ring.open(key.seal({ key: undefined, value: Buffer.from([0xff, 0x00]) }, at), key.id, at);
    assert.ok(none.ok);
    assert.equal(none.record.key, undefined);
    assert.deepEqual(none.record.value, Buffer.from([0xff, 0x00]));
    const empty = ring.open(key.seal({ key: "", value: Buffer.alloc(0) }, at), key.id, at);
    assert.ok(empty.ok);
    assert.equal(empty.record.key, "");
    assert.equal(empty.record.value.byteLength, 0);
  });

  it("fails authentication when any byte is changed", () => {
    const sealed = Buffer.from(key.seal(original, at), "base64");
    const ring = new DlqKeyring([key]);
    for (const i of [1, 13, 20, 29, sealed.byteLength - 1]) {
      const t = Buffer.from(sealed);
      t[i]! ^= 0x01;
      const r = ring.open(t.toString("base64"), key.id, at);
      assert.ok(!r.ok && r.failure === "auth_failed", `byte ${i}`);
    }
    const cut = ring.open(sealed.subarray(0, sealed.byteLength - 1).toString("base64"), key.id, at);
    assert.ok(!cut.ok && cut.failure === "auth_failed");
  });

  it("fails authentication as another entry (wrong AAD): other topic, partition or offset", () => {
    const sealed = key.seal(original, at);
    const ring = new DlqKeyring([key]);
    for (const other of [
      { ...at, sourceTopic: "other" },
      { ...at, sourcePartition: 8 },
      { ...at, sourceOffset: 1235n },
    ]) {
      const r = ring.open(sealed, key.id, other);
      assert.ok(
        !r.ok && r.failure === "auth_failed",
        JSON.stringify(other, (_k, v) => String(v)),
      );
    }
  });

  it("reports a key id it does not hold, and another key under the same id as an auth failure", () => {
    const sealed = key.seal(original, at);
    const other = new DlqKeyring([new DlqKey(Buffer.alloc(32, 9), "2026-q2")]);
    const r = other.open(sealed, "2026-q1", at);
    assert.ok(!r.ok && r.failure === "wrong_key_id");
    assert.match(r.detail, /2026-q1.*2026-q2/);
    const impostor = new DlqKeyring([new DlqKey(Buffer.alloc(32, 9), "2026-q1")]);
    const s = impostor.open(sealed, "2026-q1", at);
    assert.ok(!s.ok && s.failure === "auth_failed");
    // Relabelled with another id of a key the ring holds: the id is authenticated too.
    const both = new DlqKeyring([key, new DlqKey(parseDlqKeyHex(HEX), "alias")]);
    const relabelled = both.open(sealed, "alias", at);
    assert.ok(!relabelled.ok && relabelled.failure === "auth_failed");
  });

  it("opens old entries after a rotation with the key their id names", () => {
    const old = new DlqKey(Buffer.alloc(32, 1), "old");
    const current = new DlqKey(Buffer.alloc(32, 2), "new");
    const ring = new DlqKeyring([current, old]);
    assert.ok(ring.open(old.seal(original, at), "old", at).ok);
    assert.ok(ring.open(current.seal(original, at), "new", at).ok);
    assert.throws(() => new DlqKeyring([old, new DlqKey(Buffer.alloc(32, 3), "old")]), ConfigError);
  });

  it("calls anything else malformed", () => {
    const ring = new DlqKeyring([key]);
    for (const junk of ["", "AAAA", Buffer.from([2, ...Buffer.alloc(40)]).toString("base64")]) {
      const r = ring.open(junk, key.id, at);
      assert.ok(!r.ok && r.failure === "malformed");
    }
  });
});
