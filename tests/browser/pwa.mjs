// Real-browser test of the gallery as a progressive web app, in headless
// Debian Chromium (driven by playwright-core, no downloaded browser), under
// the CSP the server sends:
//   1. the gallery loads and shows image cards, without console errors, page
//      errors or CSP violations;
//   2. the service worker registers and controls the page after a reload;
//   3. Chromium finds the app installable (no manifest or installability errors);
//   4. signing in (from a link whose ?next= would leave the site: it lands
//      on the gallery) and uploading through the forms opens the new image's
//      page, and puts it first in the gallery;
//   5. offline, the gallery and a viewed image page come from the cache, and
//      a page never saved shows the offline page;
//   6. a private upload opens its page, which the service worker does not
//      save, and which another user (OTHER_USERNAME) and visitors get as 404;
//      another user's image page has no Delete button; the owner's Delete
//      button asks first, deletes, goes to the gallery, and the image is gone;
//   7. deleting a viewed public image also deletes its saved page and data;
//   8. signing out deletes the saved pages that name the user.
//
//   BASE_URL=http://127.0.0.1:8080 USERNAME=... PASSWORD=... OTHER_USERNAME=... \
//   OTHER_PASSWORD=... [ARTIFACTS_DIR=var/browser-artifacts] [CHROMIUM=/usr/bin/chromium] \
//   node tests/browser/pwa.mjs
//
// Prints one JSON line with the results; exits 0 when every check passes,
// 1 otherwise (also after the 60 s global timeout). Screenshots: pwa-*.png.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, request } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASE = (process.env.BASE_URL || '').replace(/\/$/, '');
const { USERNAME, PASSWORD, OTHER_USERNAME, OTHER_PASSWORD } = process.env;
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR || path.join(ROOT, 'var/browser-artifacts'));
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const GLOBAL_TIMEOUT_MS = 80000;
// A clean drawing: the server refuses scripts, handlers and external references.
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="100" height="100">'
    + '<rect width="100" height="100" fill="#eef"/><circle cx="50" cy="50" r="30" fill="#2f3e9e"/></svg>';

const result = {
    ok: false, base: BASE, steps: [], cards: null, upload: null, installabilityErrors: null,
    manifestErrors: null, caches: null, consoleErrors: [], consoleWarnings: [], pageErrors: [],
    cspViolations: [], badResponses: [], offlineNetworkErrors: 0, failures: [], artifacts: ARTIFACTS,
};
let context = null; // a persistent context: the browser itself
let profile = null;
let page = null;
let offline = false;
let finished = false;

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

async function finish(code) {
    if (finished) return;
    finished = true;
    if (code !== 0 && page) {
        await page.screenshot({ path: path.join(ARTIFACTS, 'pwa-failure.png'), timeout: 3000 })
            .catch(() => {});
    }
    if (context) await Promise.race([context.close().catch(() => {}), sleep(3000)]);
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    try {
        fs.writeFileSync(path.join(ARTIFACTS, 'pwa-result.json'), JSON.stringify(result, null, 2) + '\n');
    } catch {}
    process.stdout.write(JSON.stringify(result) + '\n');
    if (code !== 0) process.stderr.write('pwa test FAILED: ' + result.failures.join('; ') + '\n');
    process.exit(code);
}

function fail(msg) {
    result.failures.push(msg);
}

function check(condition, msg) {
    if (!condition) fail(msg);
}

function none(list, what) {
    check(list.length === 0, `${list.length} ${what}, the first: ${JSON.stringify(list[0])}`);
}

const timer = setTimeout(() => {
    fail(`global timeout: not done after ${GLOBAL_TIMEOUT_MS / 1000} s`);
    finish(1);
}, GLOBAL_TIMEOUT_MS);

async function shot(name) {
    await page.screenshot({ path: path.join(ARTIFACTS, `pwa-${name}.png`), fullPage: true });
}

