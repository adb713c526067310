// Drives the amsplay console in Debian's Chromium (puppeteer-core) as an operator would, and
// reports what happened as one JSON line. Run by tests/integration/browsers.rs:
//
//   node tests/browser/console.mjs spec.json
//
// spec.json: { "url": console URL, "in_a": [asset names], "in_b": [asset names],
//   "replicate": name of an asset in A only, "play": name of a streamed asset,
//   "screenshot": PNG path or null }
// Steps: the page loads; every name is listed under its datacenter; the replication row of
// "replicate" says "in A only", its Replicate button is clicked, the row turns "identical";
// "play" plays through the front door; the page's Stop button stops dc-a mid-stream; the video
// keeps playing and the health panel shows the switch; Heal.

import fs from 'node:fs';
import { launch } from './chromium.mjs';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { steps: [], consoleErrors: [], failed: [] };
const step = (s) => out.steps.push(s);

const browser = await launch();
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 1000 });
page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
page.on('pageerror', (e) => out.consoleErrors.push('page: ' + e.message));
page.on('requestfailed', (r) => {
  // The event stream is cut when the page closes: not a failure.
  if (!r.url().endsWith('/api/events')) out.failed.push(`${r.method()} ${r.url()} ${r.failure()?.errorText}`);
});
page.on('response', (r) => { if (r.status() >= 400) out.failed.push(`${r.request().method()} ${r.url()} HTTP ${r.status()}`); });

const wait = async (what, fn, seconds, ...args) => {
  try {
    await page.waitForFunction(fn, { timeout: seconds * 1000, polling: 100 }, ...args);
    step(what);
    return true;
  } catch {
    out.error = `timed out after ${seconds} s: ${what}`;
    return false;
  }
};

async function run() {
  await page.goto(spec.url, { waitUntil: 'load' });
  if (!await wait('live', () => document.querySelector('#live')?.textContent === 'live', 15)) return;
  const listed = (i, names) => names.every((n) => [...document.querySelectorAll(`#dc-${i} .asset .name`)].some((e) => e.textContent === n));
  if (!await wait('assets listed', listed, 20, 0, spec.in_a) || !await wait('replicas listed', listed, 20, 1, spec.in_b)) return;

  // Replication: "in A only", Replicate, "identical".
  const row_state = (name) => {
    const row = [...document.querySelectorAll('#replication tr')].find((r) => r.cells[0]?.textContent === name);
    return row?.querySelector('.state')?.textContent;
  };
  if (!await wait('in A only', (n, f) => eval(f)(n) === 'in A only', 20, spec.replicate, row_state.toString())) return;
  await page.evaluate((name) => {
    const row = [...document.querySelectorAll('#replication tr')].find((r) => r.cells[0]?.textContent === name);
    row.querySelector('button.replicate').click();
  }, spec.replicate);
  if (!await wait('identical', (n, f) => eval(f)(n) === 'identical', 60, spec.replicate, row_state.toString())) return;

  // The player through the front door.
  await page.evaluate(() => {
    const v = document.getElementById('video');
    window.stalls = []; window.waitingAt = null; window.playingSeen = false;
    v.addEventListener('playing', () => {
      window.playingSeen = true;
      if (window.waitingAt !== null) { window.stalls.push(performance.now() - window.waitingAt); window.waitingAt = null; }
    });
    v.addEventListener('waiting', () => { if (window.playingSeen && !v.seeking) window.waitingAt = performance.now(); });
  });
  const value = await page.evaluate((name) => [...document.querySelectorAll('#player-select option')].find((o) => o.textContent === name)?.value, spec.play);
  if (!value) { out.error = `no player choice named ${spec.play}`; return; }
  await page.select('#player-select', value);
  if (!await wait('playing', () => document.getElementById('video').currentTime >= 1.5, 30)) return;
  out.before = await page.evaluate(() => document.getElementById('video').currentTime);

  // The drill from the page: stop dc-a; the video plays on, the health panel shows the switch.
  await page.click('button[data-dc="dc-a"][data-action="stop"]');
  const t0 = out.before;
  const moved = await wait('played on', (t) => {
    const v = document.getElementById('video');
    return v.ended || v.currentTime >= t + 3;
  }, 30, t0);
  await wait('switched', () => {
    const a = document.querySelector('#health .origin[data-dc="dc-a"] .state')?.textContent;
    return Number(document.getElementById('switches')?.textContent) >= 1 && (a === 'down' || a === 'ejected');
  }, 20);
  out.after = await page.evaluate(() => document.getElementById('video').currentTime);
  out.stalls = await page.evaluate(() => window.stalls.concat(window.waitingAt === null ? [] : [performance.now() - window.waitingAt]));
  out.byDc = await page.evaluate(() => window.consolePlayer.byDc);
  out.health = await page.evaluate(() => document.querySelector('#health').innerText);
  if (spec.screenshot) await page.screenshot({ path: spec.screenshot, fullPage: true });
  await page.click('button[data-dc="dc-a"][data-action="heal"]');
  await wait('healed', () => !document.querySelector('#drill')?.innerText.includes('origin down'), 10);
  out.ok = moved;
}

try {
  await run();
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
