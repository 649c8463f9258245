// Real-browser test of the monitoring dashboard: loads it in headless Debian
// Chromium (driven by playwright-core, no downloaded browser), under the CSP
// the server sends, and checks that live samples arrive and redraw the charts.
//
//   MONITOR_URL=http://127.0.0.1:8080/monitor \
//   [MONITOR_COOKIE='name=value[; name2=value2]'] [ARTIFACTS_DIR=var/browser] \
//   [CHROMIUM=/usr/bin/chromium] node tests/browser/monitor.mjs
//
// Prints one JSON line with the results; exits 0 when every check passes,
// 1 otherwise (also after the 30 s global timeout).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const URL_ = process.env.MONITOR_URL;
const COOKIE = process.env.MONITOR_COOKIE || '';
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR || path.join(ROOT, 'var/browser-artifacts'));
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const GLOBAL_TIMEOUT_MS = 30000;
const CHARTS = ['rps', 'latency', 'errors', 'pool', 'cache', 'security'];

const result = {
    ok: false, url: URL_, samples: null, samplesBefore: null,
    consoleErrors: [], consoleWarnings: [], pageErrors: [], cspViolations: [], badResponses: [],
    chartsChanged: [], chartsUnchanged: [], csp: null, failures: [], artifacts: ARTIFACTS,
};
let browser = null;
let page = null;
let finished = false;

async function finish(code) {
    if (finished) return;
    finished = true;
    if (code !== 0 && page) {
        await page.screenshot({ path: path.join(ARTIFACTS, 'monitor-failure.png'), timeout: 3000 }).catch(() => {});
    }
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(3000)]);
    try { fs.writeFileSync(path.join(ARTIFACTS, 'monitor-result.json'), JSON.stringify(result, null, 2) + '\n'); } catch {}
    process.stdout.write(JSON.stringify(result) + '\n');
    if (code !== 0) process.stderr.write('monitor test FAILED: ' + result.failures.join('; ') + '\n');
    process.exit(code);
}

