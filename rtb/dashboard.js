/* dashboard.js -- the live dashboard's script (SPEC 11, docs/dashboard.md).
 *
 * The one idea: every /api/stats object, from the Server-Sent Events stream
 * /api/stream or from polling, goes through render(), which writes numbers
 * into elements by id (docs/dashboard.md lists them). The stream comes
 * first; whenever it has been silent for 2.5 s (no EventSource, 503 at the
 * client cap, a buffering proxy, the exchange restarting) the page polls
 * /api/stats once a second until events flow again. Every browser runs the
 * same code.
 *
 * tools/embed.py inlines this file into dashboard.html at build time; the
 * page's Content-Security-Policy allows this script by its hash alone. */
(function () {
  'use strict';
  var STATUSES = ['success', 'no_bid', 'timeout', 'invalid', 'overloaded'];
  var lastEvent = 0, mode = '';
  function $(id) { return document.getElementById(id); }
  function set(id, text) {
    var e = $(id);
    if (e && e.textContent !== text) e.textContent = text;
  }
  function int(n) {
    return typeof n === 'number' ? Math.round(n).toLocaleString('en-US') : '\u2014';
  }
  function ms(n) { return typeof n === 'number' ? n.toFixed(n < 10 ? 2 : 1) : '\u2014'; }
  function pct(x) {
    return typeof x === 'number' ? (x * 100).toFixed(1) + '%' : '\u2014';
  }
  function money(x) { return typeof x === 'number' ? x.toFixed(2) : '\u2014'; }
  function clock(t) { return new Date(t * 1000).toLocaleTimeString('en-GB'); }
  function uptime(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + (m < 10 ? '0' : '') + m + 'm';
    return m + 'm ' + (s % 60 < 10 ? '0' : '') + Math.floor(s % 60) + 's';
  }
  function setMode(m) {
    if (m === mode) return;
    mode = m;
    var e = $('mode');
    e.className = 'pill ' + m;
    e.textContent = m;
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function renderBidders(list) {
    var body = $('bidders'), rows = document.createDocumentFragment();
    list.forEach(function (b) {
      var tr = document.createElement('tr');
      if (!b.active) tr.className = 'inactive';
      cell(tr, b.id);
      cell(tr, int(b.calls_per_s), 'n');
      cell(tr, int(b.calls), 'n');
      cell(tr, int(b.bids), 'n');
      cell(tr, int(b.wins), 'n');
      cell(tr, pct(b.win_rate), 'n');
      cell(tr, int(b.timeouts), b.calls && b.timeouts / b.calls > 0.2 ? 'n bad' : 'n');
      cell(tr, int(b.errors), b.calls && b.errors / b.calls > 0.2 ? 'n bad' : 'n');
      /* skipped in all; the reasons on hover (SPEC 13) */
      var by = b.skipped_by || {};
      cell(tr, int(b.skipped), 'n').title = Object.keys(by).map(function (k) {
        return k.replace('_', ' ') + ' ' + int(by[k]);
      }).join(', ');
      cell(tr, pct(b.share), b.share < 1 ? 'n bad' : 'n').title =
          b.p95_ms === null ? 'p95: not known yet' : 'p95 ' + ms(b.p95_ms) + ' ms';
      var td = cell(tr, '');
      var s = document.createElement('span');
      s.className = 'state ' + b.breaker;
      s.textContent = b.breaker.replace('_', '-');
      td.appendChild(s);
      cell(tr, money(b.spend), 'n');
      rows.appendChild(tr);
    });
    if (!list.length) {
      var tr = document.createElement('tr');
      cell(tr, 'no advertisers in the registry yet', 'empty').colSpan = 12;
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
  }
  function renderAlerts(list, rules) {
    var box = $('alerts'), items = document.createDocumentFragment();
    set('alert-count', list.length ? '(' + list.length + ')' : '');
    list.forEach(function (a) {
      var d = document.createElement('div'), b = document.createElement('b');
      var s = document.createElement('span');
      d.className = 'alert';
      var rate = a.metric.slice(-5) === '_rate';
      b.textContent = a.name + ': ' + a.metric + (a.subject ? ' of ' + a.subject : '') +
          ' ' + (rate ? pct(a.value) : ms(a.value) + ' ms') + ' > ' +
          (rate ? pct(a.above) : a.above + ' ms');
      s.textContent = 'firing since ' + clock(a.since) + ', over ' + a.window_s + ' s';
      d.appendChild(b);
      d.appendChild(s);
      items.appendChild(d);
    });
    if (!list.length) {
      var ok = document.createElement('div');
      ok.className = 'ok';
      ok.textContent = rules ? 'All clear (' + rules + (rules > 1 ? ' rules)' : ' rule)')
                             : 'No alert rules configured';
      items.appendChild(ok);
    }
    box.replaceChildren(items);
  }
  function points(h, key, max, n) {
    var step = 300 / Math.max(n - 1, 1), off = n - h.length, out = [];
    h.forEach(function (p, i) {
      var v = p[key];
      if (typeof v !== 'number') return;
      out.push(((off + i) * step).toFixed(1) + ',' + (100 - 96 * v / max).toFixed(1));
    });
    return out.join(' ');
  }
  function renderCharts(h) {
    var n = Math.max(h.length, 60), max = 1, lmax = 1;
    h.forEach(function (p) {
      if (p.auctions > max) max = p.auctions;
      if (typeof p.p99 === 'number' && p.p99 > lmax) lmax = p.p99;
    });
    var line = points(h, 'auctions', max, n);
    $('spark-line').setAttribute('points', line);
    $('spark-success').setAttribute('points', points(h, 'success', max, n));
    $('spark-timeout').setAttribute('points', points(h, 'timeout', max, n));
    var first = line.split(' ')[0], last = line.split(' ').pop();
    $('spark-all').setAttribute('d', line ? 'M' + first.split(',')[0] + ',100 L' +
        line.replace(/ /g, ' L') + ' L' + last.split(',')[0] + ',100 Z' : '');
    $('lat-line').setAttribute('points', points(h, 'p99', lmax * 1.1, n));
    var span = n >= 120 ? Math.round(n / 60) + ' min' : n + ' s';
    set('spark-from', '\u2212' + span);
    set('lat-from', '\u2212' + span);
    set('spark-max', int(max));
    set('lat-max', ms(lmax));
  }
  function render(s) {
    var r = s.rates.auctions_per_s, total = 0;
    STATUSES.forEach(function (k) { total += r[k] || 0; });
    set('auctions-per-s', int(total));
    set('requests-per-s', int(s.rates.requests_per_s));
    set('inflight', int(s.totals.inflight));
    STATUSES.forEach(function (k) {
      set('rate-' + k, int(r[k]));
      $('bar-' + k).style.width = (total ? 100 * r[k] / total : 0) + '%';
    });
    set('p50', ms(s.latency_ms.p50));
    set('p99', ms(s.latency_ms.p99));
    set('total-auctions', int(s.totals.auctions));
    set('total-success', int(s.totals.success));
    set('total-timeout', int(s.totals.timeout));
    set('uptime', uptime(s.uptime_s));
    set('updated', clock(s.time));
    var e = s.events;
    set('ev-impressions', int(e.impressions));
    set('ev-clicks', int(e.clicks));
    set('ev-conversions', int(e.conversions));
    set('ev-ctr', pct(e.ctr));
    set('ev-cvr', pct(e.clicks ? e.conversions / e.clicks : 0));
    set('ev-dup', int(e.duplicate_clicks));
    var bill = s.billing;
    set('bill-billed', int(bill.billed));
    set('bill-retried', int(bill.retried));
    set('bill-pending', int(bill.pending));
    set('bill-failed', int(bill.failed));
    renderBidders(s.bidders);
    renderAlerts(s.alerts, s.alert_rules);
    renderCharts(s.history);
  }
  /* The stream is silent: no event for 2.5 s (or none yet). */
  function stale() { return Date.now() - lastEvent > 2500; }
  function poll() {
    fetch('/api/stats', {cache: 'no-store'}).then(function (res) {
      if (!res.ok) throw new Error(res.status);
      return res.json();
    }).then(function (s) {
      render(s);
      if (stale()) setMode('polling');
    }).catch(function () { setMode('offline'); });
  }
  function connect() {
    if (!window.EventSource) return;
    var es = new EventSource('/api/stream');
    es.onmessage = function (ev) {
      try {
        render(JSON.parse(ev.data));
        lastEvent = Date.now();
        setMode('live');
      } catch (x) { /* the next one, or polling */ }
    };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    };
  }
  setInterval(function () {
    if (stale()) poll();
  }, 1000);
  poll();
  connect();
})();
