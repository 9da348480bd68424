// octo dashboard: plain JavaScript, no framework, no build step.
// Every string from the server goes into the page as text (textContent),
// never as HTML.
'use strict';

(() => {
  const TOKEN = document.querySelector('meta[name="octo-token"]').content;
  const POLL_MS = 2000;
  const main = document.getElementById('main');

  // ---- DOM helpers ----

  // h('a', {href: '#', class: 'x', onclick: fn, dataset: {k: v}}, 'text', child...)
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }
  // set replaces el's children when key changed since the last call: polling
  // does not rebuild (and flicker) what did not change.
  function set(el, key, build) {
    if (el._key === key) return;
    el._key = key;
    el.replaceChildren(...[build()].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
  }
  const enc = encodeURIComponent;
  const tick10s = () => Math.floor(Date.now() / 10000);

  // svg is h for SVG elements (attributes only, no handlers).
  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    }
    add(el, kids);
    return el;
  }
  const palette = ['#2563eb', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04'];
  // swatch is a legend's color square (SVG: the CSP allows no inline style).
  const swatch = (color) => svg('svg', { class: 'swatch', viewBox: '0 0 10 10', width: 10, height: 10 }, svg('rect', { width: 10, height: 10, rx: 2, fill: color }));

  // requestsChart draws a Worker's requests per step, stacked by version
  // (colors[version]), with the errors (5xx) in red on top of each bar.
  function requestsChart(m, colors) {
    const W = 720, H = 150, L = 44, B = 20, n = m.points.length;
    const top = Math.max(1, ...m.points.map((p) => p.requests));
    const bw = (W - L) / Math.max(n, 1);
    const y = (v) => H - B - (v / top) * (H - B - 8);
    const bars = m.points.map((p, i) => {
      const x = L + i * bw;
      let base = 0;
      const parts = Object.entries(p.byVersion || {}).sort().map(([v, c]) => {
        const r = svg('rect', { x: x + 0.5, y: y(base + c), width: Math.max(bw - 1, 1), height: y(base) - y(base + c), fill: colors[v] || '#94a3b8' });
        base += c;
        return r;
      });
      const err = p.errors ? svg('rect', { class: 'errors', x: x + 0.5, y: y(p.errors), width: Math.max(bw - 1, 1), height: y(0) - y(p.errors), fill: '#dc2626', opacity: 0.85 }) : null;
      return svg('g', { 'data-requests': p.requests, 'data-errors': p.errors, 'data-start': p.start },
        svg('title', {}, new Date(p.start).toLocaleTimeString() + ': ' + p.requests + ' requests, ' + p.errors + ' errors'), parts, err);
    });
    const label = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return svg('svg', { class: 'chart', id: 'requests-chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Requests per ' + (m.step === 60 ? 'minute' : 'hour') },
      svg('line', { x1: L, y1: H - B, x2: W, y2: H - B, stroke: '#cbd5e1' }),
      svg('text', { x: L - 6, y: 12, 'text-anchor': 'end', class: 'axis' }, String(top)),
      svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'axis' }, '0'),
      n ? svg('text', { x: L, y: H - 4, class: 'axis' }, label(m.points[0].start)) : null,
      n ? svg('text', { x: W, y: H - 4, 'text-anchor': 'end', class: 'axis' }, label(m.points[n - 1].start)) : null,
      bars);
  }

  // latencyChart draws p50 and p99 (ms) per step where there were requests.
  function latencyChart(m) {
    const W = 720, H = 110, L = 44, B = 20, n = m.points.length;
    const top = Math.max(1, ...m.points.map((p) => p.p99));
    const x = (i) => L + (i + 0.5) * ((W - L) / Math.max(n, 1));
    const y = (v) => H - B - (v / top) * (H - B - 8);
    const line = (k, color) => svg('g', {},
      svg('polyline', { class: k, fill: 'none', stroke: color, 'stroke-width': 2,
        points: m.points.map((p, i) => p.requests ? x(i) + ',' + y(p[k]) : null).filter(Boolean).join(' ') }),
      m.points.map((p, i) => p.requests ? svg('circle', { cx: x(i), cy: y(p[k]), r: 2.5, fill: color }) : null));
    return svg('svg', { class: 'chart', id: 'latency-chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Latency p50 and p99' },
      svg('line', { x1: L, y1: H - B, x2: W, y2: H - B, stroke: '#cbd5e1' }),
      svg('text', { x: L - 6, y: 12, 'text-anchor': 'end', class: 'axis' }, top + ' ms'),
      svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'axis' }, '0'),
      line('p50', '#2563eb'), line('p99', '#ea580c'));
  }

  // usageChart draws the CPU of a Worker's pods per step as bars (% of one
  // core, left axis) and their largest working set as a line (MiB, right
  // axis). id tells the chart apart on a page.
  function usageChart(u, id) {
    const W = 720, H = 110, L = 44, R = 56, B = 20, n = u.points.length;
    const topCPU = Math.max(1, ...u.points.map((p) => Math.ceil(p.cores * 100)));
    const topMem = Math.max(1, ...u.points.map((p) => Math.ceil(p.memoryBytes / 1048576)));
    const bw = (W - L - R) / Math.max(n, 1);
    const y = (v, top) => H - B - (v / top) * (H - B - 8);
    const mib = (p) => p.memoryBytes / 1048576;
    return svg('svg', { class: 'chart', id, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'CPU and memory of the pods' },
      svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#cbd5e1' }),
      svg('text', { x: L - 6, y: 12, 'text-anchor': 'end', class: 'axis' }, topCPU + ' %'),
      svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'axis' }, '0'),
      svg('text', { x: W - R + 6, y: 12, class: 'axis' }, topMem + ' MiB'),
      u.points.map((p, i) => svg('g', { 'data-cpu': p.cpuSeconds, 'data-memory': p.memoryBytes, 'data-start': p.start },
        svg('title', {}, new Date(p.start).toLocaleTimeString() + ': ' + (p.cores * 100).toFixed(1) + ' % of a core, ' + mib(p).toFixed(0) + ' MiB'),
        svg('rect', { x: L + i * bw + 0.5, y: y(p.cores * 100, topCPU), width: Math.max(bw - 1, 1), height: y(0, topCPU) - y(p.cores * 100, topCPU), fill: '#0891b2' }))),
      svg('polyline', { class: 'memory', fill: 'none', stroke: '#9333ea', 'stroke-width': 2,
        points: u.points.map((p, i) => p.memoryBytes ? (L + (i + 0.5) * bw) + ',' + y(mib(p), topMem) : null).filter(Boolean).join(' ') }),
      u.points.map((p, i) => p.memoryBytes ? svg('circle', { cx: L + (i + 0.5) * bw, cy: y(mib(p), topMem), r: 2.5, fill: '#9333ea' }) : null));
  }

  // usageSection is the text, chart and legend of a usage (see usageChart).
  function usageSection(u, id, what) {
    if (!u) return null;
    if (u.error) return h('p', { class: 'error' }, 'CPU and memory unavailable: ' + u.error);
    const latest = u.points.filter((p) => p.memoryBytes).slice(-1)[0];
    return [
      h('p', { id: id + '-total', dataset: { cpu: u.cpuSeconds } },
        h('b', {}, u.cpuSeconds.toFixed(2) + ' s of CPU'), ' · memory ', latest ? (latest.memoryBytes / 1048576).toFixed(0) + ' MiB' : '—',
        h('span', { class: 'muted small' }, ' · ' + what)),
      usageChart(u, id),
      h('p', { class: 'legend small' }, swatch('#0891b2'), ' CPU (% of one core)  ', swatch('#9333ea'), ' memory (working set)'),
    ];
  }

  function pill(state, text) {
    const s = String(state || 'unknown');
    const l = s.toLowerCase();
    let cls = 'grey';
    if (['ready', 'succeeded', 'running', 'true', 'healthy', 'live', 'ok', 'normal'].includes(l)) cls = 'green';
    else if (['failed', 'false', 'error', 'unhealthy', 'crashloopbackoff', 'warning', 'exception', 'exceededcpu', 'exceededmemory', 'canceled', 'unreachable'].includes(l)) cls = 'red';
    else if (['starting', 'pending', 'building', 'waiting', 'stopping', 'connecting', 'reconnecting', 'rolling out'].includes(l)) cls = 'amber';
    return h('span', { class: 'pill ' + cls, dataset: { state: s } }, text === undefined ? s : text);
  }
  function shortID(id) { return id ? id.slice(0, 8) : ''; }
  function ago(t) {
    if (!t) return '';
    const d = (Date.now() - new Date(t).getTime()) / 1000;
    if (d < 0) return 'just now';
    if (d < 60) return Math.floor(d) + ' s ago';
    if (d < 3600) return Math.floor(d / 60) + ' min ago';
    if (d < 86400) return Math.floor(d / 3600) + ' h ago';
    return Math.floor(d / 86400) + ' d ago';
  }
  function when(t) {
    if (!t) return h('span', { class: 'muted' }, '—');
    return h('time', { datetime: t, title: new Date(t).toLocaleString() }, ago(t));
  }
  function duration(ms) {
    if (!ms) return '—';
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return Math.floor(ms / 60000) + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
  }
  function bytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
    return (n / (1 << 20)).toFixed(1) + ' MiB';
  }
  function table(cls, head, rows, empty) {
    if (!rows.length) return h('p', { class: 'empty' }, empty);
    return h('table', { class: cls },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))),
      h('tbody', {}, rows));
  }
  function traffic(dep) {
    if (!dep || !dep.versions.length) return h('span', { class: 'muted' }, 'not deployed');
    return h('span', { class: 'traffic' }, dep.versions.map((v) =>
      h('span', { class: 'chip', title: v.versionID }, 'v' + (v.number || '?') + ' ', h('b', {}, v.percentage + '%'))));
  }
  function extLink(url) {
    return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'url' }, url);
  }

  // ---- server calls ----

  async function api(method, path, body, rawBody) {
    const opt = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') opt.headers['X-Octo-Token'] = TOKEN;
    if (rawBody !== undefined) {
      opt.headers['Content-Type'] = 'application/octet-stream';
      opt.body = rawBody;
    } else if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    const r = await fetch('/dashboard/api' + path, opt);
    let data = {};
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) {
      const err = new Error(data.error || r.status + ' ' + r.statusText);
      err.status = r.status;
      if (r.status === 401) showLoggedOut(err.message);
      throw err;
    }
    return data;
  }

  // showLoggedOut replaces the view when the session ended (it expired, or
  // the daemon restarted): the server's message says how to log in again.
  let loggedOut = false;
  function showLoggedOut(msg) {
    if (loggedOut) return;
    loggedOut = true;
    if (current && current.ctl.unmount) current.ctl.unmount();
    main.replaceChildren(h('section', { class: 'card', id: 'logged-out' },
      h('h2', {}, 'Logged out'), h('p', {}, msg)));
  }

  let toastTimer;
  function toast(msg, bad) {
    const t = document.getElementById('toast');
    t.textContent = msg;
    t.className = bad ? 'bad' : 'good';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
  }

  // confirmDialog asks in the page's <dialog>; it resolves true only for its
  // OK button. The buttons settle the promise themselves (a late "close"
  // event of an earlier use of the dialog must not answer a new question).
  let confirmSettle = null;
  function settleConfirm(v) {
    const f = confirmSettle;
    confirmSettle = null;
    if (f) f(v);
  }
  {
    const dlg = document.getElementById('confirm');
    document.getElementById('confirm-ok').addEventListener('click', (e) => { e.preventDefault(); dlg.close('ok'); settleConfirm(true); });
    document.getElementById('confirm-cancel').addEventListener('click', (e) => { e.preventDefault(); dlg.close('cancel'); settleConfirm(false); });
    dlg.addEventListener('close', () => { if (!dlg.open) settleConfirm(false); }); // Esc
  }
  function confirmDialog(title, text, okLabel) {
    const dlg = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel || 'Delete';
    settleConfirm(false);
    return new Promise((resolve) => {
      confirmSettle = resolve;
      dlg.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  // action runs a change and refreshes the view; buttons are disabled meanwhile.
  async function action(btn, fn, okMsg) {
    if (btn) btn.disabled = true;
    try {
      await fn();
      if (okMsg) toast(okMsg);
      await refresh(true);
    } catch (e) {
      toast(e.message, true);
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  // ---- views ----

  const views = {};

  // accountPicker is the Account <select> of the storage views. Its sync()
  // keeps st.account on an existing account (the first one by default) and
  // returns it; picking another account calls onChange.
  function accountPicker(id, st, onChange) {
    const sel = h('select', { id, 'aria-label': 'Account' });
    sel.addEventListener('change', () => { st.account = sel.value; onChange(); });
    sel.sync = async () => {
      const accts = (await api('GET', '/workers')).accounts;
      if (!st.account || !accts.some((a) => a.id === st.account)) st.account = accts.length ? accts[0].id : '';
      set(sel, JSON.stringify(accts.map((a) => a.id)), () => accts.map((a) => h('option', { value: a.id }, a.name + ' (' + shortID(a.id) + ')')));
      sel.value = st.account;
      return st.account;
    };
    return sel;
  }

  // pick keeps cur when items holds it (by idOf), else the first item's id
  // or '' for none.
  function pick(cur, items, idOf) {
    if (cur && items.some((x) => idOf(x) === cur)) return cur;
    return items.length ? idOf(items[0]) : '';
  }

  // Overview: parts, counts, env lines.
  views.overview = {
    title: 'Overview',
    mount(root) {
      const status = h('div', { id: 'platform', class: 'card' });
      const counts = h('div', { id: 'counts', class: 'tiles' });
      const parts = h('div', { id: 'parts' });
      const env = h('pre', { id: 'env', class: 'env' });
      const envVars = h('p', { id: 'env-vars', class: 'muted small' });
      const copy = h('button', {
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(env.textContent + '\n');
            toast('Copied the command');
          } catch (e) {
            const r = document.createRange();
            r.selectNodeContents(env);
            getSelection().removeAllRanges();
            getSelection().addRange(r);
            toast('Selected: press Ctrl+C to copy');
          }
        },
      }, 'Copy');
      const traffic = h('div', { id: 'platform-metrics' });
      root.append(
        h('section', {}, status, counts),
        h('section', { class: 'card', id: 'traffic' }, h('h2', {}, 'Requests, all Workers'), traffic),
        h('section', { class: 'card' }, h('h2', {}, 'Parts'), parts),
        h('section', { class: 'card' },
          h('div', { class: 'row' }, h('h2', {}, 'Environment'), h('span', { class: 'spacer' }), copy),
          h('p', { class: 'muted small' }, 'Run this in a shell: wrangler, kubectl and S3 clients then talk to this octo. ' +
            'It needs root: the values (the API token, the S3 keys) are never shown here.'),
          env, envVars));
      return {
        async refresh() {
          const o = await api('GET', '/overview');
          showHealth(o);
          const bad = o.parts.filter((p) => p.state !== 'ready');
          set(status, JSON.stringify([o.healthy, o.state, bad, o.version]), () => [
            h('div', { class: 'row' },
              h('span', { class: 'big ' + (o.healthy ? 'good' : 'bad') }, o.healthy
                ? 'All ' + o.parts.length + ' parts are healthy'
                : bad.length + ' of ' + o.parts.length + ' parts are not ready'),
              h('span', { class: 'spacer' }),
              h('span', { class: 'muted' }, 'octo ' + (o.version || ''), ' · daemon ', pill(o.state))),
            h('p', { class: 'muted' }, 'API: ', h('code', {}, o.apiURL), ' · Workers: ',
              h('code', {}, 'http://<script>.' + (o.subdomain || '<subdomain>') + '.workers.localhost:' + location.port + '/')),
          ]);
          set(counts, JSON.stringify(o.counts), () => [
            ['accounts', 'Accounts', '#/workers'], ['workers', 'Workers', '#/workers'],
            ['versions', 'Versions', '#/workers'], ['builds', 'Builds', '#/builds'],
          ].map(([k, label, href]) => h('a', { class: 'tile', href, dataset: { count: k } },
            h('span', { class: 'num' }, o.counts[k]), h('span', {}, label))));
          set(parts, JSON.stringify(o.parts), () => table('parts', ['Part', 'State', 'Endpoint', ''],
            o.parts.map((p) => h('tr', { dataset: { part: p.name, state: p.state } },
              h('td', {}, h('b', {}, p.name)), h('td', {}, pill(p.state)),
              h('td', {}, p.endpoint ? h('code', {}, p.endpoint) : h('span', { class: 'muted' }, '—')),
              h('td', { class: 'error' }, p.error || ''))),
            'The daemon reports no parts.'));
          const m = o.metrics;
          set(traffic, JSON.stringify([m, o.usage]), () => !m ? h('p', { class: 'muted' }, 'No metrics: this dashboard has no gateway to ask.')
            : m.error ? h('p', { class: 'error' }, 'Metrics unavailable: ' + m.error)
              : [h('p', { id: 'platform-total', dataset: { requests: m.total.requests, errors: m.total.errors } },
                h('b', {}, m.total.requests + ' requests'), ' · ', h('span', { class: m.total.errors ? 'error' : '' }, m.total.errors + ' errors (5xx)'),
                ' · p50 ≤ ' + m.total.p50 + ' ms · p99 ≤ ' + m.total.p99 + ' ms',
                h('span', { class: 'muted small' }, ' · per minute, last hour, every Worker of every account')),
              requestsChart(m, { '': '#2563eb' }), usageSection(o.usage, 'platform-usage', 'the pods of every Worker, sampled from the kubelet')]);
          set(env, o.envCommand, () => o.envCommand);
          set(envVars, JSON.stringify(o.envVars), () => o.envVars.length
            ? ['It sets ', o.envVars.map((n, i) => [i ? ' ' : '', h('code', {}, n)])]
            : 'It sets no variables.');
        },
      };
    },
  };

  // Workers: per account, every script.
  views.workers = {
    title: 'Workers',
    mount(root) {
      const list = h('div', { id: 'workers' });
      root.append(list);
      return {
        async refresh() {
          const data = await api('GET', '/workers');
          set(list, JSON.stringify(data) + tick10s(), () => data.accounts.map((a) => h('section', { class: 'card', dataset: { account: a.id } },
            h('h2', {}, a.name, ' ', h('span', { class: 'muted small' }, a.id + ' · ' + a.subdomain + '.workers.localhost')),
            table('workers', ['Worker', 'URL', 'Active deployment', 'Last deploy', 'Build', 'Serving'],
              a.workers.map((w) => h('tr', { dataset: { script: w.script } },
                h('td', {}, h('a', { href: '#/worker/' + enc(a.id) + '/' + enc(w.script), class: 'script' }, w.script),
                  h('div', { class: 'muted small' }, w.versions + (w.versions === 1 ? ' version' : ' versions'))),
                h('td', {}, extLink(w.url)),
                h('td', {}, traffic(w.deployment)),
                h('td', {}, when(w.lastDeploy)),
                h('td', { title: w.build.message || '' }, pill(w.build.phase)),
                h('td', { title: w.message || '' }, pill(w.ready ? 'ready' : 'waiting', w.ready ? 'yes' : 'not yet')))),
              'No workers yet: deploy one with wrangler deploy.'))));
        },
      };
    },
  };

  // One worker: versions, deployments, actions.
  views.worker = {
    title: 'Worker',
    mount(root, [account, script]) {
      const head = h('div', { id: 'worker-head', class: 'card' });
      const versions = h('div', { id: 'versions' });
      const deployments = h('div', { id: 'deployments' });
      const cron = h('section', { class: 'card', id: 'cron' });
      cron.hidden = true;
      const metricsCard = h('div', { id: 'metrics-body' });
      let win = '1h';
      const winBtn = (w) => h('button', { id: 'metrics-' + w, class: 'small', onclick: () => { win = w; metricsCard._key = ''; refreshNow(); } }, w === '1h' ? 'Last hour' : 'Last 24 hours');
      let refreshNow = () => {};
      // Workers Logs: a search of the kept invocations.
      const logsQ = h('input', { id: 'logs-q', type: 'search', placeholder: 'text in messages, exceptions or URL', 'aria-label': 'Search text' });
      const logsLevel = h('select', { id: 'logs-level', 'aria-label': 'Level' },
        ['', 'info', 'warn', 'error'].map((l) => h('option', { value: l }, l ? l + ' and above' : 'all levels')));
      const logsWindow = h('select', { id: 'logs-window', 'aria-label': 'Window' },
        [['1h', 'last hour'], ['24h', 'last 24 hours'], ['3d', 'last 3 days']].map(([v, t]) => h('option', { value: v }, t)));
      logsWindow.value = '24h';
      const logsBody = h('div', { id: 'logs-body' });
      const logsSearch = h('button', { id: 'logs-search', class: 'small', onclick: () => { logsBody._key = ''; refreshNow(); } }, 'Search');
      logsQ.addEventListener('keydown', (e) => { if (e.key === 'Enter') logsSearch.click(); });
      const selA = h('select', { id: 'split-a', 'aria-label': 'Version A' });
      const selB = h('select', { id: 'split-b', 'aria-label': 'Version B' });
      const pct = h('input', { id: 'split-pct', type: 'number', min: 0, max: 100, value: 50, 'aria-label': 'Percent for A' });
      const range = h('input', { type: 'range', min: 0, max: 100, value: 50, 'aria-label': 'Percent for A' });
      const pctB = h('span', { id: 'split-pct-b' }, '50');
      const showB = (v) => { pctB.textContent = String(Math.min(100, Math.max(0, 100 - Number(v)))); };
      range.addEventListener('input', () => { pct.value = range.value; showB(range.value); });
      pct.addEventListener('input', () => { range.value = pct.value; showB(pct.value); });
      const splitNote = h('p', { class: 'muted small', id: 'split-note' });
      const splitBtn = h('button', {
        id: 'split-deploy', class: 'primary',
        onclick: () => action(splitBtn, () => api('POST', '/actions/split',
          { account, script, a: selA.value, b: selB.value, percentA: Number(pct.value) }),
        'Deployed ' + pct.value + '/' + (100 - Number(pct.value))),
      }, 'Deploy split');
      const delBtn = h('button', {
        id: 'delete-worker', class: 'danger',
        onclick: async () => {
          const ok = await confirmDialog('Delete ' + script + '?',
            'This deletes the worker ' + script + ' with all its versions, deployments and secrets. It cannot be undone.', 'Delete worker');
          if (!ok) return;
          await action(delBtn, async () => {
            await api('DELETE', '/workers/' + enc(account) + '/' + enc(script));
            location.hash = '#/workers';
          }, 'Deleted ' + script);
        },
      }, 'Delete…');
      root.append(
        h('p', { class: 'crumbs' }, h('a', { href: '#/workers' }, 'Workers'), ' / ', script),
        head,
        h('section', { class: 'card' }, h('h2', {}, 'Versions'), versions),
        h('section', { class: 'card', id: 'split' }, h('h2', {}, 'Gradual deployment'),
          h('div', { class: 'row wrap' }, h('label', {}, 'A ', selA), pct, range, h('span', {}, '% · B gets ', pctB, '%'),
            h('label', {}, 'B ', selB), splitBtn), splitNote),
        h('section', { class: 'card', id: 'metrics' }, h('div', { class: 'row wrap' }, h('h2', {}, 'Metrics'), winBtn('1h'), winBtn('24h')), metricsCard),
        h('section', { class: 'card', id: 'logs' }, h('h2', {}, 'Logs'),
          h('div', { class: 'row wrap' }, logsQ, logsLevel, logsWindow, logsSearch), logsBody),
        cron,
        h('section', { class: 'card' }, h('h2', {}, 'Deployment history'), deployments));
      function fillSelect(sel, vs, fallback) {
        const keep = sel.value;
        set(sel, JSON.stringify(vs.map((v) => v.id)), () => vs.map((v) =>
          h('option', { value: v.id }, 'v' + v.number + ' · ' + shortID(v.id) + (v.message ? ' · ' + v.message : ''))));
        if (keep && vs.some((v) => v.id === keep)) sel.value = keep;
        else if (fallback) sel.value = fallback;
      }
      const view = {
        async refresh() {
          let data;
          try {
            data = await api('GET', '/workers/' + enc(account) + '/' + enc(script) + '?window=' + win);
          } catch (e) {
            if (e.status === 404) {
              set(head, '404', () => h('p', { class: 'empty' }, e.message));
              set(versions, '404', () => []);
              set(deployments, '404', () => []);
              return;
            }
            throw e;
          }
          const w = data.worker;
          set(head, JSON.stringify(w) + tick10s(), () => [
            h('div', { class: 'row' }, h('h1', {}, script), h('span', { class: 'spacer' }),
              h('a', { class: 'button', href: '#/tail/' + enc(account) + '/' + enc(script), id: 'open-tail' }, 'Live tail'), delBtn),
            h('dl', { class: 'facts' },
              h('dt', {}, 'URL'), h('dd', {}, extLink(w.url)),
              h('dt', {}, 'Account'), h('dd', {}, data.account.name + ' ', h('span', { class: 'muted' }, data.account.id)),
              h('dt', {}, 'Active deployment'), h('dd', { id: 'active' }, traffic(w.deployment)),
              h('dt', {}, 'Last deploy'), h('dd', {}, when(w.lastDeploy)),
              h('dt', {}, 'Build'), h('dd', {}, pill(w.build.phase), ' ', h('span', { class: 'muted small' }, w.build.jobBuilder || ''),
                w.build.phase === 'Failed' ? h('div', { class: 'error' }, w.build.message) : null),
              h('dt', {}, 'Serving'), h('dd', {}, pill(w.ready ? 'ready' : 'waiting', w.ready ? 'yes' : 'not yet'), ' ',
                h('span', { class: 'muted small' }, w.message || ''))),
          ]);
          set(versions, JSON.stringify(data.versions) + tick10s(), () => table('versions',
            ['Version', 'Uploaded', 'Message / tag', 'Bindings', 'Traffic', ''],
            data.versions.map((v) => {
              const full = v.percentage === 100;
              const btn = h('button', {
                class: 'rollback', dataset: { version: v.id }, disabled: full,
                title: full ? 'Already serves all traffic' : 'Deploy this version to 100 % of the traffic',
                onclick: () => action(btn, () => api('POST', '/actions/rollback', { account, script, version: v.id }),
                  'v' + v.number + ' now serves 100 %'),
              }, full ? 'Active' : (v.percentage > 0 ? 'Make 100 %' : 'Roll back to this'));
              return h('tr', { dataset: { version: v.id }, class: v.percentage > 0 ? 'active' : '' },
                h('td', {}, h('b', {}, 'v' + v.number), ' ', h('code', { title: v.id }, shortID(v.id)),
                  v.phase && v.phase !== 'Ready' ? [' ', pill(v.phase)] : null,
                  v.statusMessage ? h('div', { class: 'error small' }, v.statusMessage) : null),
                h('td', {}, when(v.createdAt), h('div', { class: 'muted small' }, [v.triggeredBy, v.source].filter(Boolean).join(' · '))),
                h('td', {}, v.message || h('span', { class: 'muted' }, '—'), v.tag ? [' ', h('span', { class: 'chip' }, v.tag)] : null),
                h('td', { class: 'bindings' }, v.assets ? h('div', { class: 'binding assets' },
                  h('code', {}, v.assets.binding || 'assets'), ' ', h('span', { class: 'muted small' }, v.assets.assetsOnly ? 'static assets only' : 'static assets'), ' ',
                  h('span', {}, v.assets.files + ' files'),
                  v.assets.notFoundHandling && v.assets.notFoundHandling !== 'none' ? [' · ', h('span', { class: 'muted small' }, v.assets.notFoundHandling)] : null) : null,
                v.bindings.length ? v.bindings.map((b) => h('div', { class: 'binding' },
                  h('code', {}, b.name), ' ', h('span', { class: 'muted small' }, b.type), ' ',
                  b.secret ? h('span', { class: 'secret' }, 'hidden') : h('code', { class: 'value' }, b.value))) : (v.assets ? null : h('span', { class: 'muted' }, '—'))),
                h('td', {}, v.percentage ? h('b', {}, v.percentage + '%') : h('span', { class: 'muted' }, '0%')),
                h('td', {}, btn));
            }), 'No versions.'));
          const dep = w.deployment ? w.deployment.versions : [];
          fillSelect(selA, data.versions, data.versions[0] && data.versions[0].id);
          const other = dep.find((v) => v.versionID !== selA.value);
          fillSelect(selB, data.versions, other ? other.versionID : (data.versions[1] || data.versions[0] || {}).id);
          const one = data.versions.length < 2;
          splitBtn.disabled = one;
          splitNote.textContent = one ? 'A split needs two versions: upload another with wrangler versions upload.'
            : 'Splits the traffic between two versions, as wrangler versions deploy does.';
          const m = data.metrics;
          set(metricsCard, JSON.stringify([m, data.usage]) + win, () => {
            if (!m) return h('p', { class: 'muted' }, 'No metrics: this dashboard has no gateway to ask.');
            if (m.error) return h('p', { class: 'error' }, 'Metrics unavailable: ' + m.error);
            const colors = {};
            data.versions.slice().reverse().forEach((v, i) => { colors[v.id] = palette[i % palette.length]; });
            const t = m.total;
            const used = Object.keys(Object.assign({}, ...m.points.map((p) => p.byVersion || {})));
            return [
              h('p', { id: 'metrics-total', dataset: { requests: t.requests, errors: t.errors } },
                h('b', {}, t.requests + ' requests'), ' · ', h('span', { class: t.errors ? 'error' : '' }, t.errors + ' errors (5xx)'),
                ' · 4xx ', String(t.status[3]), ' · p50 ≤ ', t.p50 + ' ms', ' · p99 ≤ ', t.p99 + ' ms',
                h('span', { class: 'muted small' }, ' · ' + (win === '1h' ? 'per minute, last hour' : 'per hour, last 24 hours') + ' · counted by the gateway')),
              requestsChart(m, colors),
              h('p', { class: 'legend small' }, used.sort().map((v) => [swatch(colors[v] || '#94a3b8'),
                ' ', v ? 'v' + ((data.versions.find((x) => x.id === v) || {}).number || '?') + ' ' + shortID(v) : 'no version', '  ']), swatch('#dc2626'), ' errors (5xx)'),
              latencyChart(m),
              h('p', { class: 'legend small' }, swatch('#2563eb'), ' p50  ', swatch('#ea580c'), ' p99 (ms, bucket bounds)'),
              usageSection(data.usage, 'usage-chart', data.usage && data.usage.bundles.length
                ? 'of the pods of ' + data.usage.bundles.map((b) => b.name + ' (' + b.workers + (b.workers === 1 ? ' Worker' : ' Workers, shared') + ')').join(', ') + '; workerd reports no CPU time per request'
                : 'no pod runs this Worker'),
            ];
          });
          const lq = new URLSearchParams({ q: logsQ.value, level: logsLevel.value, window: logsWindow.value });
          const logs = await api('GET', '/workers/' + enc(account) + '/' + enc(script) + '/logs?' + lq);
          set(logsBody, JSON.stringify(logs) + tick10s(), () => [
            h('p', { id: 'logs-state', class: 'muted small', dataset: { enabled: logs.enabled } },
              !logs.available ? 'This dashboard keeps no logs.'
                : logs.enabled ? 'Logs kept for ' + Math.round(logs.samplingRate * 100) + ' % of the invocations (at most 100 a second), 3 days unless octo up --logs-retention-days says otherwise (observability.enabled in the Worker\'s wrangler config).'
                  : 'Logs are not kept: add [observability] enabled = true to the Worker\'s wrangler config and deploy. Older logs below, if any.'),
            table('logs-entries', ['When', 'Level', 'Version', 'Invocation', 'Output'],
              logs.entries.map((e) => h('tr', { dataset: { level: e.level, outcome: e.outcome } },
                h('td', {}, when(e.time)),
                h('td', {}, pill(e.level === 'error' ? 'error' : e.level === 'warn' ? 'warning' : 'ok', e.level)),
                h('td', {}, e.version ? h('code', { title: e.version }, shortID(e.version)) : h('span', { class: 'muted' }, '—')),
                h('td', { class: 'small' }, e.trigger, e.outcome !== 'ok' ? [' ', pill(e.outcome)] : null),
                h('td', { class: 'small logs' }, e.logs.map((l) => h('div', {}, h('code', {}, l))),
                  e.exceptions.map((x) => h('div', { class: 'error' }, x))))),
              'No invocations match.'),
          ]);
          const c = data.cron;
          cron.hidden = !c.schedules.length && !c.runs.length;
          set(cron, JSON.stringify(c) + tick10s(), () => [
            h('h2', {}, 'Cron triggers'),
            h('p', {}, c.schedules.length ? c.schedules.map((s) => [h('code', { class: 'chip' }, s.cron), ' '])
              : h('span', { class: 'muted' }, 'No cron triggers (the runs below are older).'),
              h('span', { class: 'muted small' }, ' · UTC · set by wrangler deploy (triggers.crons) or wrangler triggers deploy')),
            table('cron-runs', ['Scheduled for', 'Cron', 'Outcome', 'Version', 'Took'],
              c.runs.map((r) => h('tr', { dataset: { outcome: r.outcome } },
                h('td', {}, when(r.scheduledTime)),
                h('td', {}, h('code', {}, r.cron)),
                h('td', {}, pill(r.outcome), r.message ? h('div', { class: 'error small' }, r.message) : null),
                h('td', {}, r.versionID ? h('code', { title: r.versionID }, shortID(r.versionID)) : h('span', { class: 'muted' }, '—')),
                h('td', { class: 'muted small' }, r.durationMs + ' ms'))),
              'No runs yet: the next one is at the next time a cron names.'),
          ]);
          set(deployments, JSON.stringify(data.deployments) + tick10s(), () => table('deployments',
            ['When', 'Traffic', 'Message', 'By'],
            data.deployments.map((d) => h('tr', { class: d.active ? 'active' : '', dataset: { deployment: d.id } },
              h('td', {}, when(d.createdOn), d.active ? [' ', pill('ready', 'active')] : null),
              h('td', {}, traffic(d)),
              h('td', {}, d.message || h('span', { class: 'muted' }, '—'), d.triggeredBy ? h('div', { class: 'muted small' }, d.triggeredBy) : null),
              h('td', { class: 'muted small' }, [d.source, d.author].filter(Boolean).join(' · ')))),
            'No deployments.'));
        },
      };
      refreshNow = () => view.refresh();
      return view;
    },
  };

  // Builds: JobBuilders.
  views.builds = {
    title: 'Builds',
    mount(root) {
      const list = h('section', { class: 'card' }, h('h2', {}, 'Image builds'));
      const body = h('div', { id: 'builds' });
      list.append(body);
      root.append(list);
      return {
        async refresh() {
          const data = await api('GET', '/builds');
          set(body, JSON.stringify(data) + tick10s(), () => table('builds',
            ['Build', 'Phase', 'Workers', 'Image digest', 'Duration', 'Started', 'Message'],
            data.builds.map((b) => h('tr', { dataset: { build: b.name, phase: b.phase } },
              h('td', {}, h('code', {}, b.name), b.current ? [' ', h('span', { class: 'chip' }, 'current')] : null,
                h('div', { class: 'muted small' }, 'bundle ' + b.bundle + ' · ' + b.namespace)),
              h('td', {}, pill(b.phase)),
              h('td', { title: b.inputs.map((i) => i.script + ' ' + i.versionID).join('\n') }, b.inputs.length,
                h('div', { class: 'muted small' }, [...new Set(b.inputs.map((i) => i.script))].join(', '))),
              h('td', {}, b.digest ? h('code', { title: b.image || b.digest }, b.digest.slice(0, 19) + '…') : h('span', { class: 'muted' }, '—')),
              h('td', {}, duration(b.durationMs)),
              h('td', {}, when(b.startedAt || b.createdAt)),
              h('td', { class: 'error' }, b.phase === 'Failed' ? b.message : '',
                b.failed.map((f) => h('div', {}, f.script + ' ' + shortID(f.versionID) + ': ' + (f.message || 'failed to start')))))),
            'No builds yet: they start when a worker is deployed.'));
        },
      };
    },
  };

  // KV: namespaces, keys, values.
  views.kv = {
    title: 'KV',
    mount(root) {
      const st = { account: '', ns: '', key: '' };
      const acctSel = accountPicker('kv-account', st, () => { st.ns = ''; st.key = ''; refresh(true); });
      const nsList = h('div', { id: 'kv-namespaces', class: 'list' });
      const prefix = h('input', { id: 'kv-prefix', type: 'search', placeholder: 'Filter by prefix', 'aria-label': 'Key prefix' });
      const keys = h('div', { id: 'kv-keys', class: 'list keys' });
      const value = h('div', { id: 'kv-value' });
      const putKey = h('input', { id: 'kv-put-key', placeholder: 'key', 'aria-label': 'Key' });
      const putVal = h('textarea', { id: 'kv-put-value', rows: 4, placeholder: 'value', 'aria-label': 'Value' });
      const putBtn = h('button', {
        id: 'kv-put', class: 'primary',
        onclick: () => {
          if (!st.ns || !putKey.value) { toast('Choose a namespace and a key', true); return; }
          const k = putKey.value;
          action(putBtn, async () => {
            await api('PUT', kvBase() + '/value?key=' + enc(k), undefined, putVal.value);
            st.key = k;
            await showValue();
          }, 'Stored ' + k);
        },
      }, 'Put');
      let prefixTimer;
      prefix.addEventListener('input', () => { clearTimeout(prefixTimer); prefixTimer = setTimeout(() => refresh(true), 250); });
      const kvBase = () => '/kv/' + enc(st.account) + '/' + enc(st.ns);
      async function showValue() {
        if (!st.key) { set(value, 'none', () => h('p', { class: 'empty' }, 'Choose a key.')); return; }
        const key = st.key;
        try {
          const v = await api('GET', kvBase() + '/value?key=' + enc(key));
          const del = h('button', {
            id: 'kv-delete', class: 'danger',
            onclick: async () => {
              if (!await confirmDialog('Delete key?', 'Delete the key "' + key + '"?', 'Delete key')) return;
              action(del, async () => {
                await api('DELETE', kvBase() + '/value?key=' + enc(key));
                st.key = '';
                await showValue();
              }, 'Deleted ' + key);
            },
          }, 'Delete');
          set(value, JSON.stringify(v), () => [
            h('div', { class: 'row' }, h('h3', {}, h('code', {}, v.key)), h('span', { class: 'spacer' }),
              h('button', { onclick: () => { putKey.value = v.key; if (!v.binary && !v.truncated) putVal.value = v.preview; putVal.focus(); } }, 'Edit'), del),
            h('p', { class: 'muted small' }, bytes(v.size), v.binary ? ' · binary (hex)' : '', v.truncated ? ' · first 4 KiB shown' : '',
              v.expiration ? ' · expires ' + new Date(v.expiration * 1000).toLocaleString() : ''),
            h('pre', { id: 'kv-preview', class: 'preview' }, v.preview),
          ]);
        } catch (e) {
          set(value, 'err' + e.message, () => h('p', { class: 'error' }, e.message));
        }
      }
      root.append(h('section', { class: 'card' },
        h('div', { class: 'row' }, h('h2', {}, 'Workers KV'), h('span', { class: 'spacer' }), h('label', {}, 'Account ', acctSel)),
        h('div', { class: 'kv' },
          h('div', {}, h('h3', {}, 'Namespaces'), nsList),
          h('div', {}, h('h3', {}, 'Keys'), prefix, keys),
          h('div', {}, value,
            h('div', { class: 'put' }, h('h3', {}, 'Put a value'), putKey, putVal, h('div', { class: 'row end' }, putBtn))))));
      return {
        async refresh() {
          if (!await acctSel.sync()) return;
          const ns = (await api('GET', '/kv/' + enc(st.account))).namespaces;
          const chosen = pick(st.ns, ns, (n) => n.id);
          if (chosen !== st.ns) { st.ns = chosen; st.key = ''; }
          set(nsList, JSON.stringify(ns) + st.ns, () => ns.length ? ns.map((n) => h('button', {
            class: 'item' + (n.id === st.ns ? ' selected' : ''), dataset: { namespace: n.id },
            onclick: () => { st.ns = n.id; st.key = ''; refresh(true); },
          }, n.title, h('div', { class: 'muted small' }, n.id))) : h('p', { class: 'empty' }, 'No namespaces: create one with wrangler kv namespace create.'));
          if (!st.ns) { set(keys, 'none', () => []); set(value, 'none', () => []); return; }
          const data = await api('GET', kvBase() + '/keys' + (prefix.value ? '?prefix=' + enc(prefix.value) : ''));
          set(keys, JSON.stringify(data) + st.key, () => data.keys.length ? [data.keys.map((k) => h('button', {
            class: 'item' + (k.name === st.key ? ' selected' : ''), dataset: { key: k.name },
            onclick: () => { st.key = k.name; keys._key = null; refresh(true); showValue(); },
          }, k.name)), data.cursor ? h('p', { class: 'muted small' }, 'First 1000 keys shown: narrow the prefix.') : null]
            : h('p', { class: 'empty' }, prefix.value ? 'No key starts with that prefix.' : 'No keys.'));
          if (!value._key || value._key === 'none') await showValue();
        },
      };
    },
  };

  // R2: buckets, objects folded at "/", an object's metadata and preview.
  views.r2 = {
    title: 'R2',
    mount(root) {
      const st = { account: '', bucket: '', prefix: '', key: '' };
      const acctSel = accountPicker('r2-account', st, () => { st.bucket = ''; st.prefix = ''; st.key = ''; refresh(true); });
      const bucketList = h('div', { id: 'r2-buckets', class: 'list' });
      const crumbs = h('div', { id: 'r2-path', class: 'crumbs' });
      const objects = h('div', { id: 'r2-objects', class: 'list keys' });
      const detail = h('div', { id: 'r2-object' });
      const base = () => '/r2/' + enc(st.account) + '/' + enc(st.bucket);
      const go = (prefix) => { st.prefix = prefix; st.key = ''; refresh(true); showObject(); };
      async function showObject() {
        if (!st.key) { set(detail, 'none', () => h('p', { class: 'empty' }, 'Choose an object.')); return; }
        const key = st.key;
        try {
          const o = await api('GET', base() + '/object?key=' + enc(key));
          set(detail, JSON.stringify(o), () => [
            h('h3', {}, h('code', {}, o.key)),
            h('p', { class: 'muted small' }, bytes(o.size), ' · ', o.contentType || 'no content type', ' · uploaded ', when(o.uploaded),
              o.binary ? ' · binary (hex)' : '', o.truncated ? ' · first 4 KiB shown' : ''),
            h('p', { class: 'muted small' }, 'ETag ', h('code', {}, o.etag)),
            o.custom ? h('p', { class: 'small', id: 'r2-custom' }, 'Custom metadata: ',
              Object.entries(o.custom).map(([k, v], i) => [i ? ' ' : null, h('span', { class: 'chip' }, k + ' = ' + v)])) : null,
            h('pre', { id: 'r2-preview', class: 'preview' }, o.preview),
          ]);
        } catch (e) {
          set(detail, 'err' + e.message, () => h('p', { class: 'error' }, e.message));
        }
      }
      root.append(h('section', { class: 'card' },
        h('div', { class: 'row' }, h('h2', {}, 'R2 object storage'), h('span', { class: 'spacer' }), h('label', {}, 'Account ', acctSel)),
        h('div', { class: 'r2' },
          h('div', {}, h('h3', {}, 'Buckets'), bucketList),
          h('div', {}, h('h3', {}, 'Objects'), crumbs, objects),
          h('div', {}, detail))));
      return {
        async refresh() {
          if (!await acctSel.sync()) return;
          const buckets = (await api('GET', '/r2/' + enc(st.account))).buckets;
          const chosen = pick(st.bucket, buckets, (b) => b.name);
          if (chosen !== st.bucket) { st.bucket = chosen; st.prefix = ''; st.key = ''; }
          set(bucketList, JSON.stringify(buckets) + st.bucket, () => buckets.length ? buckets.map((b) => h('button', {
            class: 'item' + (b.name === st.bucket ? ' selected' : ''), dataset: { bucket: b.name },
            onclick: () => { st.bucket = b.name; go(''); },
          }, b.name, h('div', { class: 'muted small' }, b.objects + (b.objects === 1 ? ' object · ' : ' objects · ') + bytes(b.bytes)))) :
            h('p', { class: 'empty' }, 'No buckets: create one with wrangler r2 bucket create.'));
          if (!st.bucket) { set(crumbs, 'none', () => []); set(objects, 'none', () => []); set(detail, 'none', () => []); return; }
          const page = await api('GET', base() + '/objects' + (st.prefix ? '?prefix=' + enc(st.prefix) : ''));
          set(crumbs, st.bucket + '/' + st.prefix, () => {
            const parts = st.prefix.split('/').filter(Boolean);
            return [h('button', { class: 'link', dataset: { prefix: '' }, onclick: () => go('') }, st.bucket),
              parts.map((p, i) => ['/', h('button', { class: 'link', dataset: { prefix: parts.slice(0, i + 1).join('/') + '/' },
                onclick: () => go(parts.slice(0, i + 1).join('/') + '/') }, p)])];
          });
          set(objects, JSON.stringify(page) + st.key, () => (page.objects.length || page.prefixes.length) ? [
            page.prefixes.map((p) => h('button', { class: 'item folder', dataset: { prefix: p }, onclick: () => go(p) },
              p.slice(st.prefix.length))),
            page.objects.map((o) => h('button', {
              class: 'item' + (o.key === st.key ? ' selected' : ''), dataset: { key: o.key },
              onclick: () => { st.key = o.key; refresh(true); showObject(); },
            }, o.key.slice(st.prefix.length), h('div', { class: 'muted small' }, bytes(o.size) + (o.contentType ? ' · ' + o.contentType : '')))),
            page.cursor ? h('p', { class: 'muted small' }, 'First ' + page.objects.length + ' objects shown.') : null]
            : h('p', { class: 'empty' }, 'No objects.'));
          if (!detail._key || detail._key === 'none') await showObject();
        },
      };
    },
  };

  // cell renders a D1 value: NULL, a BLOB (an array of bytes) by its size,
  // anything else as text.
  function cell(v) {
    if (v === null) return h('td', { class: 'muted' }, 'NULL');
    if (Array.isArray(v)) return h('td', { class: 'muted' }, 'BLOB ' + bytes(v.length));
    return h('td', {}, String(v));
  }

  // D1: databases, tables, a read-only query box.
  views.d1 = {
    title: 'D1',
    mount(root) {
      const st = { account: '', db: '' };
      const acctSel = accountPicker('d1-account', st, () => { st.db = ''; refresh(true); });
      const dbList = h('div', { id: 'd1-databases', class: 'list' });
      const tables = h('div', { id: 'd1-tables' });
      const sql = h('textarea', { id: 'd1-sql', rows: 4, placeholder: 'SELECT * FROM users LIMIT 100', 'aria-label': 'SQL query' });
      const result = h('div', { id: 'd1-result' });
      const base = () => '/d1/' + enc(st.account) + '/' + enc(st.db);
      const run = h('button', {
        id: 'd1-run', class: 'primary',
        onclick: async () => {
          if (!st.db || !sql.value.trim()) { toast('Choose a database and write a query', true); return; }
          run.disabled = true;
          try {
            const r = await api('POST', base() + '/query', { sql: sql.value });
            set(result, JSON.stringify(r), () => [
              h('p', { class: 'muted small', id: 'd1-meta' }, r.rows.length + (r.rows.length === 1 ? ' row' : ' rows') + ' · ' + r.durationMs + ' ms',
                r.truncated ? ' · first ' + r.rows.length + ' shown' : ''),
              r.columns.length ? h('table', { class: 'd1-rows' },
                h('thead', {}, h('tr', {}, r.columns.map((c) => h('th', {}, c)))),
                h('tbody', {}, r.rows.map((row) => h('tr', {}, row.map(cell))))) : null,
            ]);
          } catch (e) {
            set(result, 'err' + e.message, () => h('p', { class: 'error', id: 'd1-error' }, e.message));
          } finally {
            run.disabled = false;
          }
        },
      }, 'Run');
      root.append(h('section', { class: 'card' },
        h('div', { class: 'row' }, h('h2', {}, 'D1 databases'), h('span', { class: 'spacer' }), h('label', {}, 'Account ', acctSel)),
        h('div', { class: 'd1' },
          h('div', {}, h('h3', {}, 'Databases'), dbList),
          h('div', {}, h('h3', {}, 'Tables'), tables,
            h('div', { class: 'put' }, h('h3', {}, 'Query (read-only)'), sql,
              h('div', { class: 'row end' }, h('span', { class: 'muted small' }, 'SELECT, WITH, VALUES or EXPLAIN; at most 500 rows'), run)),
            result))));
      return {
        async refresh() {
          if (!await acctSel.sync()) return;
          const dbs = (await api('GET', '/d1/' + enc(st.account))).databases;
          const chosen = pick(st.db, dbs, (d) => d.uuid);
          if (chosen !== st.db) { st.db = chosen; set(result, 'none', () => []); }
          set(dbList, JSON.stringify(dbs) + st.db, () => dbs.length ? dbs.map((d) => h('button', {
            class: 'item' + (d.uuid === st.db ? ' selected' : ''), dataset: { database: d.uuid },
            onclick: () => { st.db = d.uuid; set(result, 'none', () => []); refresh(true); },
          }, d.name, h('div', { class: 'muted small' }, d.tables + (d.tables === 1 ? ' table · ' : ' tables · ') + bytes(d.bytes)),
            h('div', { class: 'muted small' }, d.uuid))) : h('p', { class: 'empty' }, 'No databases: create one with wrangler d1 create.'));
          if (!st.db) { set(tables, 'none', () => []); return; }
          const ts = (await api('GET', base() + '/tables')).tables;
          set(tables, JSON.stringify(ts), () => table('d1-tables', ['Table', 'Rows', 'Columns'],
            ts.map((t) => h('tr', { dataset: { table: t.name } },
              h('td', {}, h('button', { class: 'link', title: 'Query this table', onclick: () => {
                sql.value = 'SELECT * FROM "' + t.name.replaceAll('"', '""') + '" LIMIT 100';
                run.click();
              } }, t.name)),
              h('td', {}, t.rows),
              h('td', { class: 'small' }, t.columns.map((c, i) => [i ? ' ' : null, h('span', { class: 'chip' }, c.name + ' ' + (c.type || 'ANY') + (c.primaryKey ? ' · key' : ''))])))),
            'No tables yet: create them with wrangler d1 execute or migrations.'));
        },
      };
    },
  };

  // memory shows a pod's working set against its limit, in MiB.
  const memory = (used, limit) => {
    const mib = (b) => Math.round(b / (1 << 20));
    if (!used) return limit ? '— / ' + mib(limit) + ' MiB' : '—';
    return mib(used) + (limit ? ' / ' + mib(limit) : '') + ' MiB';
  };

  // Cluster: bundles, pods, events.
  views.cluster = {
    title: 'Cluster',
    mount(root) {
      const bundles = h('div', { id: 'bundles' });
      const pods = h('div', { id: 'pods' });
      const events = h('div', { id: 'events' });
      root.append(
        h('section', { class: 'card' }, h('h2', {}, 'Bundles'), bundles),
        h('section', { class: 'card' }, h('h2', {}, 'Pods'), pods),
        h('section', { class: 'card' }, h('h2', {}, 'Recent events'), events));
      return {
        async refresh() {
          const data = await api('GET', '/cluster');
          set(bundles, JSON.stringify(data.bundles), () => table('bundles', ['Bundle', 'Workers', 'Ready pods', 'Conditions', 'Image'],
            data.bundles.map((b) => h('tr', { dataset: { bundle: b.name } },
              h('td', {}, h('b', {}, b.name), h('div', { class: 'muted small' }, b.namespace + ' · account ' + shortID(b.account))),
              h('td', {}, b.workers, b.failed.map((f) => h('div', { class: 'error small' }, f.script + ' ' + shortID(f.versionID) + ' failed: ' + (f.message || '')))),
              h('td', {}, b.readyReplicas),
              h('td', {}, b.conditions.map((c) => [pill(c.status, c.type), ' '])),
              h('td', {}, b.image ? h('code', { title: b.image, class: 'small' }, b.image.replace(/@sha256:(.{12}).*/, '@sha256:$1…')) : '—'))),
            'No bundles yet.'));
          set(pods, JSON.stringify(data.pods) + tick10s(), () => table('pods', ['Pod', 'Phase', 'Ready', 'Restarts', 'Memory', 'IP', 'Started'],
            data.pods.map((p) => h('tr', { dataset: { pod: p.name } },
              h('td', {}, h('code', {}, p.name), h('div', { class: 'muted small' }, p.namespace + ' · ' + (p.bundle || ''))),
              h('td', {}, pill(p.deleting ? 'stopping' : (p.reason || p.phase), p.deleting ? 'Terminating' : (p.reason || p.phase))),
              h('td', {}, p.ready),
              h('td', { class: p.restarts > 0 ? 'warn' : '' }, p.restarts),
              h('td', { class: 'memory' }, memory(p.memoryBytes, p.memoryLimitBytes)),
              h('td', {}, h('code', {}, p.ip || '—')),
              h('td', {}, when(p.startedAt)))),
            'No pods: a bundle gets pods once a worker is deployed and built.'));
          set(events, JSON.stringify(data.events) + tick10s(), () => table('events', ['Last seen', 'Type', 'Object', 'Reason', 'Message'],
            data.events.map((e) => h('tr', {},
              h('td', {}, when(e.lastSeen), e.count > 1 ? h('span', { class: 'muted small' }, ' ×' + e.count) : null),
              h('td', {}, pill(e.type)),
              h('td', {}, h('code', { class: 'small' }, e.object)),
              h('td', {}, e.reason),
              h('td', { class: 'msg' }, e.message))),
            'No recent events.'));
        },
      };
    },
  };

  // Tail: a worker's live events over Server-Sent Events.
  views.tail = {
    title: 'Tail',
    mount(root, [account, script]) {
      const MAX = 500;
      const pick = h('select', { id: 'tail-pick', 'aria-label': 'Worker' });
      const state = h('span', { id: 'tail-state' }, pill('stopped'));
      const list = h('ol', { id: 'tail-events', class: 'tail', reversed: true });
      const empty = h('p', { class: 'empty', id: 'tail-empty' }, account ? 'Waiting for requests…' : 'Choose a worker.');
      let es = null;
      let count = 0;
      const stopBtn = h('button', { id: 'tail-stop', onclick: () => stop() }, 'Stop');
      pick.addEventListener('change', () => { location.hash = '#/tail/' + pick.value; });
      root.append(h('section', { class: 'card' },
        h('div', { class: 'row wrap' }, h('h2', {}, 'Live tail'), h('label', {}, 'Worker ', pick), state,
          h('span', { class: 'spacer' }), stopBtn,
          h('button', { onclick: () => { list.replaceChildren(); count = 0; empty.hidden = false; } }, 'Clear')),
        h('p', { class: 'muted small' }, 'Requests, console output and exceptions of the worker, as they happen (like wrangler tail).'),
        empty, list));
      function setState(s, text) { state.replaceChildren(pill(s, text)); }
      function stop() {
        if (es) { es.close(); es = null; }
        setState('stopped');
      }
      function logText(l) {
        return (l.message || []).map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
      }
      function render(ev) {
        const e = ev.event || {};
        const req = e.request || {};
        const res = e.response || {};
        const t = ev.eventTimestamp ? new Date(ev.eventTimestamp) : new Date();
        let path = req.url || '';
        try { const u = new URL(req.url); path = u.pathname + u.search; } catch (x) { /* keep */ }
        return h('li', { class: 'tail-event', dataset: { outcome: ev.outcome } },
          h('div', { class: 'row' },
            h('time', { class: 'muted small', datetime: t.toISOString() }, t.toLocaleTimeString()),
            pill(ev.outcome === 'ok' ? 'ok' : ev.outcome, ev.outcome),
            req.method ? h('b', {}, req.method) : h('b', {}, Object.keys(e)[0] || 'event'),
            h('code', { class: 'path', title: req.url || '' }, path),
            res.status ? h('span', { class: 'status' }, '→ ' + res.status) : null,
            h('span', { class: 'spacer' }),
            ev.scriptVersion ? h('code', { class: 'muted small', title: ev.scriptVersion.id }, shortID(ev.scriptVersion.id)) : null),
          (ev.logs || []).map((l) => h('div', { class: 'log ' + (l.level || 'log') }, h('span', { class: 'level' }, l.level || 'log'), ' ', logText(l))),
          (ev.exceptions || []).map((x) => h('div', { class: 'exception' }, (x.name || 'Error') + ': ' + (x.message || ''),
            x.stack ? h('pre', { class: 'small' }, x.stack) : null)));
      }
      if (account && script) {
        const url = '/dashboard/api/tail/' + enc(account) + '/' + enc(script);
        setState('connecting');
        es = new EventSource(url);
        es.addEventListener('ready', () => setState('live'));
        es.addEventListener('tail', (m) => {
          let ev;
          try { ev = JSON.parse(m.data); } catch (x) { return; }
          empty.hidden = true;
          list.prepend(render(ev));
          if (++count > MAX) list.lastElementChild.remove();
        });
        es.addEventListener('end', () => stop());
        es.onerror = () => { if (es) setState('reconnecting'); };
      }
      return {
        async refresh() {
          const accts = (await api('GET', '/workers')).accounts;
          const opts = [];
          for (const a of accts) for (const w of a.workers) opts.push([a.id + '/' + w.script, w.script + (accts.length > 1 ? ' (' + a.name + ')' : '')]);
          const cur = account ? account + '/' + script : '';
          if (cur && !opts.some(([v]) => v === cur)) opts.unshift([cur, script]);
          set(pick, JSON.stringify(opts) + cur, () => [h('option', { value: '', disabled: true }, 'Choose a worker'),
            opts.map(([v, label]) => h('option', { value: v }, label))]);
          pick.value = cur;
        },
        unmount: stop,
      };
    },
  };

  // ---- router and polling ----

  let current = null; // {name, params, ctl}
  let inflight = false;
  let healthTick = 0;

  function showHealth(o) {
    const el = document.getElementById('health');
    const bad = o.parts.filter((p) => p.state !== 'ready').length;
    el.replaceWith(Object.assign(pill(o.healthy ? 'healthy' : (o.parts.length ? 'unhealthy' : 'starting'),
      o.healthy ? 'healthy' : (o.parts.length ? bad + ' not ready' : o.state)), { id: 'health', title: 'State of the embedded parts' }));
  }

  function route() {
    if (loggedOut) return;
    const parts = (location.hash.replace(/^#\/?/, '') || 'overview').split('/').map(decodeURIComponent);
    let name = parts[0];
    if (!views[name]) name = 'overview';
    const params = parts.slice(1);
    if (current && current.ctl.unmount) current.ctl.unmount();
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('current', a.dataset.view === name || (name === 'worker' && a.dataset.view === 'workers'));
    }
    document.title = (params[params.length - 1] || views[name].title) + ' · octo';
    main.replaceChildren();
    const root = h('div', { class: 'view', id: 'view-' + name });
    main.append(root);
    current = { name, params, ctl: views[name].mount(root, params) };
    refresh(true);
  }

  async function refresh(force) {
    if (!current || loggedOut || (inflight && !force)) return;
    if (document.hidden && !force) return;
    inflight = true;
    const cur = current;
    const upd = document.getElementById('updated');
    try {
      await cur.ctl.refresh();
      if (cur.name !== 'overview' && (force || ++healthTick % 5 === 0)) showHealth(await api('GET', '/overview'));
      upd.textContent = 'updated ' + new Date().toLocaleTimeString();
      upd.classList.remove('error');
    } catch (e) {
      upd.textContent = (e.status === 403 || e.status === 401 ? '' : 'octo unreachable — retrying: ') + e.message;
      upd.classList.add('error');
    } finally {
      inflight = false;
    }
  }

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(true); });
  setInterval(() => refresh(false), POLL_MS);
  route();
})();
