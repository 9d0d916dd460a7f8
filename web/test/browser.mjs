// Drives headless Chromium (Debian's, or $CHROMIUM) through the viewer at a URL, choosing FILEs with
// its file picker as a user would (they join the served folder's), and prints, as JSON,
// what the page decoded: for each file its result, SHA-256 digests of its symbols and y_hat, or of an
// overfitted file's grids (as tests/golden/ pins them), and the decoder's RGBA and the canvas's, base64.
//     node test/browser.mjs URL [--screenshot FILE] [--pick FILE...]
// Used by tests/web/test_web.py and bench/web.py; it starts the browser itself and always closes it.

import { chromium } from "playwright-core";

const url = process.argv[2];
const shot = process.argv.indexOf("--screenshot");
const pick = process.argv.includes("--pick") ? process.argv.slice(process.argv.indexOf("--pick") + 1) : [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-sync", "--no-first-run", "--metrics-recording-only"],
  timeout: 60_000,
});
try {
  const page = await browser.newPage();
  const messages = [];
  page.on("pageerror", (e) => messages.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && messages.push(`console: ${m.text()}`));
  await page.goto(`${url}#test`);
  if (pick.length) {
    await page.waitForFunction(() => window.lrcodec?.listed);
    const before = await page.evaluate(() => document.querySelectorAll("figure").length);
    await page.setInputFiles("#pick", pick);
    await page.waitForFunction((n) => document.querySelectorAll("figure").length >= n, before + pick.length);
  }
  await page.waitForFunction(() => window.lrcodec?.listed && window.lrcodec.pending === 0, null, { timeout: 300_000 });
  const out = await page.evaluate(async () => {
    const b64 = (bytes) => {
      let s = "";
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const sha256 = async (...arrays) => {
      const bytes = new Uint8Array(arrays.reduce((n, a) => n + a.byteLength, 0));
      let at = 0;
      for (const a of arrays) { bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at); at += a.byteLength; }
      return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
    };
    const files = {};
    for (const figure of document.querySelectorAll("figure")) {
      const name = figure.querySelector(".name").textContent, result = window.lrcodec.results[name];
      const canvas = figure.querySelector("canvas");
      const { latents: l, ...rest } = result;
      files[name] = { ...rest, crossOriginIsolated: self.crossOriginIsolated };
      if (l?.grids) {  // grid_digest's int64s
        const { asInt64 } = await import(new URL("src/overfit.js", location.href).href);
        files[name].grids = await sha256(...l.grids.flatMap((g, n) => [asInt64(l.shapes[n]), asInt64(g)]));
      } else if (l) {
        files[name].symbols = await sha256(l.zSymbols, l.ySymbols, l.sigmaIndex);
        files[name].latents = await sha256(l.zSymbols, l.ySymbols, l.sigmaIndex, l.yHat);
      }
      if (canvas) {
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        files[name].canvas = b64(new Uint8Array(data.buffer));
        files[name].rgba = b64(new Uint8Array(result.rgba.buffer));
      }
    }
    return files;
  });
  if (shot > 0) await page.screenshot({ path: process.argv[shot + 1], fullPage: true });
  console.log(JSON.stringify({ files: out, messages }));
} finally {
  await browser.close();
}
