# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The exporter's live page: one self-contained HTML document.

Inline CSS and JavaScript only (no external script, font or CDN), allowed
by a Content-Security-Policy that names their hashes and lets the page
fetch nothing but ``uploads.json`` from its own origin. Every value from
memcached is put in the page with ``textContent``, never as HTML.
"""

import base64
import hashlib

STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #555;
  --line: #ccc; --warn: #8a5300; --warn-bg: #fff4e0; --bad: #a00000;
  --bad-bg: #fde8e8; --ok: #176117; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #eee; --bg: #161616; --muted: #aaa; --line: #444;
    --warn: #ffc266; --warn-bg: #3a2a0c; --bad: #ff8a8a; --bad-bg: #3d1414;
    --ok: #8fd18f; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem; font: 15px/1.4 system-ui, sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
#status { margin: 0 0 .8rem; color: var(--muted); }
#status.down { color: var(--bad); font-weight: 600; }
table { width: 100%; border-collapse: collapse; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { text-align: left; padding: .35rem .5rem;
  border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: .85rem; color: var(--muted); }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.id { font-family: ui-monospace, monospace; font-size: .85rem;
  overflow-wrap: anywhere; }
td.bar { min-width: 11rem; }
.bar div { display: flex; align-items: center; gap: .4rem; }
progress { flex: 1 1 auto; min-width: 5rem; height: 1rem; }
.pct { flex: 0 0 3.6rem; text-align: right; }
tr.stalled { background: var(--warn-bg); }
tr.stalled .state { color: var(--warn); font-weight: 600; }
tr.failed, tr.bad { background: var(--bad-bg); }
tr.failed .state, tr.bad .state { color: var(--bad); font-weight: 600; }
tr.stored .state { color: var(--ok); }
.empty { color: var(--muted); font-style: italic; }
@media (max-width: 760px) {
  body { padding: .5rem; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip: rect(0 0 0 0); }
  table, caption, tbody, tr, td { display: block; width: 100%; }
  .bar div { flex: 1 1 auto; }
  tr { border: 1px solid var(--line); border-radius: 4px;
    margin-bottom: .6rem; padding: .3rem; }
  td { border: 0; display: flex; gap: .5rem; padding: .15rem .3rem; }
  td::before { content: attr(data-label); flex: 0 0 6.5rem;
    color: var(--muted); font-size: .85rem; }
  td.empty::before { content: none; }
}
"""