// Offline, failed loads are expected; any other message is not.
const NETWORK_ERROR = /ERR_INTERNET_DISCONNECTED|Failed to (load resource|fetch)|network error/i;

function watchConsole(source, msg) {
    const text = msg.text();
    const loc = msg.location();
    const entry = `${source}: ${text}` + (loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : '');
    if (/Content[- ]Security[- ]Policy/i.test(text)) result.cspViolations.push({ console: entry });
    if (offline && NETWORK_ERROR.test(text)) result.offlineNetworkErrors++;
    else if (msg.type() === 'error') result.consoleErrors.push(entry);
    else if (msg.type() === 'warning') result.consoleWarnings.push(entry);
}

// The strict policy the pages are written for: a nonce, no inline or eval.
function checkCsp(header) {
    if (!header) return fail('the page was sent without a Content-Security-Policy header');
    const directives = Object.fromEntries(header.split(';').map((d) => d.trim()).filter(Boolean)
        .map((d) => { const [name, ...v] = d.split(/\s+/); return [name.toLowerCase(), v]; }));
    for (const name of ['script-src', 'style-src']) {
        const list = directives[name] || directives['default-src'] || [];
        check(!list.includes("'unsafe-inline'"), `CSP ${name} allows 'unsafe-inline'`);
        check(!list.includes("'unsafe-eval'"), `CSP ${name} allows 'unsafe-eval'`);
        check(list.some((s) => /^'nonce-[A-Za-z0-9_+/=-]{16,}'$/.test(s)), `CSP ${name} has no nonce`);
    }
}

async function cardNames() {
    await page.locator('.card').first().waitFor({ state: 'visible', timeout: 10000 });
    return page.locator('.card .name').allTextContents();
}

// Every card's image really rendered (CSP, COEP and the service worker let it through).
async function brokenImages() {
    return page.evaluate(() => Promise.all([...document.querySelectorAll('.card img')].map((img) =>
        img.decode().then(() => null, () => img.getAttribute('src'))))).then((list) => list.filter(Boolean));
}

async function collectViolations() {
    result.cspViolations.push(...await page.evaluate(() => window.__cspViolations || []));
}

// 1. The gallery under the strict CSP, its cards and their images.
async function gallery() {
    const response = await page.goto(BASE + '/', { waitUntil: 'load' });
    check(response && response.status() === 200, `GET / answered ${response && response.status()}`);
    check(/^text\/html\b/i.test(response.headers()['content-type'] || ''), 'GET / is not text/html');
    checkCsp(response.headers()['content-security-policy']);
    const names = await cardNames();
    result.cards = names.length;
    check(names.length === 12, `expected 12 image cards, found ${names.length}`);
    const broken = await brokenImages();
    check(broken.length === 0, `images that did not render: ${broken.join(', ')}`);
    await collectViolations();
    await shot('1-gallery');
}

// 2. Registered, and in control of the reloaded page.
async function serviceWorker() {
    await page.evaluate(() => navigator.serviceWorker.ready);
    // Controlled from the start: every request of the reloaded page goes through it.
    await page.reload({ waitUntil: 'load' });
    await cardNames();
    const state = await page.evaluate(async () => ({
        controller: navigator.serviceWorker.controller && navigator.serviceWorker.controller.scriptURL,
        caches: await caches.keys(),
        shell: (await (await caches.open('gallery-shell-v1')).keys()).map((r) => new URL(r.url).pathname),
    }));
    result.caches = state;
    check(state.controller === BASE + '/sw.js', `page not controlled by /sw.js: ${state.controller}`);
    for (const name of ['gallery-shell-v1', 'gallery-data-v1']) {
        check(state.caches.includes(name), `cache ${name} missing (have ${state.caches.join(', ')})`);
    }
    for (const p of ['/', '/offline', '/static/app.css', '/static/app.js', '/static/manifest.webmanifest']) {
        check(state.shell.includes(p), `${p} is not in the shell cache`);
    }
    await collectViolations();
    await shot('2-controlled');
}

