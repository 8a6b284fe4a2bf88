// The operators' dashboard (docs/dashboard.md). Everything comes from this origin's API with
// the operator's bearer token: the view by server-sent events on /dashboard/stream (read with
// fetch, since EventSource cannot send a header), the lists from the operator API. Text from the
// API is only ever set as text, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'yiwang-dashboard-token';
const SVG = 'http://www.w3.org/2000/svg';
const RECONNECT_MS = 2000;
const STATE_ORDER = ['partitioned', 'stale', 'degraded', 'catching_up', 'unknown', 'up', 'self'];

let token = null;
let view = null;
let selected = null;
let boundaries = null;
let listsVersion = null;

function $(id) { return document.getElementById(id); }

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function replaceRows(table, rows) { $(table).querySelector('tbody').replaceChildren(...rows); }

function api(path, options = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + token }, options.headers || {});
  return fetch(path, Object.assign({}, options, { headers }));
}

async function json(path, options) {
  const r = await api(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || ('HTTP ' + r.status));
  return body;
}

function ago(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return 'now';
  if (ms < 60000) return Math.round(ms / 1000) + ' s ago';
  if (ms < 3600000) return Math.round(ms / 60000) + ' min ago';
  return Math.round(ms / 3600000) + ' h ago';
}

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = 'status ' + (cls || '');
}

// --- login -----------------------------------------------------------------------------

function showLogin(message) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setStatus('signed out', 'down');
}

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get('token')) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get('token'));
    history.replaceState(null, '', location.pathname);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    follow();
  });
  $('add-entry').addEventListener('submit', addEntry);
  if (token) follow(); else showLogin();
}

// --- the live view ---------------------------------------------------------------------

async function follow() {
  for (;;) {
    try {
      const r = await api('/dashboard/stream');
      if (r.status === 401 || r.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        const body = await r.json().catch(() => ({}));
        showLogin(body.message || 'that token is not accepted');
        return;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      $('main').hidden = false;
      setStatus('live', 'live');
      if (!boundaries) loadBoundaries();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      throw new Error('the stream ended');
    } catch (e) {
      setStatus('reconnecting (' + e.message + ')', 'down');
    }
    await new Promise((r) => setTimeout(r, RECONNECT_MS));
  }
}

function onEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (name === 'view' && data.length) render(JSON.parse(data.join('\n')));
}

async function loadBoundaries() {
  try { boundaries = await json('/dashboard/boundaries'); } catch (e) { boundaries = { features: [] }; }
}

function render(v) {
  view = v;
  document.body.dataset.refresh = v.refresh;
  const counts = {};
  for (const s of v.sites) counts[s.state] = (counts[s.state] || 0) + 1;
  const healthy = (counts.up || 0) + (counts.self || 0);
  const raft = v.raft || {};
  $('summary').replaceChildren(el('span', {},
    el('span', { id: 'healthy' }, `${healthy} of ${v.sites.length} sites up`), ' · ',
    `lists v${v.lists_version ?? '?'} at ${v.node || 'the node'}`, ' · ',
    `raft leader ${raft.leader || 'none'} (term ${raft.term ?? '?'})`,
    v.node_error ? el('span', { class: 'error', id: 'node-error' }, ' · ' + v.node_error) : null));
  if (v.node_error) setStatus('node API unreachable', 'down'); else setStatus('live', 'live');
  drawMap(v);
  drawNodes(v);
  drawTowns(v);
  drawEscalations(v);
  drawFences(v);
  drawDetail();
  if (raft.applied_version !== undefined && raft.applied_version !== listsVersion) {
    listsVersion = raft.applied_version;
    loadLists();
  }
}

// An equirectangular projection of `points` ({lat, lon}) into width × height, with a margin.
function projection(points, width, height) {
  let [s, n, w, e] = [90, -90, 180, -180];
  for (const p of points) { s = Math.min(s, p.lat); n = Math.max(n, p.lat); w = Math.min(w, p.lon); e = Math.max(e, p.lon); }
  if (s > n) { s = n = 0; w = e = 0; }
  const k = Math.cos(((s + n) / 2) * Math.PI / 180);
  const spanX = Math.max((e - w) * k, 0.02), spanY = Math.max(n - s, 0.02);
  const scale = Math.min((width * 0.9) / spanX, (height * 0.86) / spanY);
  const cx = (w + e) / 2, cy = (s + n) / 2;
  return (lat, lon) => [width / 2 + (lon - cx) * k * scale, height / 2 - (lat - cy) * scale];
}

