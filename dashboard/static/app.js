// bosun's web dashboard: plain JavaScript, no build step. It reads the same
// API as the CLI, authenticated by the session cookie the server set at
// login, and re-reads what changed when GET /api/v1/watch (Server-Sent
// Events) says so: there is no polling.
'use strict';

const CSRF = { 'X-Bosun-CSRF': '1' }; // api.CSRFHeader: sent on every request
const $ = (sel, el = document) => el.querySelector(sel);

// esc makes any text (commit messages, pod names, errors) safe in HTML.
function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

class HTTPError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// api fetches path as JSON; a 401 shows the login form. A read (a GET, or a request marked readOnly such as a
// plan) that fails at the network level (the browser's "Failed to fetch":
// a connection reset, a server restarting, the machine's network changing)
// is tried twice more, after 0.3 s and 1 s.
async function api(path, opts = {}) {
  const { readOnly, ...init } = opts;
  const req = () => fetch(path, { credentials: 'same-origin', ...init, headers: { ...CSRF, ...(init.headers || {}) } });
  const read = readOnly || !init.method || init.method === 'GET';
  let r;
  for (const wait of [300, 1000, 0]) {
    try {
      r = await req();
      break;
    } catch (e) {
      if (!(e instanceof TypeError) || !read || wait === 0) throw e;
      await new Promise(ok => setTimeout(ok, wait));
    }
  }
  if (r.status === 401) {
    showLogin('');
    throw new HTTPError(401, 'not logged in');
  }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new HTTPError(r.status, msg);
  }
  return r.json();
}

// ---- formatting