// 3. What Chromium checks before offering to install the app.
async function installable() {
    const cdp = await context.newCDPSession(page);
    const manifest = await cdp.send('Page.getAppManifest');
    result.manifestErrors = manifest.errors || [];
    check(manifest.url === BASE + '/static/manifest.webmanifest', `manifest URL is ${manifest.url}`);
    none(result.manifestErrors, 'manifest error(s)');
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    result.installabilityErrors = installabilityErrors;
    none(installabilityErrors, 'installability error(s)');
    await cdp.detach();
}

// 4. Sign in and upload through the forms; the new image comes first. The
// sign-in link's ?next= resolves to '//evil.example': it must land on the
// gallery, not on that host.
async function signInAndUpload() {
    const filename = `pwa-test-${Date.now()}.svg`;
    await page.goto(BASE + '/signin?next=' + encodeURIComponent('/.//evil.example/'));
    await page.fill('input[name="username"]', USERNAME);
    await page.fill('input[name="password"]', PASSWORD);
    await Promise.all([page.waitForURL(BASE + '/'), page.click('#signin-form button[type="submit"]')]);
    check(await page.locator('.who').textContent() === USERNAME, 'the navigation does not name the user');
    await page.click('nav a[href="/upload"]');
    await page.waitForURL(BASE + '/upload');
    const file = { name: filename, mimeType: 'image/svg+xml', buffer: Buffer.from(SVG) };
    await page.setInputFiles('input[name="file"]', file);
    check(await page.inputValue('input[name="filename"]') === filename, 'choosing a file did not fill the name');
    await page.fill('textarea[name="description"]', 'Uploaded by the PWA browser test');
    await shot('3-upload-form');
    // The upload opens the new image's page, which is saved for offline use.
    await Promise.all([page.waitForURL(/\/image\/\d+$/), page.click('#upload-form button[type="submit"]')]);
    result.upload = { filename, page: new URL(page.url()).pathname };
    check(await page.locator('h1').textContent() === filename, 'the image page does not show the file name');
    check(await imageRendered(), 'the new image did not render');
    await page.click('nav a[href="/"]');
    const names = await cardNames();
    result.upload.first = names[0];
    check(names[0] === filename, `the new image is not first in the gallery: ${names[0]}`);
    check((await brokenImages()).length === 0, 'the gallery\'s images did not render');
    await collectViolations();
    await shot('4-uploaded');
}

// The image of an image page rendered.
async function imageRendered() {
    return page.evaluate(() => document.querySelector('.image img').decode().then(() => true, () => false));
}

// The paths of every request saved by the service worker.
async function savedPaths() {
    return page.evaluate(async () => {
        const out = [];
        for (const name of await caches.keys()) {
            for (const r of await (await caches.open(name)).keys()) out.push(new URL(r.url).pathname);
        }
        return out;
    });
}

// An API client of its own (not the browser's cookies), signed in as name
// when given: the status and body of GET path.
async function fetchAs(name, password, path) {
    const api = await request.newContext({ baseURL: BASE });
    try {
        if (name) {
            const signin = await api.post('/api/login', { data: { username: name, password } });
            if (!signin.ok()) throw new Error(`${name} could not sign in: ${signin.status()}`);
        }
        const res = await api.get(path);
        return { status: res.status(), body: await res.text() };
    } finally {
        await api.dispose();
    }
}

// Clicks the Delete button of the image page shown, accepting its
// confirmation, and waits for the gallery.
async function deleteShownImage() {
    page.once('dialog', (dialog) => dialog.accept());
    await Promise.all([page.waitForURL(BASE + '/'), page.click('#delete-image')]);
    await page.waitForLoadState('load');
}

