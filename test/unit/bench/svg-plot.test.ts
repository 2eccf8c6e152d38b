/** The long-run benchmarks' SVG line-chart writer (bench/lib/svg-plot.ts). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeXml, niceTicks, renderSvg, tickLabel } from "../../../bench/lib/svg-plot.ts";

describe("niceTicks", () => {
  it("covers the range with round steps", () => {
    assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(niceTicks(0, 97, 4), [0, 25, 50, 75, 100]);
    assert.deepEqual(niceTicks(0.2, 0.9, 4), [0.2, 0.4, 0.6, 0.8, 1]);
  });

  it("widens a flat range and swaps a reversed one", () => {
    assert.ok(niceTicks(5, 5).length >= 2);
    assert.deepEqual(niceTicks(0, 0).at(0)! < 0, true);
    assert.deepEqual(niceTicks(10, 0, 5), niceTicks(0, 10, 5));
  });

  it("gives nothing for non-finite bounds", () => {
    assert.deepEqual(niceTicks(0, Number.NaN), []);
  });
});

describe("tickLabel and escapeXml", () => {
  it("writes compact numbers", () => {
    assert.equal(tickLabel(1500), "1.5K");
    assert.equal(tickLabel(2_000_000), "2M");
    assert.equal(tickLabel(0.25), "0.25");
    assert.equal(tickLabel(12), "12");
  });

  it("escapes markup", () => {
    assert.equal(escapeXml(`a<b & "c" 'd'>`), "a&#60;b &#38; &#34;c&#34; &#39;d&#39;&#62;");
  });
});

describe("renderSvg", () => {
  const svg = renderSvg({
    title: "spike <test>",
    subtitle: "2 CPUs",
    xLabel: "seconds since start",
    panels: [
      {
        title: "Rate",
        unit: "tx/s",
        lines: [
          {
            label: "in",
            points: [
              [0, 1000],
              [10, 5000],
              [20, 1000],
            ],
          },
          {
            label: "out",
            points: [
              [0, 900],
              [10, null],
              [20, 1000],
            ],
            dashed: true,
          },
        ],
      },
      {
        title: "Replicas",
        unit: "replicas",
        lines: [
          {
            label: "replicas",
            points: [
              [0, 1],
              [20, 4],
            ],
          },
        ],
      },
      { title: "Empty", unit: "ms", lines: [{ label: "p99", points: [] }] },
    ],
    markers: [{ x: 10, label: "spike" }],
  });

  it("is one well-formed svg element with the texts escaped", () => {
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.includes("spike &#60;test&#62;"));
    assert.ok(!svg.includes("<test>"));
  });

  it("draws a panel per series group with title, unit, legend and x label", () => {
    for (const text of [
      "Rate",
      "Replicas",
      "Empty",
      "tx/s",
      "replicas",
      ">in<",
      ">out<",
      ">p99<",
      "seconds since start",
      ">spike<",
    ]) {
      assert.ok(svg.includes(text), `missing ${text}`);
    }
    assert.equal((svg.match(/<rect x="78"/g) ?? []).length, 3, "one frame per panel");
  });

  it("breaks a line at a null and skips a line without points", () => {
    const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1]!);
    assert.equal(paths.length, 3);
    const out = paths[1]!;
    assert.equal((out.match(/M/g) ?? []).length, 2);
    assert.ok(!out.includes("L"));
    assert.ok(svg.includes('stroke-dasharray="6 3"'));
  });

  it("puts every coordinate inside the picture", () => {
    const [, w, h] = /width="(\d+)" height="(\d+)"/.exec(svg)!.map(Number);
    for (const m of svg.matchAll(/[ML](-?[\d.]+) (-?[\d.]+)/g)) {
      const x = Number(m[1]);
      const y = Number(m[2]);
      assert.ok(x >= 0 && x <= w! && y >= 0 && y <= h!, `${x},${y} outside ${w}×${h}`);
    }
  });
});