function short(commit) { return commit ? String(commit).slice(0, 10) : ''; }
function firstLine(s) { return String(s || '').split('\n')[0]; }
function age(t) {
  if (!t) return '';
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}
function when(t) { return t ? `<span title="${esc(new Date(t).toLocaleString())}">${esc(age(t))} ago</span>` : ''; }
// goDur rounds a Go duration string ("3.084036989s", "42.334373ms",
// "1m2.5s") to what a reader needs: milliseconds under a second, tenths
// of a second under a minute.
function goDur(d) {
  const units = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, 'µs': 1e-3, us: 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const [, n, u] of String(d).matchAll(/([0-9.]+)(h|ms|m|s|µs|us|ns)/g)) ms += parseFloat(n) * units[u];
  if (!isFinite(ms) || ms <= 0) return String(d);
  if (ms < 1000) return Math.round(ms) + 'ms';
  if (ms < 60e3) return (ms / 1000).toFixed(1) + 's';
  return Math.floor(ms / 60e3) + 'm' + Math.round((ms % 60e3) / 1000) + 's';
}
function cpu(m) { return m >= 1000 ? (m / 1000).toFixed(m % 1000 ? 1 : 0) : m + 'm'; }
function bytes(b) {
  const u = ['B', 'Ki', 'Mi', 'Gi', 'Ti'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (b >= 10 || i === 0 ? Math.round(b) : b.toFixed(1)) + u[i];
}
function bar(used, total) {
  if (!total) return '<div class="bar"><span></span></div>';
  const pct = Math.min(100, Math.round(100 * used / total));
  const cls = pct >= 100 ? 'full' : pct >= 80 ? 'hot' : '';
  return `<div class="bar ${cls}" title="${pct}%"><span data-w="${pct}"></span></div>`;
}
function statusClass(s) {
  s = String(s || '');
  if (/^(Running|Succeeded|Completed|complete|applied|Ready|Normal|Progressing|canary promoted|canary ended)$/.test(s)) return 'ok';
  if (/Pending|Init|progress|Container|Terminating|Waiting|held|superseded|canary (started|stepped)/i.test(s)) return 'warn';
  return 'bad';
}
function badge(s, cls) { return `<span class="badge ${cls || statusClass(s)}">${esc(s)}</span>`; }
function table(head, rows, empty) {
  if (!rows.length) return `<p class="notice">${esc(empty || 'Nothing here yet.')}</p>`;
  const th = head.map(h => typeof h === 'string' ? `<th>${esc(h)}</th>` : `<th class="${h.cls}">${esc(h.t)}</th>`).join('');
  return `<div class="table"><table><thead><tr>${th}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

// Bar widths are set through the CSSOM (the CSP refuses style
// attributes): applyBars reads each bar's data-w.
function applyBars(el) {
  el.querySelectorAll('[data-w]').forEach(n => { n.style.width = n.dataset.w + '%'; });
}

// ---- pages: each names the watch kinds that make it re-render.

const pages = {};

pages.overview = {
  kinds: ['nodes', 'pods', 'deployments', 'services', 'canaries', 'sync'],
  async render(el) {
    const [st, nodes] = await Promise.all([api('/api/v1/status'), api('/api/v1/dashboard/nodes')]);
    const sync = st.sync || {};
    const ap = sync.applied;
    const rejected = sync.seen && ap && sync.seen.commit !== ap.commit && (sync.errors || []).length;
    const phases = Object.entries(st.pods.byPhase || {}).map(([k, v]) => `${badge(k)} ${v}`).join(' ');
    let html = `<h1>Cluster</h1><div class="grid">
      <div class="card"><h3>Leader</h3><div class="mono" id="leader">${esc(st.leader || 'none')}</div>
        ${st.etcd && st.etcd.message ? `<p class="error">${esc(st.etcd.message)}</p>` : ''}</div>
      <div class="card"><h3>Synced commit ${ap ? badge('applied') : ''}</h3>
        ${ap ? `<div><span class="mono" id="synced-commit">${esc(short(ap.commit))}</span> ${esc(firstLine(ap.message))}</div>
        <div class="muted">${esc(ap.author || '')} ${when(sync.updatedAt)}</div>` : '<div class="muted">nothing applied yet</div>'}
        ${rejected ? `<p class="error">rejected ${esc(short(sync.seen.commit))}: <a href="#/history">see history</a></p>` : ''}
        ${sync.held ? `<p class="warn" id="held">held ${esc(short(sync.held.revision.commit))} (sync window${sync.held.until ? ' until ' + esc(new Date(sync.held.until).toLocaleString()) : ''}): ${esc(sync.held.reason)}</p>` : ''}
        ${sync.fetchError ? `<p class="error">fetch: ${esc(sync.fetchError)}</p>` : ''}</div>
      <div class="card"><h3>Pods <span>${st.pods.total}</span></h3><div>${phases || '<span class="muted">none</span>'}</div>
        ${(st.pods.notReady || []).length ? `<p class="warn">${st.pods.notReady.length} not ready</p>` : ''}
        ${(st.pods.unschedulable || []).length ? `<p class="bad">${st.pods.unschedulable.length} unschedulable</p>` : ''}</div>
      <div class="card"><h3>Workloads</h3><dl class="kv">
        <dt>Deployments</dt><dd>${(st.deployments || []).length}</dd>
        <dt>Services</dt><dd>${(st.services || []).length}</dd>
        <dt>Canaries</dt><dd>${(st.canaries || []).length}</dd></dl></div>
    </div><h2>Nodes</h2><div class="grid" id="nodes">`;
    for (const n of nodes.items) {
      html += `<div class="card node"><h3><span class="mono">${esc(n.name)}</span>
        ${badge(n.ready ? 'Ready' : 'NotReady')}${n.unschedulable ? ' ' + badge('cordoned', 'warn') : ''}</h3>
        ${n.message ? `<p class="error">${esc(n.message)}</p>` : ''}
        <div class="muted">CPU ${cpu(n.requestedMilliCPU)} of ${cpu(n.milliCPU)}</div>${bar(n.requestedMilliCPU, n.milliCPU)}
        <div class="muted">Memory ${bytes(n.requestedMemory)} of ${bytes(n.memory)}</div>${bar(n.requestedMemory, n.memory)}
        <div class="muted">Pods ${n.pods}${n.maxPods ? ' of ' + n.maxPods : ''}</div>${n.maxPods ? bar(n.pods, n.maxPods) : ''}
        ${n.address ? `<div class="muted mono">${esc(n.address)}</div>` : ''}</div>`;
    }
    if (!nodes.items.length) html += '<p class="notice">No node has registered.</p>';
    el.innerHTML = html + '</div>';
  },
};

pages.deployments = {
  kinds: ['deployments', 'pods', 'canaries'],
  async render(el) {
    const st = await api('/api/v1/status');
    const rows = (st.deployments || []).map(d => `<tr>
      <td class="opt">${esc(d.namespace)}</td><td><b>${esc(d.name)}</b></td>
      <td>${d.ready}/${d.desired}${bar(d.ready, d.desired)}</td><td class="opt">${d.updated}</td>
      <td class="wrap">${badge(d.rollout.startsWith('failed') ? 'failed' : d.rollout)}
        ${d.rollout.startsWith('failed') ? `<div class="error">${esc(d.rollout.slice(8))}</div>` : ''}</td></tr>`);
    const canaries = (st.canaries || []).map(c => `<tr>
      <td><b>${esc(c.namespace + '/' + c.name)}</b></td><td class="mono">${esc(c.branch)} ${esc(c.commit || '')}</td>
      <td>${badge(c.phase)}</td><td>${c.weight}%${bar(c.weight, 100)}</td>
      <td>${c.steps ? `step ${c.step} of ${c.steps}` : ''}</td><td>${c.ready}/${c.desired}</td>
      <td class="wrap">${esc(c.lastCheck || '')} ${c.reason ? `<span class="error">${esc(c.reason)}</span>` : ''}</td></tr>`);
    el.innerHTML = `<h1>Deployments</h1>` +
      table(['Namespace', 'Name', 'Ready', 'Updated', 'Rollout'].map((t, i) => (i === 0 || i === 3) ? { t, cls: 'opt' } : t), rows, 'No Deployment.') +
      `<h2>Canaries</h2>` + table(['Deployment', 'Branch', 'Phase', 'Weight', 'Step', 'Ready', 'Analysis'], canaries, 'No canary runs.');
  },
};

let podFilter = '';
pages.pods = {
  kinds: ['pods'],
  async render(el) {
    const pods = await api('/api/v1/dashboard/pods');
    if (!$('#pod-filter', el)) {
      el.innerHTML = `<h1>Pods <span class="muted" id="pod-count"></span></h1>
        <div class="toolbar"><input id="pod-filter" type="search" placeholder="filter: namespace, name, status, node" aria-label="filter pods"></div>
        <div id="pod-table"></div>`;
      const f = $('#pod-filter', el);
      f.value = podFilter;
      f.addEventListener('input', () => { podFilter = f.value; drawPods(el); });
    }
    el._pods = pods.items;
    drawPods(el);
  },
};

function drawPods(el) {
  const words = podFilter.toLowerCase().split(/\s+/).filter(Boolean);
  const items = (el._pods || []).filter(p => {
    const hay = `${p.namespace} ${p.name} ${p.status} ${p.node || ''} ${p.ip || ''} ${p.track || ''}`.toLowerCase();
    return words.every(w => hay.includes(w));
  });
  const rows = items.map(p => `<tr data-pod="${esc(p.namespace + '/' + p.name)}">
    <td class="opt">${esc(p.namespace)}</td>
    <td><a href="#/logs/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.name)}" title="logs">${esc(p.name)}</a>${p.track ? ` <span class="muted">${esc(p.track)}</span>` : ''}</td>
    <td>${p.ready}/${p.total}</td><td>${badge(p.status)}</td><td>${p.restarts}</td>
    <td class="opt mono">${esc(p.node || '')}</td><td class="opt mono">${esc(p.ip || '')}</td><td class="opt">${esc(age(p.created))}</td>
    <td class="wrap ${p.probes ? 'warn' : 'muted'}">${esc(p.probes || (p.phase === 'Running' ? 'passing' : ''))}</td></tr>`);
  $('#pod-count', el).textContent = `${items.length}${items.length !== (el._pods || []).length ? ' of ' + el._pods.length : ''}`;
  $('#pod-table', el).innerHTML = table([{ t: 'Namespace', cls: 'opt' }, 'Name', 'Ready', 'Status', 'Restarts',
    { t: 'Node', cls: 'opt' }, { t: 'IP', cls: 'opt' }, { t: 'Age', cls: 'opt' }, 'Probes'], rows, 'No pod.');
}

pages.services = {
  kinds: ['services', 'pods'],
  async render(el) {
    const st = await api('/api/v1/status');
    const rows = (st.services || []).map(s => `<tr>
      <td class="opt">${esc(s.namespace)}</td><td><b>${esc(s.name)}</b></td><td class="opt">${esc(s.type || 'ClusterIP')}</td>
      <td class="mono">${esc(s.clusterIP || 'pending')}</td><td class="mono">${esc(s.ports || '')}</td>
      <td class="wrap mono">${s.ready ? `<span class="ok">${s.ready} ready</span> ` : '<span class="bad">none ready</span> '}${esc((s.endpoints || []).join(', '))}</td></tr>`);
    el.innerHTML = `<h1>Services</h1>` + table([{ t: 'Namespace', cls: 'opt' }, 'Name', { t: 'Type', cls: 'opt' }, 'Cluster IP', 'Ports', 'Endpoints'], rows, 'No Service.');
  },
};

function changeClass(op) { return op === '+' ? 'c-add' : op === '-' ? 'c-del' : 'c-mod'; }

pages.history = {
  kinds: ['history', 'sync'],
  async render(el) {
    const h = await api('/api/v1/history');
    let html = '<h1>Revision history</h1><div id="history">';
    for (const e of h.items || []) {
      const what = e.canary ? `canary ${e.canary}${e.branch ? ' (' + e.branch + ')' : ''}` : '';
      html += `<div class="card entry" data-commit="${esc(e.commit)}" data-result="${esc(e.result)}">
        <div class="head">${badge(e.result)} <span class="mono">${esc(short(e.commit))}</span>
          <span class="msg">${esc(firstLine(e.message))}</span>
          <span class="muted">${esc(e.author || '')} · seen ${when(e.seenAt)}${e.readyAfter ? ' · ready after ' + esc(goDur(e.readyAfter)) : ''}</span></div>
        ${what ? `<div class="muted">${esc(what)}${e.detail ? ': ' + esc(e.detail) : ''}</div>` : (e.detail ? `<div class="muted">${esc(e.detail)}</div>` : '')}
        ${e.signer ? `<div class="muted">signed: ${esc(e.signer)}</div>` : ''}
        ${(e.changes || []).length ? `<ul class="changes">${e.changes.map(c =>
          `<li class="${changeClass(c.op)}">${esc(c.op)} ${esc(c.kind)} ${esc(c.namespace ? c.namespace + '/' : '')}${esc(c.name)}</li>`).join('')}</ul>` : ''}
        ${(e.errors || []).length ? `<pre class="errors">${esc(e.errors.join('\n'))}</pre>` : ''}
      </div>`;
    }
    if (!(h.items || []).length) html += '<p class="notice">No revision seen yet.</p>';
    el.innerHTML = html + '</div>';
  },
};

pages.plan = {
  kinds: [],
  async render(el) {
    el.innerHTML = `<h1>Plan</h1><form class="toolbar" id="plan-form">
      <input id="plan-ref" type="text" placeholder="branch, tag or commit" value="main" aria-label="ref" required>
      <button class="primary" type="submit">Preview</button></form><div id="plan-out" class="muted">What applying a branch would do; it changes nothing.</div>`;
    $('#plan-form', el).addEventListener('submit', async ev => {
      ev.preventDefault();
      const out = $('#plan-out', el);
      out.className = 'muted';
      out.textContent = 'planning…';
      try {
        const res = await api('/api/v1/plan', { method: 'POST', readOnly: true, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ref: $('#plan-ref', el).value.trim() }) });
        out.className = '';
        out.innerHTML = renderPlan(res);
      } catch (e) {
        out.className = 'error';
        out.textContent = e.message;
      }
    });
  },
};

function renderPlan(res) {
  let html = '<div class="grid">';
  if (res.revision) html += `<div class="card"><h3>Revision</h3><span class="mono">${esc(short(res.revision.commit))}</span> ${esc(firstLine(res.revision.message))}</div>`;
  if (res.current) html += `<div class="card"><h3>Running now</h3><span class="mono">${esc(short(res.current.commit))}</span> ${esc(firstLine(res.current.message))}</div>`;
  html += '</div>';
  if ((res.errors || []).length) html += `<h2>Would be rejected</h2><pre class="errors">${esc(res.errors.join('\n'))}</pre>`;
  const p = res.preview;
  if (p) {
    html += `<h2>${p.Fits ? badge('fits', 'ok') : badge('does not fit', 'bad')} ${esc(p.Verdict || '')}</h2>`;
    html += table(['Op', 'Kind', 'Object', 'Source'], (p.Objects || []).map(o =>
      `<tr><td>${esc(o.Op)}</td><td>${esc(o.Kind)}</td><td>${esc((o.Namespace ? o.Namespace + '/' : '') + o.Name)}</td><td class="mono">${esc(o.Source || '')}</td></tr>`), 'No object changes.');
    if ((p.Pods || []).length) html += '<h2>Pods (first step)</h2>' + table(['Op', 'Pod', 'Reason'], p.Pods.map(x =>
      `<tr><td>${esc(x.Op)}</td><td>${esc(x.Namespace + '/' + x.Name)}</td><td class="wrap">${esc(x.Reason || '')}</td></tr>`));
    if ((p.Rollouts || []).length) html += '<h2>Rollouts</h2>' + table(['Deployment', 'Strategy', 'Replaced', 'Steps', 'Peak', 'Ends'], p.Rollouts.map(r =>
      `<tr><td>${esc(r.Namespace + '/' + r.Name)}</td><td>${esc(r.Strategy)}</td><td>${r.Replaced}</td><td>${r.Steps}</td><td>${r.Peak}</td><td class="wrap">${badge(r.State)} ${esc(r.Message || '')}</td></tr>`));
  }
  for (const c of res.canaries || []) {
    html += `<h2>Canary ${esc(c.namespace + '/' + c.name)} from ${esc(c.branch)}</h2><div class="card">${badge(c.phase)} ${esc(c.reason || '')}
      <div>weight ${c.weight}% · ${c.replicas} canary pods beside ${c.stableReplicas}</div>
      ${(c.changes || []).length ? `<ul class="changes">${c.changes.map(x => `<li>${esc(x)}</li>`).join('')}</ul>` : ''}</div>`;
  }
  return html;
}

// Logs stream with fetch (follow=1): the answer is read as it comes.
let logAbort = null;
pages.logs = {
  kinds: [],
  async render(el, args) {
    const [ns, pod] = args.map(decodeURIComponent);
    if (!pod) {
      el.innerHTML = '<h1>Logs</h1><p class="notice">Pick a pod on the <a href="#/pods">pods page</a>.</p>';
      return;
    }
    const pods = await api('/api/v1/dashboard/pods');
    const p = pods.items.find(x => x.namespace === ns && x.name === pod);
    const containers = p ? p.containers : [];
    el.innerHTML = `<h1>Logs <span class="mono">${esc(ns + '/' + pod)}</span></h1>
      <div class="toolbar"><select id="log-container" aria-label="container">${containers.map(c => `<option>${esc(c)}</option>`).join('')}</select>
      <label><input id="log-follow" type="checkbox" checked> follow</label><span id="log-state" class="muted"></span></div>
      <pre class="log" id="log"></pre>`;
    const start = () => streamLogs(ns, pod, $('#log-container', el).value, $('#log-follow', el).checked);
    $('#log-container', el).addEventListener('change', start);
    $('#log-follow', el).addEventListener('change', start);
    start();
  },
  leave() { if (logAbort) logAbort.abort(); logAbort = null; },
};

const maxLogChars = 2 << 20;

// streamLogs shows a container's log; following, a stream that ends or
// breaks (a server restart, a connection reset) is opened again after a
// second (the last 500 lines, then on), until the page leaves or the
// choice changes.
async function streamLogs(ns, pod, container, follow, again) {
  if (logAbort && !again) logAbort.abort();
  const ctl = again || new AbortController();
  logAbort = ctl;
  const out = $('#log'), state = $('#log-state');
  out.textContent = ''; // a reconnection shows the last 500 lines again: none twice, none missed
  state.className = 'muted';
  state.textContent = follow ? 'streaming…' : '';
  const q = new URLSearchParams({ tail: '500' });
  if (container) q.set('container', container);
  if (follow) q.set('follow', '1');
  try {
    const r = await fetch(`/api/v1/logs/${encodeURIComponent(ns)}/${encodeURIComponent(pod)}?${q}`, { headers: CSRF, signal: ctl.signal });
    if (r.status === 401) { showLogin(''); return; }
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error; } catch (e) { /* not JSON */ }
      state.className = 'error';
      state.textContent = msg;
      return;
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
      out.append(dec.decode(value, { stream: true }));
      if (out.textContent.length > maxLogChars) out.textContent = out.textContent.slice(-maxLogChars / 2);
      if (atBottom) out.scrollTop = out.scrollHeight;
    }
    state.textContent = follow ? 'stream ended; reconnecting…' : '';
  } catch (e) {
    if (e.name === 'AbortError') return;
    state.className = 'error';
    state.textContent = e.message + (follow ? '; reconnecting…' : '');
  }
  if (follow && !ctl.signal.aborted) {
    await new Promise(ok => setTimeout(ok, 1000));
    if (!ctl.signal.aborted && logAbort === ctl) streamLogs(ns, pod, container, follow, ctl);
  }
}

pages.events = {
  kinds: ['events'],
  async render(el) {
    let ev;
    try {
      ev = await api('/api/v1/events?limit=300');
    } catch (e) {
      if (e.status === 404) {
        el.innerHTML = '<h1>Events</h1><p class="notice" id="events-missing">This server does not record events yet.</p>';
        return;
      }
      throw e;
    }
    const items = (ev.events || []).slice().reverse(); // newest first
    const rows = items.map(e => `<tr><td>${when(e.lastTime)}</td><td>${badge(e.type, e.type === 'Normal' ? 'ok' : 'warn')}</td>
      <td>${esc(e.reason)}</td><td class="mono">${esc(e.object ? `${e.object.kind}/${e.object.namespace ? e.object.namespace + '/' : ''}${e.object.name}` : '')}</td>
      <td class="wrap">${esc(e.message)}</td><td class="opt">${esc(e.source || '')}</td><td class="opt">${e.count > 1 ? '×' + e.count : ''}</td></tr>`);
    el.innerHTML = '<h1>Events</h1>' + table(['When', 'Type', 'Reason', 'Object', 'Message', { t: 'Source', cls: 'opt' }, { t: 'Count', cls: 'opt' }], rows, 'No events.');
  },
};

// ---- routing and live updates

let current = { name: '', args: [] };
let rendering = false, dirty = false;

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const name = Object.hasOwn(pages, parts[0]) ? parts[0] : 'overview'; // never an inherited name (#/constructor)
  return { name, args: parts.slice(1) };
}

async function render() {
  if (rendering) { dirty = true; return; }
  rendering = true;
  const el = $('#main');
  const t0 = performance.now();
  try {
    await pages[current.name].render(el, current.args);
    applyBars(el);
    el.dataset.page = current.name;
    el.dataset.rendered = String(Number(el.dataset.rendered || 0) + 1);
    // For load-time measurements (e2e): ms since navigation start.
    window.bosunRenderMs = performance.now() - t0;
    if (window.bosunFirstRender === undefined) window.bosunFirstRender = performance.now();
  } catch (e) {
    if (e.status !== 401) el.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  } finally {
    rendering = false;
    if (dirty) { dirty = false; render(); }
  }
}

function navigate() {
  const next = parseHash();
  if (pages[current.name] && pages[current.name].leave) pages[current.name].leave();
  if (next.name !== current.name || next.args.join('/') !== current.args.join('/')) $('#main').innerHTML = '';
  current = next;
  document.querySelectorAll('#nav a').forEach(a => a.classList.toggle('on', a.dataset.page === current.name || (current.name === 'logs' && a.dataset.page === 'pods')));
  render();
}

let source = null;
function connect() {
  if (source) source.close();
  const live = $('#live');
  let readyOnce = false;
  // The page renders after "ready" (the watch is in place, so no change
  // is missed), or after a second if the stream is slow to start.
  const fallback = setTimeout(() => { if (!readyOnce) navigate(); }, 1000);
  source = new EventSource('/api/v1/watch');
  source.addEventListener('ready', () => {
    live.classList.remove('off');
    if (!readyOnce) { readyOnce = true; clearTimeout(fallback); navigate(); return; }
    render(); // reconnected: anything may have changed
  });
  source.addEventListener('changed', ev => {
    const kinds = JSON.parse(ev.data).kinds || [];
    if (pages[current.name].kinds.some(k => kinds.includes(k))) render();
  });
  source.onerror = () => {
    live.classList.add('off');
    if (source.readyState === EventSource.CLOSED) {
      // Refused (a 401 closes it for good): render shows the login form
      // if that is why; otherwise try again shortly.
      clearTimeout(fallback);
      if (!readyOnce) { readyOnce = true; navigate(); }
      setTimeout(() => { if (!$('#login').hidden) return; connect(); }, 3000);
    }
  };
}

function showLogin(msg) {
  if (source) { source.close(); source = null; }
  $('#top').hidden = true;
  $('#main').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg || '';
  $('#token').focus();
}

function showApp() {
  $('#login').hidden = true;
  $('#top').hidden = false;
  $('#main').hidden = false;
  connect();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    const token = $('#token').value;
    const r = await fetch('/login', { method: 'POST', headers: CSRF, body: new URLSearchParams({ token }) });
    $('#token').value = '';
    if (!r.ok) {
      let msg = 'login failed';
      try { msg = (await r.json()).error; } catch (e) { /* not JSON */ }
      $('#login-error').textContent = msg;
      return;
    }
    current = { name: '', args: [] };
    showApp();
  });
  $('#logout').addEventListener('click', async () => {
    await fetch('/logout', { method: 'POST', headers: CSRF });
    showLogin('Logged out.');
  });
  window.addEventListener('hashchange', navigate);
  showApp();
});
