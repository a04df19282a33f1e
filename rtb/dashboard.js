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
 * The campaign view (SPEC 16) is a second view of the same page, chosen by
 * the URL's hash: "#/advertiser/{id}" shows one advertiser (its totals,
 * per-minute charts, health, alerts and budget, from
 * /api/advertisers/{id}); anything else the overview, whose advertisers
 * table (/api/advertisers) links there. Both are fetched every 2 s while
 * shown. The alert-rules panel lists GET /api/alerts and adds and deletes
 * rules with the admin token the operator types: it is read from its field
 * when a request is sent and never stored (not in the URL, not in storage).
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
  /* Money that may be small (CPM prices make single impressions cheap). */
  function cash(x) { return typeof x === 'number' ? x.toFixed(x && x < 0.1 ? 4 : 2) : '\u2014'; }
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
  /* How a metric's values read: rates in %, latency in ms, money as money. */
  function metricFormat(metric) {
    if (metric === 'p99_latency_ms') return function (x) { return ms(x) + ' ms'; };
    if (metric === 'cpc' || metric === 'spend_rate') return cash;
    return pct;
  }
  /* The alerts of `list` as elements, into `box`; `empty` when none. */
  function renderAlertList(box, list, empty) {
    var items = document.createDocumentFragment();
    list.forEach(function (a) {
      var d = document.createElement('div'), b = document.createElement('b');
      var s = document.createElement('span');
      d.className = 'alert' + (a.severity ? ' ' + a.severity : '');
      var fmt = metricFormat(a.metric), below = a.op === 'below';
      b.textContent = a.name + ': ' + a.metric + (a.subject ? ' of ' + a.subject : '') +
          ' ' + fmt(a.value) + (below ? ' < ' : ' > ') +
          fmt(typeof a.threshold === 'number' ? a.threshold : a.above);
      s.textContent = (a.severity ? a.severity + ', ' : '') + 'firing since ' + clock(a.since) +
          ', over ' + a.window_s + ' s' + (a.message ? ': ' + a.message : '');
      d.appendChild(b);
      d.appendChild(s);
      items.appendChild(d);
    });
    if (!list.length) {
      var ok = document.createElement('div');
      ok.className = 'ok';
      ok.textContent = empty;
      items.appendChild(ok);
    }
    box.replaceChildren(items);
  }
  function renderAlerts(list, rules) {
    set('alert-count', list.length ? '(' + list.length + ')' : '');
    renderAlertList($('alerts'), list,
        rules ? 'All clear (' + rules + (rules > 1 ? ' rules)' : ' rule)')
              : 'No alert rules configured');
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
  /* The closed area under a polyline's points, for a <path>. */
  function area(line) {
    if (!line) return '';
    var first = line.split(' ')[0], last = line.split(' ').pop();
    return 'M' + first.split(',')[0] + ',100 L' + line.replace(/ /g, ' L') + ' L' +
        last.split(',')[0] + ',100 Z';
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
    $('spark-all').setAttribute('d', area(line));
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
    var imps = s.imps;
    set('imps-success', int(imps.success));
    set('imps-no-bid', int(imps.no_bid));
    set('imps-timeout', int(imps.timeout));
    set('imps-deals', int(imps.deals_won));
    var bill = s.billing;
    set('bill-billed', int(bill.billed));
    set('bill-retried', int(bill.retried));
    set('bill-pending', int(bill.pending));
    set('bill-failed', int(bill.failed));
    renderBidders(s.bidders);
    renderAlerts(s.alerts, s.alert_rules);
    renderCharts(s.history);
  }
  /* ---- The campaign view (SPEC 16) ---- */
  var ADV_COLUMNS = ['id', 'spend', 'wins', 'impressions', 'clicks', 'ctr', 'conversions',
                     'cvr', 'cpc', 'win_rate'];
  var sortKey = 'spend', sortDir = -1, advertisers = null;
  /* The advertiser of "#/advertiser/{id}", or null: the overview. */
  function route() {
    var m = /^#\/advertiser\/([A-Za-z0-9._:-]{1,128})$/.exec(location.hash);
    return m ? m[1] : null;
  }
  /* The error an answer's body gives: its JSON "error", an HTML page's
   * title (evhttp's own error pages), or the text itself. */
  function errorText(res, text) {
    var m = /<title>([^<]*)<\/title>/i.exec(text), msg = m ? m[1] : text.trim();
    try { msg = JSON.parse(text).error || msg; } catch (x) { /* not JSON */ }
    return 'HTTP ' + res.status + ': ' + (msg || res.statusText);
  }
  function getJSON(path) {
    return fetch(path, {cache: 'no-store'}).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) throw new Error(errorText(res, text));
        return JSON.parse(text);
      });
    });
  }
  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (x === y) return a.id < b.id ? -1 : 1;
    if (x === null || x === undefined) return 1; /* no value: last either way */
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * sortDir;
  }
  function renderAdvertisers() {
    if (!advertisers) return;
    var body = $('advertisers'), rows = document.createDocumentFragment();
    advertisers.advertisers.slice().sort(compare).forEach(function (a) {
      var tr = document.createElement('tr');
      if (!a.active) tr.className = 'inactive';
      var link = document.createElement('a');
      link.href = '#/advertiser/' + a.id;
      link.textContent = a.id;
      cell(tr, '').appendChild(link);
      cell(tr, cash(a.spend), 'n');
      cell(tr, int(a.wins), 'n');
      cell(tr, int(a.impressions), 'n');
      cell(tr, int(a.clicks), 'n');
      cell(tr, pct(a.ctr), 'n');
      cell(tr, int(a.conversions), 'n');
      cell(tr, pct(a.cvr), 'n');
      cell(tr, cash(a.cpc), 'n');
      cell(tr, pct(a.win_rate), 'n');
      rows.appendChild(tr);
    });
    if (!advertisers.advertisers.length) {
      var tr = document.createElement('tr');
      cell(tr, 'no advertisers in the registry yet', 'empty').colSpan = ADV_COLUMNS.length;
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    set('adv-source', advertisers.source === 'local' ? '(this exchange only: Redis unreachable)'
                                                     : '');
    Array.prototype.forEach.call($('adv-head').children, function (th) {
      th.className = th.dataset.key === sortKey ? (sortDir < 0 ? 'sorted desc' : 'sorted asc')
                                                : '';
    });
  }
  function sortBy(key) {
    if (ADV_COLUMNS.indexOf(key) < 0) return;
    if (key === sortKey) sortDir = -sortDir;
    else { sortKey = key; sortDir = key === 'id' ? 1 : -1; }
    renderAdvertisers();
  }
  /* The small charts of one advertiser: one card per row. */
  var MINI = [
    {key: 'spend', title: 'Spend / min', lines: ['spend'], fmt: cash},
    {key: 'wins', title: 'Wins / min', lines: ['wins'], fmt: int},
    {key: 'impressions', title: 'Impressions / min', lines: ['impressions'], fmt: int},
    {key: 'clicks', title: 'Clicks / min', lines: ['clicks'], fmt: int},
    {key: 'conversions', title: 'Conversions / min', lines: ['conversions'], fmt: int},
    {key: 'calls', title: 'Calls and bids / min', lines: ['calls', 'bids'], fmt: int}
  ];
  /* The SVG namespace, from the page's own chart (the page names no URL). */
  var SVG = $('spark').namespaceURI, COLORS = ['#2563eb', '#17a34a'];
  function svgEl(name, attrs) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function buildMiniCharts() {
    var box = $('adv-charts');
    MINI.forEach(function (c) {
      var card = document.createElement('div'), h = document.createElement('h2');
      var max = document.createElement('span'), axis = document.createElement('div');
      card.className = 'card chart mini';
      h.textContent = c.title;
      max.className = 'max';
      max.id = 'mc-' + c.key + '-max';
      var svg = svgEl('svg', {id: 'mc-' + c.key, viewBox: '0 0 300 100',
                              preserveAspectRatio: 'none', 'aria-label': c.title});
      svg.appendChild(svgEl('path', {id: 'mc-' + c.key + '-area', fill: 'rgba(37,99,235,.12)',
                                     stroke: 'none', d: ''}));
      c.lines.forEach(function (k, i) {
        svg.appendChild(svgEl('polyline', {id: 'mc-' + c.key + '-' + k, fill: 'none',
            stroke: COLORS[i], 'stroke-width': '1.6', 'vector-effect': 'non-scaling-stroke',
            points: ''}));
      });
      axis.className = 'axis';
      ['\u221260 min', c.lines.length > 1 ? c.lines.join(' / ') : '', 'now'].forEach(
          function (t) {
            var sp = document.createElement('span');
            sp.textContent = t;
            axis.appendChild(sp);
          });
      [h, max, svg, axis].forEach(function (e) { card.appendChild(e); });
      box.appendChild(card);
    });
  }
  function renderMiniCharts(series) {
    MINI.forEach(function (c) {
      var max = 0;
      series.forEach(function (p) {
        c.lines.forEach(function (k) { if (p[k] > max) max = p[k]; });
      });
      c.lines.forEach(function (k, i) {
        var line = points(series, k, max || 1, series.length);
        $('mc-' + c.key + '-' + k).setAttribute('points', line);
        if (i === 0) $('mc-' + c.key + '-area').setAttribute('d', area(line));
      });
      set('mc-' + c.key + '-max', 'peak ' + c.fmt(max));
    });
  }
  function kv(box, pairs) {
    var items = document.createDocumentFragment();
    pairs.forEach(function (p) {
      var dt = document.createElement('dt'), dd = document.createElement('dd');
      dt.textContent = p[0];
      dd.textContent = p[1];
      if (p[2]) dd.className = p[2];
      items.appendChild(dt);
      items.appendChild(dd);
    });
    box.replaceChildren(items);
  }
  function renderAdvertiser(v) {
    set('adv-title', v.id);
    var st = $('adv-state');
    st.className = 'state ' + (v.active ? v.health.breaker : 'inactive');
    st.textContent = v.active ? 'circuit ' + v.health.breaker.replace('_', '-') : 'inactive';
    set('adv-view-source', v.source === 'local' ? 'this exchange (Redis unreachable)'
                                                 : 'every exchange (Redis)');
    set('adv-spend', cash(v.spend));
    set('adv-cpc', cash(v.cpc));
    set('adv-wins', int(v.wins));
    set('adv-win-rate', pct(v.win_rate));
    set('adv-bids', int(v.bids));
    set('adv-impressions', int(v.impressions));
    set('adv-billed', int(v.billed));
    set('adv-clicks', int(v.clicks));
    set('adv-ctr', pct(v.ctr));
    set('adv-conversions', int(v.conversions));
    set('adv-cvr', pct(v.cvr));
    renderMiniCharts(v.series.points);
    var h = v.health, by = h.skipped_by || {};
    kv($('adv-health'), [
      ['circuit', h.breaker.replace('_', '-'), h.breaker === 'closed' ? '' : 'bad'],
      ['share', pct(h.share), h.share < 1 ? 'bad' : ''],
      ['p95', h.p95_ms === null ? 'not known yet' : ms(h.p95_ms) + ' ms'],
      ['calls/s', int(h.calls_per_s)],
      ['in flight', int(h.inflight)],
      ['timeouts', int(h.timeouts)],
      ['errors', int(h.errors)],
      ['skipped', int(h.skipped) + (h.skipped ? ' (' + Object.keys(by).filter(function (k) {
        return by[k];
      }).map(function (k) { return k.replace('_', ' ') + ' ' + int(by[k]); }).join(', ') + ')'
                                               : '')]
    ]);
    set('adv-alert-count', v.alerts.length ? '(' + v.alerts.length + ')' : '');
    renderAlertList($('adv-alerts'), v.alerts, 'No alert firing for ' + v.id);
    var card = $('adv-budget-card');
    card.hidden = v.budget === null || v.budget === undefined;
    if (!card.hidden) {
      kv($('adv-budget'), Object.keys(v.budget).map(function (k) {
        var x = v.budget[k];
        return [k.replace(/_/g, ' '), typeof x === 'number' ? cash(x) : String(x)];
      }));
    }
  }
  var advBusy = false, viewBusy = false;
  function refreshAdvertisers() {
    if (advBusy) return;
    advBusy = true;
    getJSON('/api/advertisers').then(function (list) {
      advertisers = list;
      renderAdvertisers();
    }).catch(function (e) {
      set('adv-source', '(' + e.message + ')');
    }).then(function () { advBusy = false; });
  }
  function refreshView(id) {
    if (viewBusy) return;
    viewBusy = true;
    getJSON('/api/advertisers/' + id).then(function (v) {
      if (route() !== id) return;
      set('adv-error', '');
      renderAdvertiser(v);
    }).catch(function (e) {
      set('adv-error', e.message);
    }).then(function () { viewBusy = false; });
  }
  function showRoute() {
    var id = route();
    $('overview').hidden = id !== null;
    $('adv-view').hidden = id === null;
    if (id === null) {
      refreshAdvertisers();
      return;
    }
    set('adv-title', id);
    set('adv-error', '');
    refreshView(id);
  }

  /* ---- Alert rules (SPEC 16): GET, POST and DELETE /api/alerts ---- */
  var rulesBusy = false;
  function renderRules(rules) {
    var box = $('rules'), items = document.createDocumentFragment();
    set('rule-count', rules.length ? '(' + rules.length + ')' : '');
    rules.forEach(function (r) {
      var d = document.createElement('div'), head = document.createElement('div');
      var what = document.createElement('span'), del = document.createElement('button');
      d.className = r.state === 'firing' ? 'rule firing' : 'rule';
      d.dataset.name = r.name;
      head.className = 'rule-head';
      [[r.name, 'name'], [r.severity, 'sev ' + r.severity],
       [r.state, 'state ' + (r.state === 'firing' ? 'open' : 'closed')]].forEach(function (p) {
        var b = document.createElement('b');
        b.textContent = p[0];
        b.className = p[1];
        head.appendChild(b);
      });
      del.type = 'button';
      del.className = 'del';
      del.textContent = 'delete';
      del.addEventListener('click', function () { deleteRule(r.name); });
      head.appendChild(del);
      what.textContent = r.metric + (r.subject ? ' of ' + r.subject : '') + ' ' + r.op + ' ' +
          r.threshold + ' over ' + r.window_s + ' s' + (r.message ? ': ' + r.message : '') +
          (r.source ? ' (' + r.source + ')' : '');
      d.appendChild(head);
      d.appendChild(what);
      items.appendChild(d);
    });
    if (!rules.length) {
      var e = document.createElement('div');
      e.className = 'empty';
      e.textContent = 'No alert rules';
      items.appendChild(e);
    }
    box.replaceChildren(items);
  }
  function refreshRules() {
    if (rulesBusy) return;
    rulesBusy = true;
    getJSON('/api/alerts').then(function (r) {
      renderRules(r.rules || []);
    }).catch(function (e) {
      var d = document.createElement('div');
      d.className = 'error';
      d.textContent = 'GET /api/alerts: ' + e.message;
      $('rules').replaceChildren(d);
    }).then(function () { rulesBusy = false; });
  }
  /* A write to /api/alerts with the token as typed; resolves, or rejects
   * with the API's error text. */
  function write(method, path, body) {
    var headers = {}, token = $('rule-token').value.trim();
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body) headers['Content-Type'] = 'application/json';
    return fetch(path, {method: method, headers: headers, cache: 'no-store',
                        body: body ? JSON.stringify(body) : undefined}).then(function (res) {
      if (res.ok) return;
      return res.text().then(function (text) { throw new Error(errorText(res, text)); });
    });
  }
  /* The callbacks for one write's end; a message left by an earlier write
   * is cleared at once, so what the panel shows is about this write. */
  function ruleResult(what) {
    set('rule-error', '');
    set('rule-status', '');
    return [function () {
      set('rule-error', '');
      set('rule-status', what);
      refreshRules();
    }, function (e) {
      set('rule-status', '');
      set('rule-error', e.message);
    }];
  }
  function deleteRule(name) {
    var done = ruleResult('deleted ' + name);
    write('DELETE', '/api/alerts/' + encodeURIComponent(name)).then(done[0], done[1]);
  }
  function addRule(ev) {
    ev.preventDefault();
    var subject = $('rule-subject').value.trim(), rule = {
      name: $('rule-name').value.trim(),
      metric: $('rule-metric').value,
      subject: subject || null,
      op: $('rule-op').value,
      threshold: Number($('rule-threshold').value),
      window_s: Number($('rule-window').value),
      severity: $('rule-severity').value,
      message: $('rule-message').value.trim()
    };
    var done = ruleResult('added ' + rule.name);
    write('POST', '/api/alerts', rule).then(done[0], done[1]);
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
  buildMiniCharts();
  Array.prototype.forEach.call($('adv-head').children, function (th) {
    th.addEventListener('click', function () { sortBy(th.dataset.key); });
  });
  $('rule-form').addEventListener('submit', addRule);
  window.addEventListener('hashchange', showRoute);
  setInterval(function () {
    var id = route();
    if (id === null) refreshAdvertisers();
    else refreshView(id);
  }, 2000);
  setInterval(refreshRules, 5000);
  poll();
  connect();
  showRoute();
  refreshRules();
})();
