// The gallery's service worker (served at /sw.js, so its scope is the whole
// site). Static files come from the cache, the gallery's data and pages from
// the network with the cache as fallback, and a page never saved shows
// /offline. Bump VERSION when this strategy changes: activation drops every
// other version's caches.
'use strict';

const VERSION = 'v1';
const SHELL = `gallery-shell-${VERSION}`; // pages, static files, manifest, icons
const DATA = `gallery-data-${VERSION}`; // API answers and images
const CURRENT = new Set([SHELL, DATA]);
const DATA_ENTRIES = 300; // the oldest go first beyond this

const PRECACHE = ['/', '/offline', '/static/manifest.webmanifest', '/static/icon-192.png',
    '/static/icon-512.png', '/static/icon-maskable-512.png'];
// Public data only: never /api/me, /api/login... (a private image's answers
// match, but are no-store: keep() leaves them).
const DATA_PATHS = /^\/(api\/svg\/list|api\/svg\/\d+|svg\/\d+\.svg)$/;
// Pages kept for offline use: the gallery and the image pages. Forms need the network.
const SAVED_PAGES = /^\/(image\/\d+)?$/;

self.addEventListener('install', (event) => {
    event.waitUntil((async () => {
        const cache = await caches.open(SHELL);
        await cache.addAll(PRECACHE);
        // The CSS, JS and icons the pages link, with their ?v= versions, exactly
        // as linked: only the server knows those versions.
        const html = await (await cache.match('/offline')).text();
        const linked = [...html.matchAll(/(?:href|src)="(\/static\/[^"]+)"/g)]
            .map((m) => m[1].replace(/&amp;/g, '&'));
        await cache.addAll([...new Set(linked)]);
        await self.skipWaiting();
    })());
});

self.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
        for (const name of await caches.keys()) {
            if (name.startsWith('gallery-') && !CURRENT.has(name)) await caches.delete(name);
        }
        await self.clients.claim();
    })());
});

self.addEventListener('fetch', (event) => {
    const { request } = event;
    const url = new URL(request.url);
    if (request.method !== 'GET' || url.origin !== self.location.origin) return;
    if (request.mode === 'navigate') {
        event.respondWith(navigate(event, url));
    } else if (url.pathname.startsWith('/static/')) {
        // Unversioned: the manifest and its icons, which may change in place.
        event.respondWith(url.searchParams.has('v') ? cacheFirst(event) : networkFirst(event, SHELL));
    } else if (DATA_PATHS.test(url.pathname)) {
        event.respondWith(networkFirst(event, DATA, trimData));
    }
});

// Stores a copy of a complete (200, not 206) answer without delaying it;
// never one marked no-store (a private image: it would outlive sign-out).
function keep(event, cacheName, key, response, tidy) {
    if (response.status !== 200 || /\bno-store\b/i.test(response.headers.get('Cache-Control') || '')) return;
    const copy = response.clone();
    event.waitUntil((async () => {
        const cache = await caches.open(cacheName);
        await cache.put(key, copy);
        if (tidy) await tidy(cache);
    })());
}

// A page's HTML does not depend on its query (the gallery reads ?page= in
// JavaScript), so one entry per path.
async function navigate(event, url) {
    try {
        const response = await fetch(event.request);
        if (SAVED_PAGES.test(url.pathname)) keep(event, SHELL, url.pathname, response);
        return response;
    } catch {
        const cache = await caches.open(SHELL);
        return (await cache.match(url.pathname)) || (await cache.match('/offline')) || Response.error();
    }
}

// A versioned URL (?v=) always names the same content: the cache answers for
// good, and a new version replaces the file's older versioned entries.
async function cacheFirst(event) {
    const { request } = event;
    const cached = await caches.match(request);
    if (cached) return cached;
    const response = await fetch(request);
    keep(event, SHELL, request, response, async (cache) => {
        for (const old of await cache.keys(request, { ignoreSearch: true })) {
            if (old.url !== request.url && new URL(old.url).searchParams.has('v')) await cache.delete(old);
        }
    });
    return response;
}

async function networkFirst(event, cacheName, tidy) {
    const { request } = event;
    try {
        const response = await fetch(request);
        keep(event, cacheName, request, response, tidy);
        return response;
    } catch (err) {
        const cached = await caches.match(request, { cacheName });
        if (cached) return cached;
        throw err;
    }
}

async function trimData(cache) {
    const keys = await cache.keys();
    for (const old of keys.slice(0, Math.max(0, keys.length - DATA_ENTRIES))) await cache.delete(old);
}
