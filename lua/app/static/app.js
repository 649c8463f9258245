// The gallery's pages, dispatched on <body data-page>: lists the images from
// the JSON API, posts the sign-in and upload forms as JSON, deletes an image,
// signs out. The session is the HttpOnly cookie; nothing is kept in
// localStorage.
'use strict';

(() => {
    const PER_PAGE = 12;

    function el(tag, props, ...children) {
        const node = Object.assign(document.createElement(tag), props);
        node.append(...children);
        return node;
    }

    // Sends JSON (a POST, unless method says otherwise), returns the decoded
    // answer; throws the server's message.
    async function sendJson(url, body, headers = {}, method = 'POST') {
        const res = await fetch(url, {
            method,
            headers: { 'Content-Type': 'application/json', ...headers },
            body: JSON.stringify(body),
        });
        const data = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(data.message || data.error || `The server answered ${res.status}.`);
        return data;
    }

    // The session's CSRF token: only our pages can read it, other sites cannot.
    async function csrfHeader() {
        const res = await fetch('/api/me');
        if (res.status === 401) throw new Error('Your session has ended: sign in again.');
        // Anything else (a 503 while the database is down) is the server's to tell.
        const data = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(data.message || `The server answered ${res.status}.`);
        return { 'X-CSRF-Token': data.csrf_token };
    }

    // Runs a form's action with its button disabled; shows what went wrong.
    function onSubmit(form, action) {
        const error = form.querySelector('.error');
        const button = form.querySelector('button[type="submit"]');
        form.addEventListener('submit', async (event) => {
            event.preventDefault();
            error.hidden = true;
            button.disabled = true;
            try {
                await action(form.elements);
            } catch (err) {
                error.textContent = err.message;
                error.hidden = false;
                button.disabled = false;
            }
        });
    }

    function card(item) {
        const img = el('img', {
            src: `/svg/${item.id}.svg`, alt: item.description || item.filename,
            width: 200, height: 200, decoding: 'async',
        });
        const views = `${item.view_count} view${item.view_count === 1 ? '' : 's'}`;
        const info = `${views} · ${item.created_at.slice(0, 10)}`;
        return el('li', { className: 'card' }, el('a', { href: `/image/${item.id}` },
            img, el('span', { className: 'name' }, item.filename), el('span', { className: 'info' }, info)));
    }

    async function gallery() {
        const status = document.getElementById('status');
        const page = Math.max(1, Number.parseInt(new URLSearchParams(location.search).get('page'), 10) || 1);
        let list;
        let refused = false; // a 400: a page number the server does not serve; retrying cannot help
        try {
            const res = await fetch(`/api/svg/list?page=${page}&per_page=${PER_PAGE}`);
            list = await res.json();
            refused = res.status === 400;
            if (!res.ok) throw new Error(list.message);
        } catch {
            if (refused) {
                status.textContent = `There is no page ${page} of the gallery.`;
            } else {
                status.textContent = navigator.onLine
                    ? 'The images could not be loaded. Try again in a moment.'
                    : 'You are offline, and this page of the gallery is not saved on this device.';
            }
            return;
        }
        // Past the last page the server sends "items": {}, an empty Lua table.
        const items = Array.isArray(list.items) ? list.items : [];
        document.getElementById('cards').replaceChildren(...items.map(card));
        status.textContent = items.length ? `${list.total_items} images` : 'No images on this page.';
        const newer = document.getElementById('newer');
        const older = document.getElementById('older');
        newer.href = page > 2 ? `/?page=${page - 1}` : '/';
        newer.hidden = page === 1;
        older.href = `/?page=${page + 1}`;
        older.hidden = page >= list.total_pages;
        document.getElementById('where').textContent = `Page ${page} of ${Math.max(1, list.total_pages)}`;
        document.getElementById('pager').hidden = false;
    }

    // Where to go after signing in: ?next= when it stays on this site. Its
    // path, once dot-segments resolve ('/.//evil.example'), must not start
    // with '//': assigned, that names another host.
    function nextUrl() {
        const next = new URL(new URLSearchParams(location.search).get('next') || '/', location.origin);
        const onSite = next.origin === location.origin && !next.pathname.startsWith('//');
        return onSite ? next.pathname + next.search : '/';
    }

    function signin() {
        onSubmit(document.getElementById('signin-form'), async (fields) => {
            await sendJson('/api/login', {
                username: fields.username.value,
                password: fields.password.value,
            });
            location.assign(nextUrl());
        });
    }

    function upload() {
        const form = document.getElementById('upload-form');
        const { file, filename } = form.elements;
        file.addEventListener('change', () => {
            if (file.files.length && !filename.value) filename.value = file.files[0].name;
        });
        onSubmit(form, async (fields) => {
            const svg = file.files.length ? await file.files[0].text() : fields.svg.value;
            if (!svg.trim()) throw new Error('Choose an SVG file or paste its markup.');
            const { id } = await sendJson('/api/svg', {
                filename: fields.filename.value,
                svg,
                description: fields.description.value || undefined,
                is_public: fields.is_public.checked,
            }, await csrfHeader());
            // Its own page: a private image is in no list.
            location.assign(`/image/${id}`);
        });
    }

    // Deletes what the service worker saved (sw.js) under the paths that
    // match: the pages that show who was signed in, on sign-out, so that the
    // next person on a shared device does not see them offline (SAVED_PAGES);
    // a deleted image's page and data.
    async function forgetSaved(paths) {
        if (!('caches' in window)) return;
        for (const name of await caches.keys()) {
            if (!name.startsWith('gallery-')) continue;
            const cache = await caches.open(name);
            for (const request of await cache.keys()) {
                if (paths.test(new URL(request.url).pathname)) await cache.delete(request);
            }
        }
    }

    // The Delete button of an image's page, there for its owner and the
    // administrators only.
    function image() {
        const button = document.getElementById('delete-image');
        if (!button) return;
        const error = document.getElementById('delete-error');
        const { id } = button.dataset;
        button.addEventListener('click', async () => {
            if (!confirm('Delete this image for good?')) return;
            error.hidden = true;
            button.disabled = true;
            try {
                await sendJson(`/api/svg/${id}`, {}, await csrfHeader(), 'DELETE');
            } catch (err) {
                error.textContent = err.message;
                error.hidden = false;
                button.disabled = false;
                return;
            }
            await forgetSaved(new RegExp(`^/(image/${id}|api/svg/${id}|svg/${id}\\.svg)$`));
            location.assign('/');
        });
    }

    const signOut = document.getElementById('sign-out');
    if (signOut) {
        signOut.addEventListener('click', async () => {
            signOut.disabled = true;
            try {
                await sendJson('/api/logout', {}, await csrfHeader());
            } catch {
                // Already signed out (or offline): the reload shows which.
            }
            await forgetSaved(/^\/(image\/\d+)?$/);
            location.assign('/');
        });
    }

    function offline() {
        document.getElementById('retry').addEventListener('click', () => location.reload());
    }

    const run = { gallery, image, signin, upload, offline }[document.body.dataset.page];
    if (run) run();
})();
