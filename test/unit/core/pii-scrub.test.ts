/**
 * core/pii-scrub.ts: emails and IP addresses cut from free text (with pan.ts's card runs),
 * known fields found in text that is not JSON, and cuts that never leave half an address.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isIPv4,
  isIPv6,
  maskFieldsInText,
  scrubEmails,
  scrubIps,
  scrubText,
  scrubTruncated,
  truncateText,
} from "../../../src/core/pii-scrub.ts";

describe("scrubEmails", () => {
  it("cuts addresses wherever they stand, with or without a TLD", () => {
    assert.deepEqual(scrubEmails('{"email":"ada@example.com"}'), {
      text: '{"email":"[email]"}',
      redacted: 1,
    });
    assert.equal(scrubEmails("mail root@localhost. now").text, "mail [email]. now");
    assert.equal(scrubEmails("a.b+tag@sub.example.co.uk,x@y.z").text, "[email],[email]");
    assert.equal(scrubEmails("josé@exämple.de").text, "[email]");
    assert.equal(scrubEmails("o'brien@example.com").text, "[email]");
  });

  it("leaves an '@' without an address around it, and is linear on a text of '@'", () => {
    for (const s of ["@", "@@", "a@", "@b", "price @ 3", "x @ y"]) assert.equal(scrubEmails(s).text, s);
    const hostile = "@".repeat(200_000);
    const t0 = performance.now();
    assert.equal(scrubEmails(hostile).redacted, 0);
    const long = "a@".repeat(100_000);
    assert.ok(scrubEmails(long).redacted > 0);
    assert.ok(performance.now() - t0 < 2000, "linear");
  });
});

describe("scrubIps", () => {
  it("cuts IPv4 and IPv6 addresses, IPv4-mapped ones whole", () => {
    assert.equal(scrubIps("from 198.51.100.4:443").text, "from [ip]:443");
    assert.equal(scrubIps("2001:db8::1").text, "[ip]");
    assert.equal(scrubIps("[fe80::1]:8080 and ::1").text, "[[ip]]:8080 and [ip]");
    assert.equal(scrubIps("::ffff:192.0.2.1").text, "[ip]");
    assert.equal(scrubIps("2001:0db8:85a3:0000:0000:8a2e:0370:7334").text, "[ip]");
    assert.equal(scrubIps('"ip_address":"2001:DB8::A"').text, '"ip_address":"[ip]"');
  });

  it("leaves times, amounts, coordinates and MAC addresses alone", () => {
    for (const s of [
      "2026-11-25T10:00:00.123Z",
      "10:00:00",
      "12:34",
      "12.34",
      "48.8566,2.3522",
      "aa:bb:cc:dd:ee:ff",
      "1.2.3",
      "256.1.1.1",
    ]) {
      assert.equal(scrubIps(s).text, s, s);
    }
  });

  it("validates as RFC 4291 writes them", () => {
    assert.ok(isIPv4("0.0.0.0") && isIPv4("255.255.255.255"));
    assert.ok(!isIPv4("1.2.3.256") && !isIPv4("1.2.3") && !isIPv4("1..2.3"));
    assert.ok(isIPv6("::") && isIPv6("1:2:3:4:5:6:7:8") && isIPv6("1::8") && isIPv6("::1.2.3.4"));
    assert.ok(!isIPv6("1:2:3:4:5:6:7") && !isIPv6("1::2::3") && !isIPv6("12345::1") && !isIPv6("1.2.3.4::1"));
  });
});

describe("scrubText", () => {
  it("cuts cards (spaced, dashed, Luhn-invalid), emails and IPs in one pass", () => {
    const s = scrubText("card 4111 1111 1111 1111 / 4111-1111-1111-1112 by ada@example.com at 198.51.100.4");
    assert.equal(s.text, "card 4111 11** **** 1111 / 4111-11**-****-1112 by [email] at [ip]");
    assert.deepEqual([s.pans, s.emails, s.ips], [2, 1, 1]);
  });
});

describe("scrubTruncated and truncateText", () => {
  it("never leaves the readable front of a card or an email that straddles the cut", () => {
    const pan = "4111111111111111";
    for (let at = 1; at < pan.length; at++) {
      const text = `${"x".repeat(100 - at)}${pan} tail`;
      const s = scrubTruncated(text, 100);
      assert.ok(s.truncated);
      assert.ok(s.text.length <= 100);
      assert.ok(!s.text.includes(pan.slice(0, 7)), `cut at ${at}: ${s.text.slice(-20)}`);
    }
    const email = "someone.with.a.long.name@example.com";
    const s = scrubTruncated(`${"x".repeat(90)} ${email}`, 100);
    assert.ok(!s.text.includes("someone"), s.text);
  });

  it("does not split a surrogate pair", () => {
    assert.equal(truncateText("ab😀", 3), "ab");
    assert.equal(truncateText("ab😀", 4), "ab😀");
  });
});

describe("maskFieldsInText", () => {
  const fields = new Set(["cardholder_name", "email", "card_number"]);
  const mark = (f: string, v: string) => `<${f}:${v.length}>`;

  it("replaces string and bare values of known fields in text that does not parse", () => {
    const text =
      '{"cardholder_name" : "Ada \\"the\\" Lovelace", "email":"ada@example.com", "card_number": 4111111111111111, "x": "keep"';
    const r = maskFieldsInText(text, fields, mark);
    assert.equal(
      r.text,
      '{"cardholder_name" : "<cardholder_name:18>", "email":"<email:15>", "card_number": "<card_number:16>", "x": "keep"',
    );
    assert.deepEqual(r.masked, ["cardholder_name", "email", "card_number"]);
  });

  it("replaces a value cut off by the end of the text (a truncated record) to the end", () => {
    const r = maskFieldsInText('{"a":1,"cardholder_name":"Ada Lov', fields, mark);
    assert.equal(r.text, '{"a":1,"cardholder_name":"<cardholder_name:7>"');
  });

  it("reads escaped field names, leaves values of other fields and object values, reports every field", () => {
    const seen: string[] = [];
    const r = maskFieldsInText(
      '{"card\\u005fnumber":"4111","note":"cardholder_name","email":{"x":1},"transaction_id":"t-1"}',
      fields,
      mark,
      (h) => seen.push(`${h.field}=${h.value}`),
    );
    assert.equal(
      r.text,
      '{"card\\u005fnumber":"<card_number:4>","note":"cardholder_name","email":{"x":1},"transaction_id":"t-1"}',
    );
    assert.deepEqual(seen, ["card_number=4111", "note=cardholder_name", "x=1", "transaction_id=t-1"]);
  });

  it("is linear on hostile text", () => {
    const t0 = performance.now();
    maskFieldsInText('"'.repeat(200_000), fields, mark);
    maskFieldsInText('"email":'.repeat(50_000), fields, mark);
    maskFieldsInText('"a":"\\'.repeat(50_000), fields, mark);
    assert.ok(performance.now() - t0 < 2000);
  });
});
