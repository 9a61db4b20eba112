// The seller's dashboard: reads this admin listener's API (same origin,
// fetch) and draws what it says. Everything the API returns is put on the
// page as text (textContent, attributes), never as HTML: payers' addresses,
// routes and reasons come from the journal.
//
// A listener with a token answers 401 until the request carries it; the
// page then asks for it, keeps it in sessionStorage (this tab, until it is
// closed) and sends it as Authorization: Bearer, never in a URL.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const tokenKey = 'coinop-admin-token';
  const pageSize = 20;
  const chartDays = 30;
  const svgNS = 'http://www.w3.org/2000/svg';

  let meta = new Map(); // "network|asset" (lowercase asset) → {symbol, decimals}
  let explorers = new Map(); // network → URL template with {tx}
  let networkNames = new Map();
  let cursors = ['']; // the payments pages seen: cursor of each
  let pageIndex = 0;

  class Unauthorized extends Error {}

  const token = () => sessionStorage.getItem(tokenKey) || '';

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    const resp = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', redirect: 'error' });
    if (resp.status === 401) throw new Unauthorized();
    let body;
    try {
      body = await resp.json();
    } catch (e) {
      throw new Error(path + ': ' + resp.status + ' ' + resp.statusText);
    }
    if (!resp.ok && path !== '/readyz') {
      throw new Error(path + ': ' + (body.detail || body.title || resp.status));
    }
    return body;
  }

  // el makes an element with text and attributes.
  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // units writes an atomic amount in whole units: 4000 with 6 decimals is
  // "0.004". Exact (BigInt), trailing zeros dropped.
  function units(atomic, decimals) {
    let n = BigInt(atomic);
    const neg = n < 0n;
    if (neg) n = -n;
    const base = 10n ** BigInt(decimals);
    let frac = (n % base).toString().padStart(decimals, '0').replace(/0+$/, '');
    const s = (n / base).toString() + (frac ? '.' + frac : '');
    return neg ? '-' + s : s;
  }
  function assetOf(network, asset) {
    return meta.get(network + '|' + String(asset).toLowerCase());
  }
  // money writes an amount of a network's asset for people.
  function money(amount, network, asset) {
    const m = assetOf(network, asset);
    if (!m || !/^-?[0-9]+$/.test(String(amount))) return amount + ' (atomic units of ' + asset + ')';
    return units(amount, m.decimals) + ' ' + m.symbol;
  }
  function assetName(network, asset) {
    const m = assetOf(network, asset);
    return (m ? m.symbol : asset) + ' on ' + networkName(network);
  }
  function networkName(id) {
    return networkNames.get(id) || id;
  }
  function when(t) {
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // txCell shows a settlement's reference: a link to the network's
  // explorer when one is configured and the reference is a transaction
  // hash, else the reference as text.
  function txCell(p) {
    const td = el('td', null, { class: 'mono' });
    const ref = p.reference || '';
    const tmpl = explorers.get(p.network);
    if (ref && tmpl && /^0x[0-9a-fA-F]{64}$/.test(ref)) {
      const a = el('a', ref, { href: tmpl.split('{tx}').join(encodeURIComponent(ref)), rel: 'noreferrer noopener', target: '_blank', class: 'tx' });
      td.append(a);
    } else {
      td.textContent = ref || '—';
    }
    return td;
  }

  // paymentsTable fills table with payments, one row each.
  function paymentsTable(table, payments, empty, withReason) {
    table.replaceChildren();
    const head = el('tr');
    for (const h of ['Time (UTC)', 'Route', 'Payer', 'Amount', 'State', withReason ? 'Reason' : 'Mode', 'Transaction']) {
      head.append(el('th', h, { scope: 'col', class: h === 'Amount' ? 'num' : '' }));
    }
    table.append(el('thead'));
    table.tHead.append(head);
    const body = el('tbody');
    table.append(body);
    if (!payments.length) {
      const tr = el('tr', null, { class: 'empty' });
      tr.append(el('td', empty, { colspan: '7' }));
      body.append(tr);
      return;
    }
    const labels = [...head.children].map((th) => th.textContent);
    for (const p of payments) {
      const tr = el('tr', null, { 'data-id': p.id, 'data-state': p.state, 'data-amount': p.amount, 'data-network': p.network, 'data-asset': p.asset });
      tr.append(el('td', when(p.created), { class: 'when' }), el('td', p.route), el('td', p.payer || '—', { class: 'mono' }),
        el('td', money(p.amount, p.network, p.asset), { class: 'num' }), el('td', p.state, { 'data-state': p.state }),
        el('td', withReason ? (p.reason || '—') : p.mode), txCell(p));
      // The column names, which a narrow screen shows beside each value.
      [...tr.children].forEach((td, i) => td.setAttribute('data-label', labels[i]));
      body.append(tr);
    }
  }

  function showTotals(summary) {
    const list = $('totals');
    list.replaceChildren();
    const card = (kind, label, value, sub, attrs) => {
      const li = el('li', null, Object.assign({ 'data-kind': kind }, attrs));
      li.append(el('span', label, { class: 'label' }), el('span', value, { class: 'value' }));
      if (sub) li.append(el('span', sub, { class: 'sub' }));
      list.append(li);
    };
    const settled = summary.totals.filter((t) => t.key === 'settled');
    if (!settled.length) card('revenue', 'Revenue', 'none yet', '0 settled payments', { 'data-amount': '0', 'data-payments': '0' });
    for (const t of settled) {
      card('revenue', 'Revenue in ' + assetName(t.network, t.asset), money(t.amount, t.network, t.asset),
        t.payments + ' settled payment' + (t.payments === 1 ? '' : 's'),
        { 'data-network': t.network, 'data-asset': t.asset, 'data-amount': t.amount, 'data-payments': String(t.payments) });
    }
    const states = summary.states || {};
    const owed = summary.totals.filter((t) => t.key === 'settling').map((t) => money(t.amount, t.network, t.asset)).join(', ');
    card('pending', 'Pending settlements', String(states.settling || 0), owed || 'nothing owed', { 'data-count': String(states.settling || 0) });
    card('failed', 'Failed settlements', String(states.failed || 0), 'no money moved', { 'data-count': String(states.failed || 0) });
    card('serving', 'Being served', String(states.verified || 0), 'verified, not yet settled', { 'data-count': String(states.verified || 0) });
    card('released', 'Released', String(states.released || 0), 'upstream failed: not charged', { 'data-count': String(states.released || 0) });
    if (summary.truncated) card('truncated', 'Note', 'partial', 'more payments than one summary reads', {});
  }

  // days are the chartDays UTC dates ending today, oldest first.
  function days(now) {
    const out = [];
    const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    for (let i = chartDays - 1; i >= 0; i--) out.push(new Date(today - i * 86400000).toISOString().slice(0, 10));
    return out;
  }

  // showCharts draws one bar chart per asset (amounts of different assets
  // are never added or drawn on one scale), as inline SVG, with the same
  // figures as a table for screen readers and keyboards.
  let drawn = null; // the charts' data, redrawn when the width changes
  function showCharts(revenue, range) {
    drawn = { revenue, range, width: $('charts').clientWidth };
    const box = $('charts');
    box.replaceChildren();
    $('chart-range').textContent = 'Settled revenue per UTC day, ' + range[0] + ' to ' + range[range.length - 1] + '.';
    const groups = new Map();
    for (const t of revenue.totals) {
      const k = t.network + '|' + t.asset;
      if (!groups.has(k)) groups.set(k, { network: t.network, asset: t.asset, byDay: new Map() });
      groups.get(k).byDay.set(t.key, t);
    }
    if (!groups.size) {
      box.append(el('p', 'No settled payments in these ' + chartDays + ' days.', { class: 'note' }));
      return;
    }
    // One unit of the drawing is one CSS pixel at the width it has now, so
    // its labels stay readable on a phone.
    const W = Math.max(280, Math.min(1200, Math.round(box.clientWidth) || 600)), H = 160, left = 8, bottom = 20, top = 16;
    const step = (W - left) / range.length;
    for (const g of groups.values()) {
      const fig = el('figure', null, { class: 'chart', 'data-network': g.network, 'data-asset': g.asset });
      const name = assetName(g.network, g.asset);
      const amounts = range.map((d) => BigInt(g.byDay.has(d) ? g.byDay.get(d).amount : '0'));
      let max = 0n, total = 0n;
      for (const a of amounts) {
        if (a > max) max = a;
        total += a;
      }
      const caption = el('figcaption', name);
      const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Revenue per day in ' + name + ': ' +
        money(total.toString(), g.network, g.asset) + ' in ' + chartDays + ' days, at most ' + money(max.toString(), g.network, g.asset) + ' a day' });
      s.append(svg('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
      const maxLabel = svg('text', { x: left, y: 11 });
      maxLabel.textContent = money(max.toString(), g.network, g.asset);
      s.append(maxLabel);
      range.forEach((d, i) => {
        const a = amounts[i];
        // Heights in thousandths of the tallest bar, computed on BigInt so
        // large atomic amounts keep their proportions.
        const h = max > 0n ? Number((a * 1000n) / max) / 1000 * (H - bottom - top) : 0;
        const bar = svg('rect', { class: 'bar', x: (left + i * step + step * 0.15).toFixed(2), y: (H - bottom - h).toFixed(2),
          width: (step * 0.7).toFixed(2), height: h.toFixed(2), 'data-day': d, 'data-amount': a.toString() });
        const t = svg('title');
        const n = g.byDay.has(d) ? g.byDay.get(d).payments : 0;
        t.textContent = d + ': ' + money(a.toString(), g.network, g.asset) + ' (' + n + ' payment' + (n === 1 ? '' : 's') + ')';
        bar.append(t);
        s.append(bar);
      });
      for (const [i, anchor] of [[0, 'start'], [range.length - 1, 'end']]) {
        const label = svg('text', { x: i === 0 ? left : W, y: H - 5, 'text-anchor': anchor });
        label.textContent = range[i];
        s.append(label);
      }
      const details = el('details');
      details.append(el('summary', 'Revenue per day in ' + name + ' as a table'));
      const table = el('table');
      const head = el('tr');
      head.append(el('th', 'Day (UTC)', { scope: 'col' }), el('th', 'Payments', { scope: 'col', class: 'num' }), el('th', 'Revenue', { scope: 'col', class: 'num' }));
      table.append(el('thead'));
      table.tHead.append(head);
      const body = el('tbody');
      for (const [d, t] of [...g.byDay.entries()].sort()) {
        const tr = el('tr', null, { 'data-day': d });
        tr.append(el('th', d, { scope: 'row' }), el('td', t.payments, { class: 'num' }), el('td', money(t.amount, g.network, g.asset), { class: 'num' }));
        body.append(tr);
      }
      table.append(body);
      details.append(table);
      fig.append(caption, s, details);
      box.append(fig);
    }
  }

  function showRoutes(revenue) {
    const body = $('routes').tBodies[0];
    body.replaceChildren();
    if (!revenue.totals.length) {
      const tr = el('tr', null, { class: 'empty' });
      tr.append(el('td', 'No settled payments yet.', { colspan: '4' }));
      body.append(tr);
    }
    for (const t of revenue.totals) {
      const tr = el('tr', null, { 'data-route': t.key, 'data-network': t.network, 'data-asset': t.asset, 'data-amount': t.amount, 'data-payments': String(t.payments) });
      tr.append(el('th', t.key, { scope: 'row' }), el('td', networkName(t.network), { 'data-label': 'Network' }),
        el('td', t.payments, { class: 'num', 'data-label': 'Payments' }), el('td', money(t.amount, t.network, t.asset), { class: 'num', 'data-label': 'Revenue' }));
      body.append(tr);
    }
  }

  function showHealth(ready) {
    const h = $('health');
    h.dataset.state = ready.status === 'ok' ? 'ok' : 'unavailable';
    h.textContent = ready.status === 'ok' ? 'Ready: every check passes' : 'Not ready: ' + (ready.failing || []).join(', ');
    const body = $('checks').tBodies[0];
    body.replaceChildren();
    for (const name of Object.keys(ready.checks || {}).sort()) {
      const tr = el('tr', null, { 'data-check': name });
      tr.append(el('th', name, { scope: 'row' }), el('td', ready.checks[name]));
      body.append(tr);
    }
  }

  async function showPayments() {
    const q = new URLSearchParams({ limit: String(pageSize), order: 'newest' });
    if (cursors[pageIndex]) q.set('cursor', cursors[pageIndex]);
    const page = await api('/payments?' + q);
    paymentsTable($('payments'), page.payments, 'No payments yet.', false);
    if (page.next && cursors.length === pageIndex + 1) cursors.push(page.next);
    $('older').disabled = !page.next;
    $('newer').disabled = pageIndex === 0;
    $('page-label').textContent = 'Page ' + (pageIndex + 1);
  }

  async function load() {
    $('refresh').disabled = true;
    try {
      const ready = await api('/readyz');
      const nets = await api('/networks');
      meta = new Map();
      explorers = new Map();
      networkNames = new Map();
      for (const n of nets.networks) {
        if (n.title || n.name) networkNames.set(n.id, n.title || n.name);
        if (n.explorer) explorers.set(n.id, n.explorer);
        for (const a of n.assets) meta.set(n.id + '|' + a.address.toLowerCase(), a);
      }
      const range = days(new Date());
      const [summary, byDay, byRoute, pending, failed] = await Promise.all([
        api('/summary'),
        api('/revenue?by=day&from=' + range[0] + 'T00:00:00Z'),
        api('/revenue?by=route'),
        api('/payments?state=settling&limit=50'),
        api('/payments?state=failed&limit=50&order=newest'),
      ]);
      // Shown first: the charts are drawn to the width they have.
      $('login').hidden = true;
      $('board').hidden = false;
      showHealth(ready);
      showTotals(summary);
      showCharts(byDay, range);
      showRoutes(byRoute);
      paymentsTable($('pending'), pending.payments, 'No settlement pending.', true);
      paymentsTable($('failed'), failed.payments, 'No failed settlement.', true);
      await showPayments();
      $('forget').hidden = !token();
      $('updated').textContent = 'Updated ' + when(new Date().toISOString());
      document.body.dataset.loaded = 'true';
    } catch (e) {
      if (e instanceof Unauthorized) {
        askToken(token() ? 'That token was refused.' : '');
        return;
      }
      const h = $('health');
      h.dataset.state = 'error';
      h.textContent = 'Could not read the admin API: ' + e.message;
      document.body.dataset.loaded = 'error';
    } finally {
      $('refresh').disabled = false;
    }
  }

  function askToken(why) {
    sessionStorage.removeItem(tokenKey);
    $('board').hidden = true;
    $('login').hidden = false;
    $('forget').hidden = true;
    $('health').dataset.state = 'locked';
    $('health').textContent = 'This listener needs its admin token.';
    $('login-error').textContent = why;
    document.body.dataset.loaded = 'locked';
    $('token').focus();
  }

  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value.trim();
    $('token').value = '';
    if (!v) return;
    sessionStorage.setItem(tokenKey, v);
    load();
  });
  $('refresh').addEventListener('click', load);
  $('forget').addEventListener('click', () => askToken(''));
  $('older').addEventListener('click', async () => {
    pageIndex++;
    await showPayments().catch((e) => ($('page-label').textContent = e.message));
  });
  $('newer').addEventListener('click', async () => {
    pageIndex = Math.max(0, pageIndex - 1);
    await showPayments().catch((e) => ($('page-label').textContent = e.message));
  });
  let resizing;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (drawn && drawn.width !== $('charts').clientWidth) showCharts(drawn.revenue, drawn.range);
    }, 100);
  });
  load();
})();
