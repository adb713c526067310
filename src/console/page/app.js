// The amsplay console: renders the overview the server pushes (server-sent events), plays an
// asset through the front door with hls.js, and sends the replicate and drill actions.
'use strict';

let overview = null;
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const size = (n) => n >= 1 << 30 ? (n / (1 << 30)).toFixed(1) + ' GiB' : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(0) + ' KiB' : n + ' B';
const short = (id) => String(id).replace(/^nb:\w+:UUID:/, '').slice(0, 8);

// Which datacenter an origin URL belongs to: the origin of its locators' streaming URLs.
function datacenterOf(url) {
  if (!overview || !url) return -1;
  const origin = (u) => { try { return new URL(u).origin; } catch { return ''; } };
  return overview.datacenters.findIndex((dc) =>
    dc.assets.some((a) => a.locators.some((l) => l.hls && origin(l.hls) === origin(url))));
}

function renderDatacenter(i) {
  const dc = overview.datacenters[i];
  const el = $(`#dc-${i}`);
  el.querySelector('h2').innerHTML = `datacenter ${i === 0 ? 'A' : 'B'} <small>${esc(dc.name)}</small>`;
  if (dc.error) {
    el.querySelector('.body').innerHTML = `<p class="error">cannot be reached: ${esc(dc.error)}</p>`;
    return;
  }
  // In B, a replica is named after A's container: say which asset of A it holds.
  const replicaOf = {};
  if (i === 1) for (const r of overview.replication) if (r.replica_id) replicaOf[r.replica_id] = r.name;
  const rows = dc.assets.map((a) => {
    const locs = a.locators.map((l) => l.hls
      ? `<div><span class="badge">${esc(l.type)}</span> <span class="mono">${esc(short(l.id))}</span> <a href="${esc(l.smooth)}">Smooth</a> · <a href="${esc(l.hls)}">HLS</a> · <a href="${esc(l.dash)}">DASH</a></div>`
      : `<div><span class="badge">${esc(l.type)}</span> <span class="mono">${esc(short(l.id))}</span></div>`).join('');
    const of = replicaOf[a.id] ? `<div class="muted">replica of ${esc(replicaOf[a.id])}</div>` : '';
    return `<tr class="asset" data-asset="${esc(a.id)}"><td><div class="name">${esc(a.name || short(a.id))}</div>${of}${locs}</td>
      <td class="num" title="${esc(a.files.map((f) => f.name + ' ' + size(f.size)).join('\n'))}">${a.files.length}</td><td class="num">${size(a.bytes)}</td></tr>`;
  }).join('');
  const jobs = dc.jobs.slice(0, 5).map((j) => `<tr><td>${esc(j.name || short(j.id))}</td>
      <td><span class="badge ${j.state === 'Finished' ? 'ok' : j.state === 'Error' ? 'bad' : 'warn'}">${esc(j.state)}</span></td>
      <td><div class="bar"><div style="width:${Math.round(j.progress)}%"></div></div></td></tr>`).join('');
  el.querySelector('.body').innerHTML =
    `<table><tr><th>Asset and locators</th><th class="num">Files</th><th class="num">Size</th></tr>${rows || '<tr><td colspan="3" class="muted">no assets</td></tr>'}</table>` +
    (jobs ? `<h2>Jobs</h2><table>${jobs}</table>` : '');
}

const STATES = { only_in_a: ['in A only', 'warn'], identical: ['identical', 'ok'], differs: ['differs', 'bad'], copying: ['copying…', 'warn'] };

function renderReplication() {
  const rows = overview.replication.map((r) => {
    const [label, cls] = overview.replicating.includes(r.asset_id) ? STATES.copying : STATES[r.state] || [r.state, ''];
    const action = r.state === 'identical' ? '' : `<button class="replicate" data-asset="${esc(r.asset_id)}">Replicate</button>`;
    return `<tr data-asset="${esc(r.asset_id)}"><td>${esc(r.name)}</td><td class="mono">${esc(short(r.locator_id))}</td>
      <td><span class="badge state ${cls}">${esc(label)}</span>${r.error ? ` <span class="error">${esc(r.error)}</span>` : ''}</td><td>${action}</td></tr>`;
  }).join('');
  $('#replication .body').innerHTML = `<table><tr><th>Asset</th><th>Locator</th><th>State</th><th></th></tr>${rows || '<tr><td colspan="4" class="muted">no streamed assets in A</td></tr>'}</table>`;
}

