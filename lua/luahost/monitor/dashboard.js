/* luahost monitoring dashboard.
 *
 * Reads /monitor/stream (Server-Sent Events): one "sample" event a second,
 * after a replay of up to the last 60 on connect. Keeps the last 120 samples
 * and draws them with uPlot; shows the latest values, the active alerts and
 * the state of the connection. Runs under a strict CSP: no inline code, no
 * eval, no style attributes in the markup (uPlot sets element.style, which
 * CSP allows). */
(function () {
    'use strict';

    var STREAM_URL = '/monitor/stream';
    var MAX_POINTS = 120;           /* one per second: two minutes */
    var CHART_HEIGHT = 200;         /* plot and axes, without the legend */
    var RETRY_MIN_MS = 1000;
    var RETRY_MAX_MS = 30000;

    /* ---- data: one column per series, shared by the charts ---- */

    var COLUMNS = ['t', 'rps', 'p50', 'p95', 'p99', 'errors', 'poolActive', 'poolWaiting',
        'poolSize', 'l1', 'l2', 'ratelimit', 'bots'];
    var data = {};
    COLUMNS.forEach(function (name) { data[name] = []; });

    function num(v) {
        return typeof v === 'number' && isFinite(v) ? v : null;
    }

    function pct(v) {
        v = num(v);
        return v === null ? null : v * 100;
    }

    /* One sample as a row of COLUMNS; null when it has no usable time. */
    function row(s) {
        var pool = s.pool && typeof s.pool === 'object' ? s.pool : null;
        var cache = s.cache && typeof s.cache === 'object' ? s.cache : {};
        var t = num(s.t);
        if (t === null) return null;
        return {
            t: t,
            rps: num(s.rps),
            p50: num(s.p50_ms),
            p95: num(s.p95_ms),
            p99: num(s.p99_ms),
            errors: pct(s.error_rate),
            poolActive: pool ? num(pool.active) : null,
            poolWaiting: pool ? num(pool.waiting) : null,
            poolSize: pool ? num(pool.size) : null,
            l1: pct(cache.l1_hit_rate),
            l2: pct(cache.l2_hit_rate),
            ratelimit: num(s.ratelimit_rejections_per_s),
            bots: num(s.bot_detections_per_s)
        };
    }

    function push(r) {
        COLUMNS.forEach(function (name) {
            var col = data[name];
            col.push(r[name] === undefined ? null : r[name]);   /* undefined would bridge the gap */
            if (col.length > MAX_POINTS) col.shift();
        });
    }

    /* Appends a row unless it is not newer than the last one (a reconnect
     * replays samples we already have). After a gap of missing samples, a
     * row of nulls first, so that the lines break instead of bridging it. */
    function append(r) {
        var ts = data.t;
        var last = ts.length ? ts[ts.length - 1] : null;
        if (last !== null && r.t <= last) return false;
        if (last !== null && r.t - last > 3) push({ t: last + 1 });
        push(r);
        return true;
    }

    /* ---- formatting ---- */

    function fmt(v, digits) {
        if (v === null || v === undefined) return '—';
        if (digits === undefined) {
            var a = Math.abs(v);
            digits = a >= 100 || Number.isInteger(v) ? 0 : a >= 1 ? 1 : 2;
        }
        return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    }

    /* Axis labels fit 50 px: 1.5k, 20k, 1.2M. */
    function fmtAxis(v) {
        var a = Math.abs(v);
        if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
        if (a >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
        return String(+v.toFixed(3));
    }

    function fmtPct(v) {
        if (v === null || v === undefined) return '—';
        return fmt(v, v === 0 || v >= 10 ? 0 : 1) + ' %';
    }

    function fmtTime(t) {
        return new Date(t * 1000).toLocaleTimeString('en-GB', { hour12: false });
    }

    function fmtDuration(seconds) {
        seconds = Math.max(0, Math.round(seconds));
        var h = Math.floor(seconds / 3600);
        var m = Math.floor(seconds % 3600 / 60);
        var s = seconds % 60;
        if (h) return h + 'h ' + m + 'm';
        if (m) return m + 'm ' + (s < 10 ? '0' : '') + s + 's';
        return s + 's';
    }

    /* ---- charts ---- */

    var css = getComputedStyle(document.documentElement);
    function cssVar(name, fallback) {
        return css.getPropertyValue(name).trim() || fallback;
    }
    var AXIS = cssVar('--axis', '#57606a');
    var GRID = cssVar('--grid', 'rgba(0,0,0,0.08)');

    var INTEGER_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

    var CHARTS = [
        { id: 'rps', series: [
            { col: 'rps', label: 'requests/s', color: '#2f81f7', fill: 'rgba(47,129,247,0.12)' }] },
        /* no request in a second: no latency; the lines bridge those seconds */
        { id: 'latency', spanGaps: true, series: [
            { col: 'p50', label: 'p50', color: '#2da44e' },
            { col: 'p95', label: 'p95', color: '#d4a72c' },
            { col: 'p99', label: 'p99', color: '#cf222e' }] },
        { id: 'errors', percent: true, minMax: 1, series: [
            { col: 'errors', label: '5xx', color: '#cf222e', fill: 'rgba(207,34,46,0.12)' }] },
        { id: 'pool', integer: true, series: [
            { col: 'poolActive', label: 'active', color: '#2f81f7' },
            { col: 'poolWaiting', label: 'waiting', color: '#cf222e' },
            { col: 'poolSize', label: 'size', color: '#8c959f', dash: [4, 4] }] },
        { id: 'cache', percent: true, fixed: [0, 100], series: [
            { col: 'l1', label: 'L1', color: '#1b9e8f' },
            { col: 'l2', label: 'L2', color: '#8250df' }] },
        { id: 'security', integer: true, series: [
            { col: 'ratelimit', label: 'rate limit', color: '#e16f24' },
            { col: 'bots', label: 'bots', color: '#8250df' }] }
    ];

    function yRange(def) {
        return function (u, min, max) {
            if (def.fixed) return def.fixed.slice();
            var top = max === null || !(max > 0) ? 0 : max * 1.15;
            top = Math.max(top, def.minMax || 1);
            if (def.integer) top = Math.ceil(top);
            return [0, top];
        };
    }

    /* Legend value: the hovered point's, else the latest one. */
    function legendValue(def) {
        return function (u, v, sidx, idx) {
            if (idx === null || idx === undefined) {
                var col = u.data[sidx];
                v = col && col.length ? col[col.length - 1] : null;
            }
            if (v === null || v === undefined) return '—';
            return def.percent ? fmtPct(v) : fmt(v);
        };
    }

    function makeChart(def) {
        var el = document.querySelector('[data-testid="chart-' + def.id + '"]');
        var axis = { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 } };
        var xAxis = Object.assign({}, axis, {
            space: 70,
            size: 28,
            values: function (u, splits) { return splits.map(fmtTime); }
        });
        var yAxis = Object.assign({}, axis, {
            size: 50,
            values: function (u, splits) {
                return splits.map(function (v) { return fmtAxis(v) + (def.percent ? '%' : ''); });
            }
        });
        if (def.integer) yAxis.incrs = INTEGER_INCRS;
        var series = [{ label: 'time' }].concat(def.series.map(function (s) {
            return {
                label: s.label,
                stroke: s.color,
                fill: s.fill,
                dash: s.dash,
                spanGaps: !!def.spanGaps,
                width: 2,
                points: { show: false },
                value: legendValue(def)
            };
        }));
        var opts = {
            width: Math.max(200, el.clientWidth),
            height: CHART_HEIGHT,
            padding: [12, 28, 0, 0],   /* room for the last time label */
            series: series,
            scales: {
                x: {
                    time: true,
                    /* a fixed two-minute window that slides with the newest sample */
                    range: function (u, min, max) {
                        if (max === null) max = Date.now() / 1000;
                        return [max - (MAX_POINTS - 1), max];
                    }
                },
                y: { range: yRange(def) }
            },
            axes: [xAxis, yAxis],
            cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 6 } },
            legend: { live: true }
        };
        var cols = [data.t].concat(def.series.map(function (s) { return data[s.col]; }));
        return { el: el, cols: cols, plot: new uPlot(opts, cols, el) };
    }

    var charts = CHARTS.map(makeChart);

    function resizeCharts() {
        charts.forEach(function (c) {
            var w = Math.max(200, c.el.clientWidth);
            if (w !== c.plot.width) c.plot.setSize({ width: w, height: CHART_HEIGHT });
        });
    }

    var resizePending = false;
    window.addEventListener('resize', function () {
        if (resizePending) return;
        resizePending = true;
        requestAnimationFrame(function () {
            resizePending = false;
            resizeCharts();
        });
    });

    /* ---- latest values and alerts ---- */

    function byId(id) {
        return document.querySelector('[data-testid="' + id + '"]');
    }

    function setText(id, text) {
        var el = byId(id);
        if (el.textContent !== text) el.textContent = text;
        return el;
    }

    function renderStats(s) {
        setText('stat-rps', fmt(num(s.rps)));
        setText('stat-p50', fmt(num(s.p50_ms)));
        setText('stat-p95', fmt(num(s.p95_ms)));
        setText('stat-p99', fmt(num(s.p99_ms)));
        var er = pct(s.error_rate);
        setText('stat-error-rate', fmtPct(er)).classList.toggle('bad', er !== null && er > 0);
        setText('stat-inflight', fmt(num(s.inflight)));

        var pool = s.pool && typeof s.pool === 'object' ? s.pool : null;
        byId('stat-pool').hidden = !pool;
        byId('stat-pool-none').hidden = !!pool;
        byId('pool-note').hidden = !!pool;
        if (pool) {
            setText('stat-pool-active', fmt(num(pool.active)) + ' / ' + fmt(num(pool.size)));
            var waiting = num(pool.waiting);
            setText('stat-pool-waiting', fmt(waiting)).classList.toggle('bad', waiting > 0);
        }

        var cache = s.cache && typeof s.cache === 'object' ? s.cache : {};
        setText('stat-l1', fmtPct(pct(cache.l1_hit_rate)));
        setText('stat-l2', fmtPct(pct(cache.l2_hit_rate)));
        setText('stat-ratelimit', fmt(num(s.ratelimit_rejections_per_s)));
        setText('stat-bots', fmt(num(s.bot_detections_per_s)));
    }

    function cell(tr, text, className) {
        var td = document.createElement('td');
        td.textContent = text;
        if (className) td.className = className;
        tr.appendChild(td);
        return td;
    }

    function renderAlerts(s) {
        var alerts = Array.isArray(s.alerts) ? s.alerts : [];
        var tbody = byId('alerts');
        var rows = document.createDocumentFragment();
        alerts.forEach(function (a) {
            if (!a || typeof a !== 'object') return;
            var tr = document.createElement('tr');
            tr.setAttribute('data-testid', 'alert-row');
            var severity = String(a.severity || 'info');
            var badge = document.createElement('span');
            badge.className = 'sev sev-' + severity.toLowerCase().replace(/[^a-z]/g, '');
            badge.textContent = severity;
            cell(tr, '').appendChild(badge);
            cell(tr, String(a.name || ''));
            cell(tr, fmt(num(a.value)), 'num');
            var since = num(a.since);
            var now = num(s.t);
            cell(tr, since === null ? '—' : fmtTime(since) +
                (now !== null ? ' (' + fmtDuration(now - since) + ')' : ''));
            cell(tr, String(a.description || ''));
            rows.appendChild(tr);
        });
        var n = rows.childNodes.length;
        tbody.replaceChildren(rows);
        byId('alerts-table').hidden = n === 0;
        byId('alerts-empty').hidden = n !== 0;
        setText('alerts-count', String(n)).classList.toggle('active', n > 0);
    }

    /* ---- rendering, at most once a frame (the replay sends 60 at once) ---- */

    var latest = null;
    var chartsDirty = false;
    var renderPending = false;

    function render() {
        renderPending = false;
        if (chartsDirty) {
            chartsDirty = false;
            charts.forEach(function (c) {
                c.plot.setData(c.cols);
                if (c.plot.cursor.idx === null || c.plot.cursor.idx === undefined) c.plot.setLegend();
            });
        }
        if (latest) {
            renderStats(latest);
            renderAlerts(latest);
            var t = num(latest.t);
            setText('last-sample', t === null ? '—' : fmtTime(t));
            latest = null;
        }
    }

    function scheduleRender() {
        if (renderPending) return;
        renderPending = true;
        requestAnimationFrame(render);
    }

    /* ---- the stream ---- */

    var received = 0;
    var newestT = null;
    var warned = false;

    function onSample(ev) {
        var s;
        try {
            s = JSON.parse(ev.data);
        } catch (e) {
            s = null;
        }
        var r = s && typeof s === 'object' ? row(s) : null;
        if (!r) {
            if (!warned) console.warn('monitor: ignoring a malformed sample', String(ev.data).slice(0, 200));
            warned = true;
            return;
        }
        received += 1;
        setText('samples-received', String(received));
        if (append(r)) chartsDirty = true;
        if (newestT === null || r.t >= newestT) {
            newestT = r.t;
            latest = s;
        }
        scheduleRender();
    }

    var conn = byId('connection-status');
    var connText = conn.querySelector('.conn-text');

    function setStatus(state, text) {
        conn.setAttribute('data-state', state);
        connText.textContent = text || state;
    }

    var source = null;
    var retryMs = RETRY_MIN_MS;
    var retryTimer = null;

    function connect() {
        retryTimer = null;
        source = new EventSource(STREAM_URL);
        source.addEventListener('open', function () {
            retryMs = RETRY_MIN_MS;
            setStatus('connected');
        });
        source.addEventListener('sample', onSample);
        source.addEventListener('error', function () {
            if (source.readyState === EventSource.CLOSED) {
                /* the browser gave up (an error status, a wrong content type):
                 * retry ourselves, backing off */
                source.close();
                setStatus('reconnecting', 'reconnecting in ' + Math.round(retryMs / 1000) + 's');
                retryTimer = setTimeout(connect, retryMs);
                retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
            } else {
                /* the browser reconnects by itself */
                setStatus('reconnecting');
            }
        });
    }

    window.addEventListener('pagehide', function () {
        if (retryTimer) clearTimeout(retryTimer);
        retryTimer = null;
        if (source) source.close();
    });
    window.addEventListener('pageshow', function (ev) {
        if (ev.persisted) connect();   /* back from the back/forward cache */
    });

    connect();
}());
