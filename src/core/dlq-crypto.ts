/**
 * The sealed original of a DLQ record (the raw_enc header, format in
 * src/contracts/dlq.ts DlqRawEnvelope): AES-256-GCM from node:crypto with a random 12-byte
 * IV per record and the record's source coordinates as additional authenticated data, so a
 * sealed copy opens only as the entry it was written for.
 *
 * Keys come from a secret (64 hex characters); each has an id that travels with every copy
 * it seals (raw_key_id), so after a rotation the redriving side picks the right key, and
 * says "wrong key id" instead of "corrupt" when it does not hold it. The default id is a
 * short hash of the key: stable for a key, different across keys, and useless for guessing
 * one (a 256-bit key cannot be searched from 64 bits of its hash).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { DlqRawEnvelope } from "../contracts/dlq.ts";
import { ConfigError } from "./errors.ts";

const { version: VERSION, ivBytes: IV_BYTES, tagBytes: TAG_BYTES, keyBytes: KEY_BYTES } = DlqRawEnvelope;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
const NO_KEY = 0xffffffff;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The id of a key when none is configured: 16 hex digits of SHA-256 over a label and the key. */
export function defaultDlqKeyId(key: Uint8Array): string {
  return createHash("sha256").update("paystream/dlq-key-id/v1\0").update(key).digest("hex").slice(0, 16);
}

/** A key id as configured: letters, digits, '.', '_', '-', 1 to 64 characters. */
export function isDlqKeyId(id: string): boolean {
  return KEY_ID.test(id);
}

/**
 * A DLQ key from its configured text: exactly 64 hex digits (32 bytes). Errors never quote
 * the value: it is a secret.
 */
export function parseDlqKeyHex(text: string, field = "dlq.key"): Buffer {
  const s = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(s)) {
    throw new ConfigError(field, "must be 64 hex digits (32 bytes; e.g. openssl rand -hex 32)");
  }
  return Buffer.from(s, "hex");
}

export class DlqKey {
  readonly id: string;
  readonly #key: KeyObject;

  constructor(key: Uint8Array, id: string = defaultDlqKeyId(key)) {
    if (!(key instanceof Uint8Array) || key.byteLength !== KEY_BYTES) {
      throw new ConfigError("dlq.key", `must be ${KEY_BYTES} bytes`);
    }
    if (!isDlqKeyId(id)) throw new ConfigError("dlq.keyId", "must be 1-64 letters, digits, '.', '_' or '-'");
    this.id = id;
    this.#key = createSecretKey(key);
  }

  /** A throwaway key (demo mode): nothing it seals can be opened once the process is gone. */
  static random(): DlqKey {
    return new DlqKey(randomBytes(KEY_BYTES));
  }

  /** Seals a record: base64 of version | IV | tag | AES-256-GCM(key length | key | value). */
  seal(raw: RawRecord, binding: RawBinding): string {
    const keyBytes = raw.key === undefined ? undefined : Buffer.from(raw.key, "utf8");
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(keyBytes === undefined ? NO_KEY : keyBytes.byteLength);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(this.id, binding));
    const parts = keyBytes ? [prefix, keyBytes, raw.value] : [prefix, raw.value];
    const body = Buffer.concat([...parts.map((p) => cipher.update(p)), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]).toString("base64");
  }

  /** Opens an envelope this key sealed for `binding`. Never throws. */
  open(envelope: string, binding: RawBinding): OpenResult {
    const bytes = Buffer.from(envelope, "base64");
    if (bytes.byteLength < HEADER_BYTES + 4 || bytes[0] !== VERSION) {
      return { ok: false, failure: "malformed", detail: "raw_enc is not a version-1 envelope" };
    }
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    const tag = bytes.subarray(1 + IV_BYTES, HEADER_BYTES);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(this.id, binding));
      decipher.setAuthTag(tag);
      plain = Buffer.concat([decipher.update(bytes.subarray(HEADER_BYTES)), decipher.final()]);
    } catch {
      return {
        ok: false,
        failure: "auth_failed",
        detail:
          "the sealed copy does not authenticate for this entry (tampered, moved from another entry, or another key under this id)",
      };
    }
    const keyLength = plain.readUInt32BE(0);
    if (keyLength === NO_KEY) return { ok: true, record: { key: undefined, value: plain.subarray(4) } };
    if (4 + keyLength > plain.byteLength) {
      return { ok: false, failure: "malformed", detail: "sealed key length beyond the plaintext" };
    }
    return {
      ok: true,
      record: {
        key: plain.subarray(4, 4 + keyLength).toString("utf8"),
        value: plain.subarray(4 + keyLength),
      },
    };
  }
}

/** Where the refused record sat: what the sealed copy is bound to. */
export interface RawBinding {
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: bigint | string;
}

/** The original record: its Kafka key and value bytes. */
export interface RawRecord {
  key: string | undefined;
  value: Buffer;
}

function aad(keyId: string, b: RawBinding): Buffer {
  return Buffer.from(
    JSON.stringify([
      DlqRawEnvelope.aadLabel,
      VERSION,
      keyId,
      b.sourceTopic,
      b.sourcePartition,
      String(b.sourceOffset),
    ]),
    "utf8",
  );
}

export type OpenFailure =
  /** No key with the entry's raw_key_id is configured. */
  | "wrong_key_id"
  /** Authentication failed: tampered, moved to another entry, or sealed by another key with the same id. */
  | "auth_failed"
  /** Not an envelope of a known version. */
  | "malformed";

export type OpenResult =
  | { ok: true; record: RawRecord }
  | { ok: false; failure: OpenFailure; detail: string };

/** The keys a redrive may open copies with: the current one and those rotated out. */
export class DlqKeyring {
  readonly #byId = new Map<string, DlqKey>();

  constructor(keys: readonly DlqKey[]) {
    for (const k of keys) {
      if (this.#byId.has(k.id)) throw new ConfigError("dlq.keyId", `key id ${k.id} is given to two keys`);
      this.#byId.set(k.id, k);
    }
  }

  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Opens a raw_enc header sealed under keyId for the entry at `binding`. Never throws. */
  open(envelope: string, keyId: string, binding: RawBinding): OpenResult {
    const key = this.#byId.get(keyId);
    if (!key) {
      return {
        ok: false,
        failure: "wrong_key_id",
        detail: `sealed with key id ${JSON.stringify(keyId)}; configured: ${this.ids.join(", ") || "none"}`,
      };
    }
    return key.open(envelope, binding);
  }
}