// 5. Offline: saved pages from the cache, the offline page for the others.
async function offlineUse() {
    const { filename } = result.upload;
    offline = true;
    await context.setOffline(true);
    const gallery = await page.goto(BASE + '/');
    check(gallery.fromServiceWorker(), 'offline, / did not come from the service worker');
    const names = await cardNames();
    check(names[0] === filename, `offline gallery: first card is ${names[0]}, not the upload`);
    check(await page.evaluate(() => navigator.onLine) === false, 'navigator.onLine is still true');
    await shot('5-offline-gallery');

    await page.goto(BASE + result.upload.page);
    check(await page.locator('h1').textContent() === filename, 'offline, the viewed image page is not shown');

    const unsaved = await page.goto(BASE + '/image/999999999');
    check(unsaved.fromServiceWorker(), 'offline, /image/999999999 did not come from the service worker');
    const shown = await page.locator('body').getAttribute('data-page');
    check(shown === 'offline', `an unsaved page showed "${shown}", not the offline page`);
    check(await page.locator('h1').textContent() === 'You are offline', 'the offline page has no heading');
    await collectViolations();
    await shot('6-offline-page');
}

// 6. A private image: its owner sees it, nobody else; it is never saved;
// the owner deletes it from its page.
async function privateImage() {
    offline = false;
    await context.setOffline(false);
    const filename = `pwa-private-${Date.now()}.svg`;
    await page.goto(BASE + '/upload');
    await page.click('summary');
    await page.fill('textarea[name="svg"]', SVG);
    await page.fill('input[name="filename"]', filename);
    await page.uncheck('input[name="is_public"]');
    await Promise.all([page.waitForURL(/\/image\/\d+$/), page.click('#upload-form button[type="submit"]')]);
    const pagePath = new URL(page.url()).pathname;
    const id = pagePath.split('/').pop();
    result.private = { page: pagePath };
    check(await page.locator('h1').textContent() === filename, 'the private image\'s page does not show it');
    check(await imageRendered(), 'the private image did not render for its owner');
    check(await page.locator('#delete-image').count() === 1, 'the owner has no Delete button');
    await shot('7-private');
    const saved = await savedPaths();
    for (const p of [pagePath, `/svg/${id}.svg`]) check(!saved.includes(p), `the service worker saved ${p}`);
    for (const p of [pagePath, `/svg/${id}.svg`, `/api/svg/${id}`]) {
        for (const [who, name, password] of [['another user', OTHER_USERNAME, OTHER_PASSWORD], ['a visitor']]) {
            const { status } = await fetchAs(name, password, p);
            check(status === 404, `${who} got ${status} for the private ${p}`);
        }
    }
    // Someone else's image: no Delete button.
    const { body } = await fetchAs(OTHER_USERNAME, OTHER_PASSWORD, result.upload.page);
    check(!body.includes('id="delete-image"'), 'another user\'s image page has a Delete button');
    // Dismissed, the confirmation deletes nothing.
    page.once('dialog', (dialog) => dialog.dismiss());
    await page.click('#delete-image');
    check((await fetchAs(USERNAME, PASSWORD, pagePath)).status === 200, 'a dismissed Delete deleted');
    await deleteShownImage();
    result.private.after = (await fetchAs(USERNAME, PASSWORD, pagePath)).status;
    check(result.private.after === 404, `after its deletion, the private image answers ${result.private.after}`);
    await collectViolations();
}

// 7. Deleting the public upload deletes what the service worker saved of it.
async function deletePublic() {
    const pagePath = result.upload.page;
    const id = pagePath.split('/').pop();
    const mine = [pagePath, `/svg/${id}.svg`, `/api/svg/${id}`];
    await page.goto(BASE + pagePath);
    await imageRendered();
    const before = await savedPaths();
    check(before.includes(pagePath) && before.includes(`/svg/${id}.svg`), 'the public image was not saved');
    await deleteShownImage();
    const cards = await cardNames();
    check(!cards.includes(result.upload.filename), 'the deleted image is still in the gallery');
    const after = await savedPaths();
    for (const p of mine) check(!after.includes(p), `after the delete, ${p} is still saved`);
    await collectViolations();
}

