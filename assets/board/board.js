// cloze board's page script (served by `cloze board`, inlined by --export). Plain browser JavaScript: it reads the
// run list, a run's metrics and live updates from the board's server (or, in an export, from window.BOARD_DATA),
// and draws them with uPlot. It fetches nothing from anywhere else.
(() => {
  'use strict';
  const EMBED = window.BOARD_DATA || null;
  const $ = (s) => document.querySelector(s);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  };
  const enc = encodeURIComponent;
  const api = {
    list: async () => (EMBED ? EMBED.list : (await fetch('/api/list')).json()),
    metrics: async (id) => (EMBED ? EMBED.metrics[id] : (await fetch(`/api/metrics?id=${enc(id)}`)).json()),
    suite: async (id) => (EMBED ? EMBED.suites[id] : (await fetch(`/api/suite?id=${enc(id)}`)).json()),
    image: (path) => (EMBED ? EMBED.images[path] : `/files/${path.split('/').map(enc).join('/')}`),
  };
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  const state = { list: { runs: [], suites: [] }, selected: [], runs: new Map(), streams: new Map(), plots: [] };

  const fmt = (v, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(d)) : '–');

  // ---- the run list ----------------------------------------------------------------------------------------
  function renderList() {
    const body = $('#runs tbody');
    body.replaceChildren();
    for (const r of state.list.runs) {
      const box = el('input', { type: 'checkbox', 'data-id': r.id, 'aria-label': `plot ${r.id}` });
      box.checked = state.selected.includes(r.id);
      box.addEventListener('change', () => toggle(r.id, box.checked));
      const best = r.best ? `${r.best.metric} ${fmt(r.best.value)} (step ${r.best.step})` : '–';
      const status = el('span', { class: `status status-${r.status}`, title: r.statusNote || '' }, r.status);
      body.append(el('tr', { 'data-id': r.id }, el('td', {}, box), el('td', { class: 'id' }, r.id), el('td', {}, r.task || '–'), el('td', {}, r.preset || '–'),
        el('td', {}, r.method || '–'), el('td', {}, status), el('td', {}, r.step === null ? '–' : `${r.step}${r.totalSteps ? ` / ${r.totalSteps}` : ''}`),
        el('td', {}, fmt(r.lastLoss)), el('td', {}, best)));
    }
    if (state.list.runs.length === 0) body.append(el('tr', {}, el('td', { colspan: '9', class: 'empty' }, 'No runs (directories with metrics.jsonl) under this directory.')));
    renderNotes();
  }

  function renderNotes() {
    const notes = [];
    for (const r of state.list.runs) {
      const loaded = state.runs.get(r.id);
      if (loaded && loaded.problem) notes.push(`${r.id}: reading metrics.jsonl failed: ${loaded.problem}`);
      if (loaded && loaded.skipped.length) for (const s of loaded.skipped) notes.push(`${r.id}: metrics.jsonl line ${s.line} unreadable, skipped (${s.reason})`);
      else if (r.skipped > 0) notes.push(`${r.id}: ${r.skipped} unreadable metrics.jsonl line${r.skipped === 1 ? '' : 's'} skipped`);
    }
    $('#notes').replaceChildren(...notes.map((n) => el('p', { class: 'note' }, n)));
  }

  function unfollow(id) {
    const s = state.streams.get(id);
    if (s) s.close();
    state.streams.delete(id);
  }

  async function toggle(id, on) {
    if (on && !state.selected.includes(id)) {
      state.selected.push(id);
      const m = await api.metrics(id);
      // Unchecked while the metrics were on their way: nothing to show or follow.
      if (!state.selected.includes(id)) return;
      state.runs.set(id, { records: m.records, skipped: m.skipped, examplesPerStep: m.examplesPerStep ?? null, offset: m.offset, lines: m.lines });
      if (!EMBED) follow(id);
    } else if (!on) {
      state.selected = state.selected.filter((x) => x !== id);
      state.runs.delete(id);
      unfollow(id);
    }
    renderNotes();
    renderCharts();
  }

  // Live: the server pushes the lines appended after the run's offset as they arrive ('records'), or the whole file
  // again when it was replaced ('reset'). A dropped connection is reopened from the offset reached, not from the
  // first one (EventSource's own reconnection would send its first URL again, and lines would arrive twice).
  function follow(id) {
    unfollow(id);
    const run = state.runs.get(id);
    if (!run) return;
    const s = new EventSource(`/api/stream?id=${enc(id)}&offset=${run.offset}&lines=${run.lines}`);
    const take = (reset) => (ev) => {
      const r = state.runs.get(id);
      if (!r || state.streams.get(id) !== s) return;
      const c = JSON.parse(ev.data);
      if (reset) {
        r.records = c.records;
        r.skipped = c.skipped;
      } else {
        r.records.push(...c.records);
        r.skipped.push(...c.skipped);
      }
      r.offset = c.offset;
      r.lines = c.lines;
      renderNotes();
      renderCharts();
    };
    s.addEventListener('records', take(false));
    s.addEventListener('reset', take(true));
    s.addEventListener('problem', (ev) => {
      const r = state.runs.get(id);
      if (r) r.problem = JSON.parse(ev.data).message;
      renderNotes();
    });
    s.onerror = () => {
      s.close();
      if (state.streams.get(id) !== s) return;
      state.streams.delete(id);
      setTimeout(() => {
        if (state.runs.has(id) && !state.streams.has(id)) follow(id);
      }, 1000);
    };
    state.streams.set(id, s);
  }

  // ---- charts ------------------------------------------------------------------------------------------------
  const SKIP = new Set(['kind', 'step', 'time', 'epoch']);
  function chartSpecs() {
    const specs = [
      { key: 'train:loss', title: 'training loss', kind: 'train', get: (r) => r.loss },
      { key: 'train:lr', title: 'learning rate', kind: 'train', get: (r) => r.lr },
      { key: 'train:gradNorm', title: 'gradient norm', kind: 'train', get: (r) => r.gradNorm },
      { key: 'train:throughput', title: 'throughput (tokens or images / s)', kind: 'train', get: (r) => r.tokensPerSec },
    ];
    const evalKeys = new Set();
    const partKeys = new Set();
    for (const id of state.selected) {
      for (const r of state.runs.get(id)?.records ?? []) {
        if (r.kind === 'eval') for (const [k, v] of Object.entries(r)) if (!SKIP.has(k) && typeof v === 'number') evalKeys.add(k);
        if (r.kind === 'train' && r.parts && typeof r.parts === 'object') for (const k of Object.keys(r.parts)) partKeys.add(k);
      }
    }
    for (const k of [...partKeys].sort()) specs.push({ key: `part:${k}`, title: `training loss part: ${k}`, kind: 'train', get: (r) => r.parts?.[k] });
    for (const k of [...evalKeys].sort()) specs.push({ key: `eval:${k}`, title: `evaluation: ${k}`, kind: 'eval', get: (r) => r[k] });
    return specs;
  }

  // TensorBoard's smoothing: an exponential moving average, debiased at the start.
  function smooth(ys, a) {
    if (!(a > 0)) return ys;
    let m = 0;
    let n = 0;
    return ys.map((y) => {
      if (y === null) return null;
      m = a * m + (1 - a) * y;
      n = a * n + (1 - a);
      return m / n;
    });
  }

  // Axis labels that stay short and distinct: 12k, 3.2e-4, 0.65.
  function tick(v) {
    if (v === null || v === undefined) return '';
    const a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
    if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
    if (a < 1e-2) return v.toExponential(1);
    return String(+v.toPrecision(3));
  }

  function renderCharts() {
    for (const p of state.plots) p.destroy();
    state.plots = [];
    const box = $('#charts');
    box.replaceChildren();
    if (state.selected.length === 0) {
      box.append(el('p', { class: 'empty' }, 'Select runs above to plot them.'));
      return;
    }
    const byExamples = $('#x-axis').value === 'examples';
    const log = $('#log-scale').checked;
    const a = Number($('#smoothing').value);
    for (const spec of chartSpecs()) {
      const tables = [];
      const series = [{ label: byExamples ? 'examples' : 'step' }];
      let points = 0;
      state.selected.forEach((id, i) => {
        const run = state.runs.get(id);
        if (!run) return;
        const per = byExamples ? run.examplesPerStep || null : 1;
        const rows = run.records.filter((r) => r.kind === spec.kind && typeof spec.get(r) === 'number' && Number.isFinite(spec.get(r)));
        if (rows.length === 0 || per === null) return;
        // One value per x (a resumed run may repeat a step: the last line wins).
        const at = new Map();
        for (const r of rows) at.set(r.step * per, spec.get(r));
        const xs = [...at.keys()].sort((p, q) => p - q);
        const ys = smooth(xs.map((x) => at.get(x)), a).map((y) => (log && !(y > 0) ? null : y));
        points += xs.length;
        tables.push([xs, ys]);
        series.push({ label: id, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: xs.length < 40 } });
      });
      if (tables.length === 0) continue;
      const data = tables.length === 1 ? [tables[0][0], tables[0][1]] : uPlot.join(tables);
      const div = el('div', { class: 'chart', 'data-key': spec.key, 'data-points': String(points), 'data-series': String(tables.length) }, el('h3', {}, spec.title));
      box.append(div);
      const width = Math.max(320, Math.min(560, box.clientWidth - 20));
      const plot = new uPlot({
        width, height: 220, series,
        scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
        axes: [{ label: byExamples ? 'examples seen' : 'step', values: (u, vals) => vals.map(tick) }, { size: 64, values: (u, vals) => vals.map(tick) }],
        legend: { live: true },
      }, data, div);
      state.plots.push(plot);
    }
    if (byExamples && state.selected.some((id) => !state.runs.get(id)?.examplesPerStep)) {
      box.prepend(el('p', { class: 'note' }, 'Runs without a recorded batch (no run-status.json) are left out of the examples-seen axis.'));
    }
  }

  // ---- suites --------------------------------------------------------------------------------------------
  const esc = (s) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const inline = (s) => esc(s).replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  // The subset of Markdown the suites write: headings, tables, lists, paragraphs.
  function markdown(md) {
    const out = [];
    const lines = md.split('\n');
    for (let i = 0; i < lines.length; ) {
      const l = lines[i];
      if (/^#{1,6}\s/.test(l)) {
        const n = Math.min(6, l.match(/^#+/)[0].length + 2);
        out.push(`<h${n}>${inline(l.replace(/^#+\s*/, ''))}</h${n}>`);
        i++;
      } else if (l.trim().startsWith('|')) {
        const rows = [];
        while (i < lines.length && lines[i].trim().startsWith('|')) rows.push(lines[i++]);
        const cells = (r) => r.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
        const body = rows.filter((r, k) => !(k === 1 && /^[\s|:-]+$/.test(r)));
        out.push(`<table class="md"><thead><tr>${cells(body[0]).map((c) => `<th>${inline(c)}</th>`).join('')}</tr></thead><tbody>${body.slice(1).map((r) => `<tr>${cells(r).map((c) => `<td>${inline(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`);
      } else if (/^\s*[-*]\s/.test(l)) {
        const items = [];
        while (i < lines.length && /^\s*[-*]\s/.test(lines[i])) items.push(lines[i++].replace(/^\s*[-*]\s/, ''));
        out.push(`<ul>${items.map((t) => `<li>${inline(t)}</li>`).join('')}</ul>`);
      } else if (l.trim() === '') {
        i++;
      } else {
        const para = [];
        while (i < lines.length && lines[i].trim() !== '' && !/^(#|\s*\||\s*[-*]\s)/.test(lines[i])) para.push(lines[i++]);
        out.push(`<p>${inline(para.join(' '))}</p>`);
      }
    }
    return out.join('\n');
  }

  function renderSuites() {
    const box = $('#suites');
    box.replaceChildren();
    if (state.list.suites.length === 0) box.append(el('p', { class: 'empty' }, 'No suite outputs (directories with summary.md) under this directory.'));
    for (const s of state.list.suites) {
      const body = el('div', { class: 'suite-body' });
      const d = el('details', { class: 'suite', 'data-id': s.id }, el('summary', {}, `${s.id}: ${s.title}`), body);
      d.addEventListener('toggle', async () => {
        if (!d.open || body.childElementCount) return;
        const data = await api.suite(s.id);
        const md = el('div', { class: 'markdown' });
        md.innerHTML = markdown(data.markdown);
        body.append(md, ...data.charts.map((c) => el('figure', {}, el('img', { src: api.image(c), alt: c }), el('figcaption', {}, c))));
      });
      box.append(d);
    }
  }

  async function refreshList() {
    state.list = await api.list();
    renderList();
  }

  for (const id of ['#x-axis', '#log-scale', '#smoothing']) $(id).addEventListener('input', () => {
    $('#smoothing-value').textContent = $('#smoothing').value;
    renderCharts();
  });
  $('#mode').textContent = EMBED ? 'exported snapshot' : 'live';
  refreshList().then(() => {
    renderSuites();
    document.body.dataset.ready = '1';
  });
  // The list's statuses and steps: a small JSON every 5 s (the metrics themselves stream).
  if (!EMBED) setInterval(() => refreshList().catch(() => {}), 5000);
})();