SCRIPT = r"""
'use strict';
const COLUMNS = ['Image', 'Backend', 'State', 'Progress', 'Stored / total',
                 'Rate', 'ETA', 'Last update'];
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
const MARKS = {stalled: '\u26a0 ', failed: '\u2716 ', bad: '\u2716 ',
               stored: '\u2714 '};
function size(n) {
  if (n === null || n === undefined) return '?';
  if (n < 1024) return n + ' B';
  let v = n, i = 0;
  while (i < UNITS.length - 1 && v >= 1023.95) { v /= 1024; i++; }
  return v.toFixed(1) + ' ' + UNITS[i];
}
function duration(s) {
  if (s === null || s === undefined) return '\u2013';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + 's';
  const pad = (x) => String(x).padStart(2, '0');
  if (s < 3600) return Math.floor(s / 60) + 'm' + pad(s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h' +
    pad(Math.floor(s % 3600 / 60)) + 'm';
  return Math.floor(s / 86400) + 'd' + pad(Math.floor(s % 86400 / 3600)) +
    'h';
}
function cell(row, column, text, cls) {
  const td = document.createElement('td');
  td.setAttribute('role', 'cell');
  td.dataset.label = COLUMNS[column];
  if (cls) td.className = cls;
  if (text !== undefined) td.textContent = text;
  row.appendChild(td);
  return td;
}
function row(view, lag) {
  const tr = document.createElement('tr');
  tr.setAttribute('role', 'row');
  tr.className = view.state;
  tr.dataset.image = view.image_id;
  tr.dataset.backend = view.backend || '';
  cell(tr, 0, view.image_id, 'id');
  cell(tr, 1, view.backend || '\u2013');
  let state = (MARKS[view.state] || '') + view.state;
  if (view.reason) state += ': ' + view.reason;
  if (view.error) state += ': ' + view.error;
  cell(tr, 2, state, 'state');
  const td = cell(tr, 3, undefined, 'num bar');
  const box = document.createElement('div');
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.setAttribute('aria-label', 'progress of ' + view.image_id);
  if (view.percent !== null && view.percent !== undefined) {
    bar.value = view.percent;
    bar.setAttribute('aria-valuenow', String(view.percent));
  }
  const pct = document.createElement('span');
  pct.className = 'pct';
  pct.textContent = view.percent === null ? '?' :
    view.percent.toFixed(1) + '%';
  box.append(bar, pct);
  td.appendChild(box);
  const stored = view.bytes === null ? '\u2013' :
    size(view.bytes) + ' / ' + size(view.total);
  cell(tr, 4, stored, 'num bytes');
  cell(tr, 5, view.rate_bytes_per_s === null ? '\u2013' :
       size(view.rate_bytes_per_s) + '/s', 'num');
  cell(tr, 6, duration(view.eta_s), 'num');
  const age = view.age_s === null ? null : view.age_s + lag;
  cell(tr, 7, age === null ? '\u2013' : duration(age) + ' ago', 'num');
  return tr;
}
const tbody = document.getElementById('uploads');
const caption = document.getElementById('caption');
const memcachedLine = document.getElementById('memcached');
const refreshedLine = document.getElementById('refreshed');
const statusLine = document.getElementById('status');
function show(doc) {
  const lag = doc.taken_at === null ? 0 : Math.max(0, doc.now - doc.taken_at);
  const rows = doc.views.map((v) => row(v, lag));
  const counts = {};
  for (const v of doc.views) counts[v.state] = (counts[v.state] || 0) + 1;
  const inFlight = (counts.uploading || 0) + (counts.finalizing || 0) +
    (counts.stalled || 0);
  caption.textContent = 'Uploads: ' + inFlight + ' in flight (' +
    (counts.stalled || 0) + ' stalled), ' + (counts.failed || 0) +
    ' failed recently';
  if (!rows.length) {
    const tr = document.createElement('tr');
    tr.setAttribute('role', 'row');
    const td = cell(tr, 0, 'No upload in flight.', 'empty');
    td.colSpan = COLUMNS.length;
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  const bad = Object.keys(doc.unreadable).sort();
  let text;
  if (doc.refresh_error) {
    text = 'The exporter could not read memcached: ' + doc.refresh_error;
  } else if (doc.taken_at === null) {
    text = 'memcached not read yet';
  } else if (bad.length) {
    text = 'memcached did not answer: ' + bad.map(
      (s) => s + ' (' + doc.unreadable[s] + ')').join(', ') +
      '; its uploads are not listed.';
  } else {
    text = 'memcached answered (' + doc.servers.length + ' of ' +
      doc.servers.length + ' servers).';
  }
  statusLine.className = (bad.length || doc.refresh_error) ? 'down' : '';
  if (memcachedLine.textContent !== text) memcachedLine.textContent = text;
  refreshedLine.textContent = ' Last refreshed ' +
    new Date().toLocaleTimeString() + (doc.taken_at === null ? '' :
    ', data read ' + duration(lag) + ' before.');
}
async function poll() {
  try {
    const response = await fetch('uploads.json', {cache: 'no-store'});
    if (!response.ok) throw new Error('HTTP ' + response.status);
    show(await response.json());
  } catch (e) {
    statusLine.className = 'down';
    memcachedLine.textContent = 'The exporter did not answer (' + e.message +
      '); showing older data.';
  }
  setTimeout(poll, 1000);
}
poll();
"""

_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Glance uploads in flight</title>
<style>%s</style>
</head>
<body>
<main>
<h1>Glance uploads in flight</h1>
<!-- Only the memcached part is announced when it changes; the time of
     each refresh (every second) is in a region that is not announced. -->
<p id="status" role="status" aria-live="polite"><span id="memcached">Loading
&hellip;</span><span id="refreshed" aria-live="off"></span></p>
<noscript><p>This page needs JavaScript; the same data is at
<a href="uploads.json">uploads.json</a> and <a href="metrics">metrics</a>.
</p></noscript>
<table role="table">
<caption id="caption">Uploads</caption>
<thead><tr role="row">
<th scope="col" role="columnheader">Image</th>
<th scope="col" role="columnheader">Backend</th>
<th scope="col" role="columnheader">State</th>
<th scope="col" role="columnheader">Progress</th>
<th scope="col" role="columnheader">Stored / total</th>
<th scope="col" role="columnheader">Rate</th>
<th scope="col" role="columnheader">ETA</th>
<th scope="col" role="columnheader">Last update</th>
</tr></thead>
<tbody id="uploads"></tbody>
</table>
</main>
<script>%s</script>
</body>
</html>
"""


def _hash(text):
    digest = hashlib.sha256(text.encode('utf-8')).digest()
    return "'sha256-%s'" % base64.b64encode(digest).decode('ascii')


PAGE = (_HTML % (STYLE, SCRIPT)).encode('utf-8')
CSP = ("default-src 'none'; script-src %s; style-src %s; "
       "connect-src 'self'; img-src data:; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'"
       % (_hash(SCRIPT), _hash(STYLE)))
