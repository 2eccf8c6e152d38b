/**
 * The UI bundle, built in memory with esbuild when the dashboard starts (~0.2 s): nothing is
 * written to disk (the container's root filesystem is read-only), nothing is downloaded, and
 * there is no build step to forget. React, react-dom and esbuild are production dependencies
 * for this reason. The bundle is minified with React in production mode.
 */
import { join } from "node:path";

export const UI_ENTRY = join(import.meta.dirname, "ui", "main.tsx");

export interface UiBundle {
  js: string;
  css: string;
  /** Files the bundle was built from (relative to the repo), for checks. */
  inputs: string[];
  buildMs: number;
}

export async function buildUi(): Promise<UiBundle> {
  const t0 = performance.now();
  // Loaded here, not at the top: `--help` and the API never need the bundler.
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: [UI_ENTRY],
    absWorkingDir: join(import.meta.dirname, "..", ".."),
    bundle: true,
    write: false,
    outdir: "dashboard-assets",
    entryNames: "app",
    format: "esm",
    target: ["es2022"],
    platform: "browser",
    jsx: "automatic",
    minify: true,
    legalComments: "none",
    define: { "process.env.NODE_ENV": '"production"' },
    metafile: true,
    logLevel: "silent",
  });
  const js = result.outputFiles.find((f) => f.path.endsWith(".js"))?.text;
  const css = result.outputFiles.find((f) => f.path.endsWith(".css"))?.text ?? "";
  if (js === undefined) throw new Error("esbuild produced no JavaScript for the dashboard");
  // The bundler's service process is not needed after this one build.
  await esbuild.stop();
  return { js, css, inputs: Object.keys(result.metafile.inputs), buildMs: performance.now() - t0 };
}