function renderHealth() {
  const f = overview.front;
  $('#front-url').textContent = overview.front_url ? `front door ${overview.front_url}` : 'no front door';
  let html;
  if (!f) html = '<p class="muted">no front door configured (--front)</p>';
  else if (f.error) html = `<p class="error">the front door does not answer: ${esc(f.error)}</p>`;
  else {
    html = `<table><tr><th>Origin</th><th>State</th><th class="num">Served</th><th>Last out of rotation</th></tr>` +
      f.origins.map((o) => {
        const i = datacenterOf(o.url);
        const name = i >= 0 ? overview.datacenters[i].name : o.url;
        const [label, cls] = !o.healthy ? ['down', 'bad'] : o.ejected ? ['ejected', 'warn'] : ['up', 'ok'];
        return `<tr class="origin" data-dc="${esc(name)}"><td><b>${esc(name)}</b> <span class="mono muted">${esc(o.url)}</span>${o.serving ? ' <span class="badge ok">serving</span>' : ''}</td>
          <td><span class="badge state ${cls}">${label}</span></td><td class="num">${o.served ?? ''}</td><td class="muted">${esc(o.why || '')}</td></tr>`;
      }).join('') + `</table><p>Traffic switched origins <b id="switches">${f.switches ?? 0}</b> time(s).</p>`;
  }
  $('#health .body').innerHTML = html;
  const faults = overview.faults;
  $('#drill').innerHTML = !faults ? '<p class="muted">the drill controls need the local environment (amsplay local up)</p>' :
    overview.datacenters.map((dc) => {
      const m = faults[dc.name] || {};
      const broken = (m.origin && m.origin !== 'ok') || (m.storage && m.storage !== 'ok');
      return `<div class="drill-row"><span class="name">${esc(dc.name)}</span>
        <button class="danger" data-dc="${esc(dc.name)}" data-action="stop">Stop</button>
        <button class="danger" data-dc="${esc(dc.name)}" data-action="hang">Hang</button>
        <button class="danger" data-dc="${esc(dc.name)}" data-action="storage">Storage down</button>
        <button data-dc="${esc(dc.name)}" data-action="heal">Heal</button>
        <span class="badge ${broken ? 'bad' : 'ok'}">origin ${esc(m.origin || 'ok')}, storage ${esc(m.storage || 'ok')}</span></div>`;
    }).join('');
}

function renderPlayerChoices() {
  const select = $('#player-select');
  const current = select.value;
  const streams = overview.datacenters[0]?.assets.flatMap((a) => a.locators.filter((l) => l.front_hls).map((l) => [l.front_hls, a.name])) || [];
  const html = '<option value="">choose a streamed asset…</option>' +
    streams.map(([url, name]) => `<option value="${esc(url)}">${esc(name)}</option>`).join('');
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
    select.value = current;
  }
}

function render() {
  if (!overview) return;
  overview.datacenters.forEach((_, i) => renderDatacenter(i));
  renderReplication();
  renderHealth();
  renderPlayerChoices();
}

async function post(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) alert(await r.text());
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  if (b.classList.contains('replicate')) {
    b.disabled = true;
    post('/api/replicate', { asset_id: b.dataset.asset });
  } else if (b.dataset.action) {
    post('/api/fault', { datacenter: b.dataset.dc, action: b.dataset.action });
  }
});

// The player: hls.js through the front door; each segment tagged with the datacenter that
// served it (the front door's x-served-by header).
let hls = null;
const played = { segments: 0, byDc: {} };
window.consolePlayer = played;
function play(url) {
  if (hls) { hls.destroy(); hls = null; }
  $('#segments').innerHTML = '';
  played.segments = 0; played.byDc = {};
  if (!url) return;
  const video = $('#video');
  hls = new Hls({ maxBufferLength: 6, maxMaxBufferLength: 6 });
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
    const xhr = data.networkDetails;
    const by = xhr && xhr.getResponseHeader ? xhr.getResponseHeader('x-served-by') : null;
    const i = datacenterOf(by);
    const name = i >= 0 ? overview.datacenters[i].name : (by || '?');
    played.segments++;
    played.byDc[name] = (played.byDc[name] || 0) + 1;
    const li = document.createElement('li');
    li.className = `dc-${i}`;
    li.textContent = `${data.frag.type} ${data.frag.sn} ← ${name}`;
    const list = $('#segments');
    list.prepend(li);
    while (list.children.length > 24) list.lastChild.remove();
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
}
$('#player-select').addEventListener('change', (e) => play(e.target.value));
setInterval(() => {
  const v = $('#video');
  $('#player-stats').textContent = hls ? `${v.currentTime.toFixed(1)} s · ${played.segments} segments · ` +
    Object.entries(played.byDc).map(([k, n]) => `${k}: ${n}`).join(', ') : '';
}, 500);

// Live updates: the server pushes the overview whenever it changes.
function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('overview', (e) => {
    $('#live').textContent = 'live';
    $('#live').className = 'badge ok';
    overview = JSON.parse(e.data);
    render();
  });
  es.onerror = () => {
    $('#live').textContent = 'reconnecting…';
    $('#live').className = 'badge off';
  };
}
connect();