function fail(msg) {
    result.failures.push(msg);
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

const timer = setTimeout(() => {
    fail(`global timeout: not done after ${GLOBAL_TIMEOUT_MS / 1000} s`);
    finish(1);
}, GLOBAL_TIMEOUT_MS);

async function samplesCount() {
    const text = await page.locator('[data-testid="samples-received"]').textContent({ timeout: 2000 });
    return Number.parseInt((text || '').replace(/\D/g, ''), 10) || 0;
}

async function chartShots() {
    const shots = {};
    for (const id of CHARTS) {
        shots[id] = await page.locator(`[data-testid="chart-${id}"]`).screenshot({ animations: 'disabled', timeout: 5000 });
    }
    return shots;
}

// The strict policy the dashboard is written for: a nonce, no inline or eval.
function checkCsp(header) {
    if (!header) return fail('the page was sent without a Content-Security-Policy header');
    const directives = Object.fromEntries(header.split(';').map((d) => d.trim()).filter(Boolean)
        .map((d) => { const [name, ...v] = d.split(/\s+/); return [name.toLowerCase(), v]; }));
    const scriptSrc = directives['script-src'] || directives['default-src'] || [];
    const styleSrc = directives['style-src'] || directives['default-src'] || [];
    result.csp = { scriptSrc: scriptSrc.join(' '), styleSrc: styleSrc.join(' ') };
    for (const [name, list] of [['script-src', scriptSrc], ['style-src', styleSrc]]) {
        if (list.includes("'unsafe-inline'")) fail(`CSP ${name} allows 'unsafe-inline'`);
        if (list.includes("'unsafe-eval'")) fail(`CSP ${name} allows 'unsafe-eval'`);
    }
    if (!scriptSrc.some((s) => /^'nonce-[A-Za-z0-9_+/=-]{16,}'$/.test(s))) fail('CSP script-src has no nonce');
}

async function main() {
    if (!URL_) {
        fail('MONITOR_URL is not set (e.g. http://127.0.0.1:8080/monitor)');
        return finish(1);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const origin = new URL(URL_).origin;

    browser = await chromium.launch({
        executablePath: EXECUTABLE,
        headless: true,
        timeout: 15000,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: false });
    if (COOKIE) {
        const cookies = COOKIE.split(';').map((c) => c.trim()).filter(Boolean).map((c) => {
            const eq = c.indexOf('=');
            if (eq <= 0) throw new Error(`MONITOR_COOKIE: expected name=value, got "${c}"`);
            return { name: c.slice(0, eq).trim(), value: c.slice(eq + 1).trim(), url: origin };
        });
        await context.addCookies(cookies);
    }
    await context.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__cspViolations.push({
                directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
                source: e.sourceFile, line: e.lineNumber, sample: e.sample,
            });
        });
    });

    page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on('console', (msg) => {
        const type = msg.type();
        const text = msg.text();
        const loc = msg.location();
        const entry = loc && loc.url ? `${text} (${loc.url}:${loc.lineNumber})` : text;
        if (/Content[- ]Security[- ]Policy/i.test(text)) result.cspViolations.push({ console: entry });
        if (type === 'error') result.consoleErrors.push(entry);
        else if (type === 'warning') result.consoleWarnings.push(entry);
    });
    page.on('pageerror', (err) => result.pageErrors.push(String(err && err.stack || err)));
    page.on('response', (res) => {
        if (res.status() >= 400) result.badResponses.push(`${res.status()} ${res.url()}`);
    });
    page.on('requestfailed', (req) => {
        // The open event stream is aborted when the page closes: not a failure.
        if (!finished && !req.url().endsWith('/monitor/stream')) {
            result.badResponses.push(`failed ${req.url()}: ${req.failure() && req.failure().errorText}`);
        }
    });

    const response = await page.goto(URL_, { waitUntil: 'load', timeout: 10000 });
    if (!response) throw new Error('no response for ' + URL_);
    if (response.status() !== 200) throw new Error(`GET ${URL_} answered ${response.status()}`);
    const ctype = response.headers()['content-type'] || '';
    if (!/^text\/html\b/i.test(ctype)) fail(`page Content-Type is "${ctype}", not text/html`);
    checkCsp(response.headers()['content-security-policy']);
    const body = await response.text();
    if (body.includes('{{nonce}}')) fail('the page still contains "{{nonce}}": the template was not filled');

    // The counter counts every sample event received, replays included.
    await page.waitForFunction(() => {
        const el = document.querySelector('[data-testid="samples-received"]');
        return el && parseInt(el.textContent, 10) >= 2;
    }, null, { timeout: 10000, polling: 100 });
    // Let the replay's frame render, then take the "before" pictures.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    result.samplesBefore = await samplesCount();
    await page.screenshot({ path: path.join(ARTIFACTS, 'monitor-1.png') });
    const before = await chartShots();

    await sleep(2500);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    result.samples = await samplesCount();
    await page.screenshot({ path: path.join(ARTIFACTS, 'monitor-2.png') });
    const after = await chartShots();

    for (const id of CHARTS) {
        (before[id].equals(after[id]) ? result.chartsUnchanged : result.chartsChanged).push(id);
    }
    result.canvases = await page.locator('.chart canvas').count();
    result.status = await page.locator('[data-testid="connection-status"]').getAttribute('data-state');
    result.cspViolations.push(...await page.evaluate(() => window.__cspViolations || []));

    if (result.samples <= result.samplesBefore) {
        fail(`samples counter did not increase in 2.5 s (${result.samplesBefore} -> ${result.samples})`);
    }
    if (result.canvases !== CHARTS.length) fail(`expected ${CHARTS.length} chart canvases, found ${result.canvases}`);
    if (result.chartsUnchanged.length) fail(`charts did not change between screenshots: ${result.chartsUnchanged.join(', ')}`);
    if (result.status !== 'connected') fail(`connection status is "${result.status}", not "connected"`);
    if (result.consoleErrors.length) fail(`${result.consoleErrors.length} console error(s): ${result.consoleErrors[0]}`);
    if (result.consoleWarnings.length) fail(`${result.consoleWarnings.length} console warning(s): ${result.consoleWarnings[0]}`);
    if (result.pageErrors.length) fail(`${result.pageErrors.length} page error(s): ${result.pageErrors[0]}`);
    if (result.cspViolations.length) fail(`${result.cspViolations.length} CSP violation(s): ${JSON.stringify(result.cspViolations[0])}`);
    if (result.badResponses.length) fail(`${result.badResponses.length} failed request(s): ${result.badResponses[0]}`);

    result.ok = result.failures.length === 0;
    clearTimeout(timer);
    return finish(result.ok ? 0 : 1);
}

main().catch((err) => {
    fail(String(err && err.message || err).split('\n')[0]);
    clearTimeout(timer);
    finish(1);
});