// 8. Sign out: no saved page shows the user any more.
async function signOutForgets() {
    // An image page viewed signed in is saved, naming the user.
    await page.goto(BASE + '/');
    await page.click('.card a >> nth=0');
    await page.waitForURL(/\/image\/\d+$/);
    const viewed = new URL(page.url()).pathname;
    await page.click('#sign-out');
    // It reloads /: wait for the page without the button, across the navigation.
    await page.waitForSelector('#sign-out', { state: 'detached' });
    await page.waitForLoadState('load');
    const saved = await page.evaluate(async () => {
        const cache = await caches.open('gallery-shell-v1');
        const out = {};
        for (const request of await cache.keys()) {
            const p = new URL(request.url).pathname;
            if (p === '/' || p.startsWith('/image/')) out[p] = await (await cache.match(request)).text();
        }
        return out;
    });
    result.savedAfterSignOut = Object.keys(saved);
    for (const [p, html] of Object.entries(saved)) {
        check(!html.includes('class="who"'), `after sign-out, the saved ${p} still names the user`);
    }
    check(!(viewed in saved), `after sign-out, ${viewed} is still saved`);
    // A visitor gets no Delete button.
    await page.goto(BASE + viewed);
    check(await page.locator('#delete-image').count() === 0, `a visitor has a Delete button on ${viewed}`);
    await shot('8-signed-out');
}

const STEPS = [['gallery', gallery], ['service worker', serviceWorker], ['installable', installable],
    ['sign in and upload', signInAndUpload], ['offline', offlineUse], ['private image', privateImage],
    ['delete', deletePublic], ['sign out', signOutForgets]];

async function main() {
    if (!BASE || !USERNAME || !PASSWORD || !OTHER_USERNAME || !OTHER_PASSWORD) {
        fail('BASE_URL, USERNAME, PASSWORD, OTHER_USERNAME and OTHER_PASSWORD must be set');
        return finish(1);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });

    // A persistent profile: Chromium never finds an incognito context installable.
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pwa-profile-'));
    context = await chromium.launchPersistentContext(profile, {
        executablePath: EXECUTABLE,
        headless: true,
        timeout: 15000,
        viewport: { width: 1280, height: 900 },
        serviceWorkers: 'allow',
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    await context.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__cspViolations.push({
                directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
                source: e.sourceFile, line: e.lineNumber, sample: e.sample,
            });
        });
    });
    context.on('serviceworker', (worker) => worker.on('console', (msg) => watchConsole('sw', msg)));

    page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(10000);
    page.on('console', (msg) => watchConsole('page', msg));
    page.on('pageerror', (err) => result.pageErrors.push(String(err && err.stack || err)));
    page.on('response', (res) => {
        if (res.status() >= 400) result.badResponses.push(`${res.status()} ${res.url()}`);
    });
    page.on('requestfailed', (req) => {
        if (!offline) result.badResponses.push(`failed ${req.url()}: ${req.failure()?.errorText}`);
    });

    // In order; a failed step ends the run, since the next ones build on it.
    for (const [name, run] of STEPS) {
        const before = result.failures.length;
        await run();
        const ok = result.failures.length === before;
        result.steps.push({ step: name, ok });
        if (!ok) break;
    }
    none(result.consoleErrors, 'console error(s)');
    none(result.consoleWarnings, 'console warning(s)');
    none(result.badResponses, 'failed request(s)');
    none(result.pageErrors, 'page error(s)');
    none(result.cspViolations, 'CSP violation(s)');

    result.ok = result.failures.length === 0;
    clearTimeout(timer);
    return finish(result.ok ? 0 : 1);
}

main().catch((err) => {
    fail(String(err && err.message || err).split('\n')[0]);
    clearTimeout(timer);
    finish(1);
});
