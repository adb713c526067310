// Plays streams in Debian's Chromium (driven by puppeteer-core; no browser download) with
// hls.js, dash.js (and its Smooth module) and Shaka, from a page on another origin, and reports
// what a viewer would have seen. Run by the integration tests (tests/integration/browsers.rs):
//
//   node tests/browser/play.mjs cases.json
//
// cases.json: { "interactive": bool, "cases": [{ "name", "player": "hls"|"dash"|"shaka",
//   "url", "auth": bool, "seek_end": bool, "fault": bool }] }
// Prints one JSON line per case: { "result": { name, played, ended, currentTime,
//   waitingAfterPlaying, errors, failed, heads, servedBy, media, withAuth, consoleErrors } }.
// Interactive: before each case it reads a line from stdin; a case with "fault" prints
// { "event": "mid", "case": name } once playing and reads a line before going on, so the
// caller can break a datacenter while the video plays.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { launch } from './chromium.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

const files = {
  '/': ['tests/browser/player.html', 'text/html'],
  '/lib/hls.min.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript'],
  '/lib/dash.all.min.js': ['node_modules/dashjs/dist/modern/umd/dash.all.min.js', 'text/javascript'],
  '/lib/dash.mss.min.js': ['node_modules/dashjs/dist/modern/umd/dash.mss.min.js', 'text/javascript'],
  '/lib/shaka-player.compiled.js': ['node_modules/shaka-player/dist/shaka-player.compiled.js', 'text/javascript'],
};
const server = http.createServer((req, res) => {
  const f = files[req.url];
  if (!f) { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': f[1] });
  fs.createReadStream(path.join(repo, f[0])).pipe(res);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const page_url = `http://127.0.0.1:${server.address().port}/`;

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next_line = async () => (await lines.next()).value;
const say = (v) => process.stdout.write(JSON.stringify(v) + '\n');

const browser = await launch();

async function run(c) {
  const page = await browser.newPage();
  const stream_host = new URL(c.url).host;
  const net = { failed: [], heads: [], servedBy: {}, media: 0, withAuth: 0, consoleErrors: [] };
  const ours = (r) => new URL(r.url()).host === stream_host;
  page.on('console', (m) => { if (m.type() === 'error') net.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => net.consoleErrors.push('page: ' + e.message));
  page.on('requestfailed', (r) => {
    if (ours(r)) net.failed.push({ method: r.method(), url: r.url(), error: r.failure()?.errorText });
  });
  page.on('response', (r) => {
    if (!ours(r)) return;
    const method = r.request().method();
    if (r.status() >= 400) net.failed.push({ method, url: r.url(), error: `HTTP ${r.status()}` });
    if (method === 'HEAD') net.heads.push({ url: r.url(), status: r.status() });
    const by = r.headers()['x-served-by'];
    if (by) net.servedBy[by] = (net.servedBy[by] || 0) + 1;
    if (method === 'GET') {
      net.media++;
      if (r.request().headers()['authorization']) net.withAuth++;
    }
  });
  await page.goto(page_url);
  await page.evaluate((p, u, a) => window.play(p, u, a), c.player, c.url, !!c.auth);
  const wait = async (what, seconds) => {
    try {
      await page.waitForFunction(what, { timeout: seconds * 1000, polling: 100 });
      return true;
    } catch {
      net.consoleErrors.push(`timed out after ${seconds} s waiting for ${what}`);
      return false;
    }
  };
  const video = "document.getElementById('v')";
  const played = await wait(`report.playing && ${video}.currentTime >= 1`, 30);
  if (played && c.fault) {
    say({ event: 'mid', case: c.name });
    await next_line();
  }
  if (played && c.seek_end) {
    await page.evaluate(() => { const v = document.getElementById('v'); v.currentTime = Math.max(0, v.duration - 1.5); });
  }
  if (played) await wait('report.ended', 40);
  const report = await page.evaluate(() => ({ ...window.report, currentTime: document.getElementById('v').currentTime, duration: document.getElementById('v').duration }));
  await page.close();
  return { name: c.name, played, ...report, ...net };
}

try {
  for (const c of spec.cases) {
    if (spec.interactive) await next_line();
    say({ result: await run(c) });
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(0);