function drawMap(v) {
  const map = $('map');
  const at = projection(v.sites.map((s) => s.position), 1000, 640);
  const byId = Object.fromEntries(v.sites.map((s) => [s.id, s]));
  const links = [], sites = [], labels = [];
  for (const s of v.sites) {
    const [x1, y1] = at(s.position.lat, s.position.lon);
    s.parents.forEach((p, i) => {
      const parent = byId[p];
      if (!parent) return;
      const [x2, y2] = at(parent.position.lat, parent.position.lon);
      // The link to the parent it is linked to (else the preferred one) carries its state.
      const carries = s.uplink ? s.uplink === p : i === 0;
      links.push(el('svg:line', { x1, y1, x2, y2, class: 'link ' + (carries ? s.state : 'fallback'),
        'data-from': s.id, 'data-to': p, 'data-state': carries ? s.state : 'fallback' }));
    });
    const r = { city: 11, county: 8, town: 5, harbour: 5 }[s.role] || 5;
    sites.push(el('svg:circle', { cx: x1, cy: y1, r, class: `site ${s.state}${selected === s.id ? ' selected' : ''}`,
      'data-id': s.id, 'data-state': s.state, onclick: () => { selected = s.id; drawMap(view); drawDetail(); } },
      el('svg:title', {}, `${s.id} (${s.role}): ${s.state.replace('_', ' ')}`)));
    if (s.role === 'city' || s.role === 'county' || selected === s.id) {
      labels.push(el('svg:text', { x: x1 + r + 3, y: y1 + 4, class: 'label' }, s.id));
    }
  }
  map.replaceChildren(...links, ...sites, ...labels);
}

function drawNodes(v) {
  const rank = (s) => STATE_ORDER.indexOf(s.state);
  const rows = [...v.sites].sort((a, b) => rank(a) - rank(b) || b.backlog - a.backlog || a.id.localeCompare(b.id));
  const bad = rows.filter((s) => ['partitioned', 'stale', 'degraded'].includes(s.state)).length;
  $('nodes-note').textContent = bad ? `${bad} need attention` : 'all heard';
  replaceRows('nodes', rows.map((s) => el('tr', { 'data-id': s.id, class: ['partitioned', 'stale'].includes(s.state) ? 'bad' : (s.state === 'degraded' || s.lists_behind > 0 ? 'warn' : null) },
    el('td', {}, s.id), el('td', {}, s.role), el('td', { class: 'state ' + s.state }, s.state.replace('_', ' ')),
    el('td', {}, s.uplink || ''), el('td', {}, ago(s.age_ms)), el('td', {}, s.backlog),
    el('td', {}, s.lists_version === null ? '' : `v${s.lists_version}${s.lists_behind ? ` (${s.lists_behind} behind)` : ''}`),
    el('td', {}, s.clock_offset_ms === null ? '' : `${s.clock_offset_ms} ms`),
    el('td', {}, s.open_events), el('td', {}, s.overdue_events))));
}

function drawTowns(v) {
  const rows = v.sites.filter((s) => s.role === 'town' || s.role === 'harbour')
    .sort((a, b) => b.overdue_events - a.overdue_events || b.open_events - a.open_events || a.id.localeCompare(b.id));
  replaceRows('towns', rows.map((s) => el('tr', { class: s.overdue_events ? 'warn' : null },
    el('td', {}, s.id), el('td', {}, s.open_events), el('td', {}, s.overdue_events))));
}

function drawEscalations(v) {
  replaceRows('escalations', v.escalations.map((e) => el('tr', {},
    el('td', {}, `${e.event} #${e.n}`), el('td', {}, e.at || ''), el('td', {}, e.category || ''),
    el('td', {}, e.department || ''), el('td', {}, e.reason || ''))));
  if (!v.escalations.length) replaceRows('escalations', [el('tr', {}, el('td', { colspan: 5 }, 'none waiting'))]);
}

function drawFences(v) {
  // The latest alert per vessel, drawn; every alert listed.
  const latest = new Map();
  for (const a of v.fences) if (!latest.has(a.mmsi)) latest.set(a.mmsi, a);
  const vessels = [...latest.values()];
  const points = vessels.length ? vessels : v.sites.map((s) => s.position);
  const at = projection(points, 1000, 500);
  const shapes = [];
  for (const f of (boundaries && boundaries.features) || []) {
    const g = f.geometry || {};
    const polygons = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
    for (const rings of polygons) {
      const d = rings.map((ring) => 'M' + ring.map(([lon, lat]) => at(lat, lon).map((n) => n.toFixed(1)).join(',')).join('L') + 'Z').join('');
      shapes.push(el('svg:path', { d, class: 'boundary' }, el('svg:title', {}, (f.properties && f.properties.name) || 'boundary')));
    }
  }
  for (const a of vessels) {
    const [x, y] = at(a.lat, a.lon);
    shapes.push(el('svg:circle', { cx: x, cy: y, r: 5, class: 'vessel ' + a.zone, 'data-mmsi': a.mmsi },
      el('svg:title', {}, `${a.shipname || a.mmsi}: ${a.zone}`)));
  }
  $('fence-map').replaceChildren(...shapes);
  replaceRows('fences', v.fences.slice(0, 100).map((a) => el('tr', { class: a.zone === 'recall' ? 'bad' : (a.zone === 'alert' ? 'warn' : null) },
    el('td', {}, a.seen), el('td', {}, a.shipname ? `${a.shipname} (${a.mmsi})` : a.mmsi),
    el('td', { class: 'state' }, a.zone), el('td', {}, a.previous_zone),
    el('td', {}, a.distance_m === null || a.distance_m === undefined ? '' : `${(a.distance_m / 1852).toFixed(2)} nm`),
    el('td', {}, a.origin))));
}

