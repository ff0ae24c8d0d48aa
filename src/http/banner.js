/* crisisd website banner: one accessible notice per active crisis.
 * Embed: <script src="https://crisis.example.com/banner.js" defer></script>
 * Optional data-lang="bn" on the tag overrides the page language; data-drills="true"
 * shows drills too (a staff page, a test site), which are hidden otherwise.
 * So the banner outlives the daemon, point it at the static mirror ([publish] dir,
 * served by nginx or a CDN) too: either load the script from the mirror and name
 * the daemon, <script src="https://static.example.com/crisis/banner.js"
 * data-api="https://crisis.example.com/" defer>, or load it from the daemon with
 * data-fallback="https://static.example.com/crisis/". The daemon is asked first;
 * when it does not answer in time, the mirror's copy is shown.
 * No dependencies, no globals; server data is only ever set as text. */
(function () {
  'use strict';

  // currentScript is only set while this file first runs: capture it now.
  var script = document.currentScript;
  if (!script || !script.src || !window.fetch) return;

  var HOME = new URL('.', script.src); // directory banner.js was served from
  var API = script.getAttribute('data-api');
  var BASE = API ? new URL(API, HOME) : HOME; // the daemon
  var FALLBACK = script.getAttribute('data-fallback');
  // The static mirror: named, or where the script came from when that is not the daemon.
  var MIRROR = FALLBACK ? new URL(FALLBACK, HOME) : (API ? HOME : null);
  var REFRESH_MS = 60000;
  var TIMEOUT_MS = 4000; // then the mirror's copy, which a CDN answers at once
  var STORE_KEY = 'crisisd-banner-dismissed';
  var ROOT_ID = 'crisisd-banner';
  var COLORS = { // background / text; all pairs above WCAG AA contrast
    critical: { bg: '#7f1d1d', fg: '#ffffff', border: '#450a0a' },
    major: { bg: '#f59e0b', fg: '#111111', border: '#92400e' },
    minor: { bg: '#475569', fg: '#ffffff', border: '#1e293b' }
  };

  var warned = false;
  var lastSignature = null;
  var memoryDismissed = []; // used when localStorage is unavailable

  function lang() {
    return script.getAttribute('data-lang') || document.documentElement.lang ||
      navigator.language || 'en';
  }

  function warnOnce(err) {
    if (warned) return;
    warned = true;
    if (window.console && console.warn) console.warn('crisisd banner unavailable:', err);
  }

  // Dismissals are per crisis *version*: an update shows the notice again.
  function dismissKey(crisis) { return crisis.id + '|' + crisis.updated_at; }

  function readDismissed() {
    try {
      var list = JSON.parse(window.localStorage.getItem(STORE_KEY) || '[]');
      return Array.isArray(list) ? list.concat(memoryDismissed) : memoryDismissed.slice();
    } catch (e) {
      return memoryDismissed.slice();
    }
  }

  function dismiss(crisis) {
    var key = dismissKey(crisis);
    memoryDismissed.push(key);
    try {
      var list = readDismissed().filter(function (k) { return k !== key; });
      list.push(key);
      window.localStorage.setItem(STORE_KEY, JSON.stringify(list.slice(-50)));
    } catch (e) { /* private mode or storage disabled: memory only */ }
  }

  function el(tag, styles, text) {
    var node = document.createElement(tag);
    if (styles) Object.assign(node.style, styles); // CSSOM: fine under strict CSP
    if (text != null) node.textContent = String(text);
    return node;
  }

  function availability(contact, labels) {
    if (contact.always_open) return labels.always_open;
    if (contact.available === false) return labels.unavailable;
    return contact.open_now ? labels.open_now : labels.closed_now;
  }

  // Short list: emergency lines first, then channels open now, then the rest; at most 4.
  function shortContacts(contacts) {
    function rank(c) {
      if (c.available === false) return 3;
      return c.emergency ? 0 : (c.open_now || c.always_open) ? 1 : 2;
    }
    return contacts
      .map(function (c, i) { return { c: c, i: i }; })
      .sort(function (a, b) { return rank(a.c) - rank(b.c) || a.i - b.i; })
      .slice(0, 4)
      .map(function (x) { return x.c; });
  }

  // An address never breaks inside ("+1 555 0100" stays on one line).
  function address(contact, color) {
    var styles = { fontWeight: 'bold', whiteSpace: 'nowrap' };
    if (!contact.url) return el('span', styles, contact.address);
    var link = el('a', Object.assign({ color: color.fg, textDecoration: 'underline' }, styles),
      contact.address);
    link.href = contact.url;
    return link;
  }

  function renderContact(contact, labels, color) {
    var li = el('li', { margin: '0.15em 0' });
    // The label says what the line is; emergency lines are bold and first.
    li.appendChild(el(contact.emergency ? 'strong' : 'span', null, contact.label + ': '));
    li.appendChild(address(contact, color));
    li.appendChild(el('span', null, ' (' + availability(contact, labels) + ')'));
    // Which need this channel is for: the point of the notice.
    if (contact.best_for) li.appendChild(el('span', null, ' – ' + contact.best_for));
    return li;
  }

  function squareButton(color, text, label) {
    var button = el('button', {
      flex: '0 0 auto', minWidth: '2.75em', minHeight: '2.75em', padding: '0 0.6em',
      font: 'inherit', lineHeight: '1.1', cursor: 'pointer',
      color: color.fg, background: 'transparent', border: '2px solid ' + color.fg, borderRadius: '4px'
    }, text);
    button.type = 'button';
    if (label) button.setAttribute('aria-label', label);
    return button;
  }

  // What opens on "Show details": summary, message, contacts, status page.
  function renderDetails(crisis, data, color) {
    var details = el('div', { margin: '0.35em 0 0' });
    details.id = ROOT_ID + '-details-' + crisis.id;
    if (crisis.summary) details.appendChild(el('p', { margin: '0 0 0.35em' }, crisis.summary));
    if (crisis.message) details.appendChild(el('p', { margin: '0 0 0.35em' }, crisis.message));
    var contacts = shortContacts(data.contacts || []);
    if (contacts.length) {
      details.appendChild(el('p', { margin: '0', fontWeight: 'bold' }, data.labels.contacts));
      var ul = el('ul', { margin: '0 0 0.35em', padding: '0 0 0 1.2em' });
      contacts.forEach(function (c) { ul.appendChild(renderContact(c, data.labels, color)); });
      details.appendChild(ul);
    }
    if (data.status_url) {
      var link = el('a', { color: color.fg, textDecoration: 'underline', fontWeight: 'bold' },
        data.labels.status_page);
      link.href = data.status_url;
      details.appendChild(el('p', { margin: '0' })).appendChild(link);
    }
    return details;
  }

  // One line or two when collapsed: the headline and the emergency line,
  // beside the details toggle and the dismiss button; the rest opens below.
  function renderCrisis(crisis, data, onDismiss) {
    var color = COLORS[crisis.severity] || COLORS.minor;
    var alert = crisis.role === 'alert';
    var box = el('section', {
      display: 'flex', flexWrap: 'nowrap', alignItems: 'flex-start', gap: '0.5em',
      boxSizing: 'border-box', width: '100%', margin: '0', padding: '0.5em 0.75em',
      background: color.bg, color: color.fg, borderBottom: '3px solid ' + color.border,
      font: '16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans Bengali", sans-serif',
      textAlign: 'start'
    });
    box.setAttribute('role', alert ? 'alert' : 'status');
    box.setAttribute('aria-live', alert ? 'assertive' : 'polite');
    box.setAttribute('aria-atomic', 'true');
    box.setAttribute('aria-label', crisis.title);
    box.setAttribute('data-crisis-id', crisis.id);

    var body = el('div', { flex: '1 1 auto', minWidth: '0', overflowWrap: 'anywhere' });
    var head = el('p', { margin: '0' });
    head.appendChild(el('strong', null, crisis.headline || crisis.title));
    var lines = (data.contacts || []).filter(function (c) { return c.emergency; });
    // An emergency line marked unavailable only when no other is left.
    var urgent = lines.filter(function (c) { return c.available !== false; })[0] || lines[0];
    if (urgent) {
      head.appendChild(document.createTextNode(' '));
      head.appendChild(el('span', { whiteSpace: 'nowrap' }, urgent.label + ': '))
        .appendChild(address(urgent, color));
    }
    body.appendChild(head);
    var details = renderDetails(crisis, data, color);
    body.appendChild(details);
    box.appendChild(body);

    var controls = el('div', { display: 'flex', gap: '0.4em', flex: '0 0 auto' });
    var toggle = squareButton(color, data.labels.show_details);
    toggle.style.fontSize = '0.8125em';
    toggle.style.maxWidth = '6.5em';
    toggle.setAttribute('aria-controls', details.id);
    function setOpen(open) {
      details.hidden = !open;
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      toggle.textContent = open ? data.labels.hide_details : data.labels.show_details;
    }
    // Phones start collapsed, so the page stays usable; wider screens open.
    setOpen(!(window.matchMedia && window.matchMedia('(max-width: 40em)').matches));
    toggle.addEventListener('click', function () { setOpen(details.hidden); });
    controls.appendChild(toggle);

    var dismissButton = squareButton(color, '\u00d7', data.labels.dismiss + ': ' + crisis.title);
    dismissButton.style.fontSize = '1.25em';
    dismissButton.setAttribute('data-crisisd-dismiss', '');
    dismissButton.addEventListener('click', function () { onDismiss(crisis, box); });
    controls.appendChild(dismissButton);
    box.appendChild(controls);
    return box;
  }

  // Where focus goes once the last notice is gone: the page's main content
  // (made focusable without entering the tab order), not <body>.
  function focusPage() {
    var target = document.querySelector('main, [role="main"], h1') || document.body;
    if (target !== document.body && !target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
    target.focus();
  }

  function signatureOf(data, crises) {
    return JSON.stringify([data.lang, crises, data.contacts, data.labels]);
  }

  function render(data) {
    var dismissed = readDismissed();
    var crises = (data.crises || []).filter(function (c) {
      return dismissed.indexOf(dismissKey(c)) === -1;
    });
    // Rebuild only on change, so live regions are not re-announced every minute.
    var signature = signatureOf(data, crises);
    if (signature === lastSignature) return;
    lastSignature = signature;

    var old = document.getElementById(ROOT_ID);
    if (old) old.parentNode.removeChild(old);
    if (!crises.length) return;

    var root = el('div', { margin: '0', padding: '0' });
    root.id = ROOT_ID;
    if (data.lang) root.lang = data.lang;
    crises.forEach(function (crisis) {
      root.appendChild(renderCrisis(crisis, data, function (c, box) {
        dismiss(c);
        crises = crises.filter(function (x) { return x !== c; });
        lastSignature = signatureOf(data, crises); // the next refresh keeps the rest as is
        var next = box.nextElementSibling || box.previousElementSibling;
        box.parentNode.removeChild(box);
        if (!root.children.length && root.parentNode) root.parentNode.removeChild(root);
        if (next) next.querySelector('[data-crisisd-dismiss]').focus();
        else focusPage();
      }));
    });
    // No animation or transition is used, so prefers-reduced-motion is respected as is.
    document.body.insertBefore(root, document.body.firstChild);
  }

  function fetchJson(url) {
    var abort = window.AbortController ? new AbortController() : null;
    var timer = abort && setTimeout(function () { abort.abort(); }, TIMEOUT_MS);
    var options = { credentials: 'omit', headers: { Accept: 'application/json' } };
    if (abort) options.signal = abort.signal;
    return fetch(url.toString(), options)
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status + ' from ' + url);
        return res.json();
      })
      .then(function (data) {
        if (!data || !Array.isArray(data.crises) || !data.labels) throw new Error('bad response from ' + url);
        return data;
      })
      .finally(function () { if (timer) clearTimeout(timer); });
  }

  function live() {
    var url = new URL('v1/banner', BASE);
    url.searchParams.set('lang', lang());
    // The reader's zone, so the hours read in their own time.
    try {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (zone) url.searchParams.set('tz', zone);
    } catch (e) { /* an old browser: the entries' own zones */ }
    if (script.getAttribute('data-drills') === 'true') url.searchParams.set('drills', 'true');
    return fetchJson(url);
  }

  // The mirror holds banner-<language>.json per shipped language and banner.json
  // in the default one; drills are never mirrored.
  function mirrored() {
    var primary = lang().toLowerCase().split('-')[0].replace(/[^a-z]/g, '');
    return fetchJson(new URL('banner-' + primary + '.json', MIRROR))
      .catch(function () { return fetchJson(new URL('banner.json', MIRROR)); });
  }

  function load() {
    live()
      .catch(function (err) {
        if (!MIRROR) throw err;
        return mirrored();
      })
      .then(render)
      .catch(warnOnce);
  }

  function start() {
    load();
    setInterval(load, REFRESH_MS);
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
