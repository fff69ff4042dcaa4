// Bundles the console (src/) into OUTDIR: index.html, console.css, favicon.svg, console.js.
//
//   node build.mjs OUTDIR
//
// The output depends on the sources and the exact npm versions in
// package-lock.json only (no timestamps, no hashes in names, no source map
// paths), so rebuilding gives the same bytes: a test rebuilds into a
// temporary directory and compares with the files shipped in the Python
// package (puregrpc_streaming/web_console/static/).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  write: false,
  outfile: "console.js",
  logLevel: "warning",
});
mkdirSync(outdir, { recursive: true });
writeFileSync(join(outdir, "console.js"), result.outputFiles[0].contents);
for (const name of ["index.html", "console.css", "favicon.svg"]) {
  writeFileSync(join(outdir, name), readFileSync(join(here, "src", name)));
}
console.log(`built ${outdir}: index.html, console.css, favicon.svg, console.js (${result.outputFiles[0].contents.length} bytes)`);