function drawDetail() {
  const box = $('site-detail');
  const s = view && view.sites.find((x) => x.id === selected);
  if (!s) { box.hidden = true; return; }
  box.hidden = false;
  // Rebuilt only when another site is chosen, so a button is never replaced under a click
  // and the last action's answer stays.
  if (box.dataset.site !== s.id) {
    box.dataset.site = s.id;
    const children = [el('div', { id: 'site-info' })];
    if (view.controls) {
      for (const [action, label] of [['isolate', 'Cut its links'], ['heal', 'Heal'], ['crash', 'Power cut'], ['restart', 'Power back']]) {
        children.push(el('button', { type: 'button', 'data-action': action, onclick: () => fault(action, s.id) }, label));
      }
      children.push(el('span', { id: 'fault-result' }));
    }
    box.replaceChildren(...children);
  }
  $('site-info').replaceChildren(el('strong', {}, s.id), ` (${s.role}) is ${s.state.replace('_', ' ')}`,
    s.uplink ? `, linked to ${s.uplink}` : '', s.age_ms !== null ? `, heard ${ago(s.age_ms)}` : '',
    `; backlog ${s.backlog}, lists v${s.lists_version ?? '?'}`);
}

async function fault(action, site) {
  const out = $('fault-result');
  out.textContent = ' …';
  try {
    const r = await json('/dashboard/faults', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ action, site }) });
    out.textContent = ' ' + r.done;
  } catch (e) {
    out.textContent = ' ' + e.message;
  }
}

// --- the sanctions lists -----------------------------------------------------------------

async function loadLists() {
  const note = $('lists-note');
  try {
    const lists = await json('/api/v1/lists?limit=200');
    note.textContent = `version ${lists.version}, ${lists.entries.length}${lists.next ? '+' : ''} entries`;
    replaceRows('lists', lists.entries.map((e) => el('tr', { class: e.in_force ? null : 'warn' },
      el('td', {}, e.list), el('td', {}, e.subject), el('td', {}, e.name), el('td', {}, e.authority),
      el('td', {}, e.legal_basis), el('td', {}, e.expires.slice(0, 10)),
      el('td', {}, el('button', { type: 'button', onclick: () => removeEntry(e) }, 'Remove')))));
    const after = Math.max(0, lists.version - 50);
    const changes = await json(`/api/v1/lists/changes?after=${after}&limit=50`);
    replaceRows('history', changes.changes.reverse().map((c) => el('tr', { class: c.applied ? null : 'warn' },
      el('td', {}, c.version), el('td', {}, c.command + (c.applied ? '' : ` (refused: ${c.refused})`)),
      el('td', {}, c.entry ? `${c.entry.list} ${c.entry.subject}` : (c.subject ? `${c.list} ${c.subject}` : (c.entries ? `${c.entries.length} entries` : ''))),
      el('td', {}, c.who), el('td', {}, c.why), el('td', {}, c.proposed))));
    $('lists-error').textContent = '';
  } catch (e) {
    $('lists-error').textContent = 'lists: ' + e.message;
  }
}

async function addEntry(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  const entry = { list: f.get('list'), subject: f.get('subject').trim(), name: f.get('name').trim(),
    authority: f.get('authority').trim(), legal_basis: f.get('legal_basis').trim(),
    effective: f.get('effective'), expires: f.get('expires') };
  try {
    await json('/api/v1/lists', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ entry, why: f.get('why').trim() }) });
    event.target.reset();
    listsVersion = null;
    loadLists();
  } catch (e) {
    $('lists-error').textContent = 'not added: ' + e.message;
  }
}

async function removeEntry(e) {
  const why = prompt(`Why remove ${e.subject} from the ${e.list} list? (recorded)`);
  if (!why) return;
  try {
    await json(`/api/v1/lists/${encodeURIComponent(e.list)}/${encodeURIComponent(e.subject)}`, {
      method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ why }) });
    loadLists();
  } catch (err) {
    $('lists-error').textContent = 'not removed: ' + err.message;
  }
}

document.addEventListener('DOMContentLoaded', start);
