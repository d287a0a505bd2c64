// The console's little script: live updates over Server-Sent Events,
// forms sent without a reload, and canned responses expanded with Tab.
// Every page also works without it.
(function () {
  'use strict';

  var fetchHeaders = { 'X-Console-Fetch': '1' };

  // refresh re-fetches one live fragment and swaps it in.
  function refresh(el) {
    fetch(el.getAttribute('data-live'), { headers: fetchHeaders, credentials: 'same-origin' })
      .then(function (r) {
        if (r.status === 401) { location.href = '/login'; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null) { el.innerHTML = html; } })
      .catch(function () { /* the next event or tick tries again */ });
  }

  var pending = new Map();
  function later(el) {
    clearTimeout(pending.get(el));
    pending.set(el, setTimeout(function () { refresh(el); }, 150));
  }

  function lives() { return Array.prototype.slice.call(document.querySelectorAll('[data-live]')); }

  function listen() {
    // Every signed-in page holds the stream: it is what tells the desk the
    // agent is online.
    if (!document.querySelector('[data-testid=logout]') || !window.EventSource) { return; }
    var es = new EventSource('/events');
    function onEvent(ev) {
      var d = {};
      try { d = JSON.parse(ev.data); } catch (e) { /* no data */ }
      lives().forEach(function (el) {
        var c = el.getAttribute('data-conversation');
        if (!c || ev.type === 'agents' || String(d.conversation) === c) { later(el); }
      });
    }
    ['conversation', 'message', 'note', 'agents', 'change'].forEach(function (k) { es.addEventListener(k, onEvent); });
    es.addEventListener('signedout', function () { es.close(); location.href = '/login'; });
    // Waiting times and SLA countdowns move on with the clock.
    lives().forEach(function (el) {
      var s = parseInt(el.getAttribute('data-refresh'), 10);
      if (s > 0) { setInterval(function () { refresh(el); }, s * 1000); }
    });
  }

  function showError(form, text) {
    var p = form.querySelector('.form-error');
    if (!p) {
      p = document.createElement('p');
      p.className = 'form-error';
      p.setAttribute('role', 'alert');
      form.appendChild(p);
    }
    p.textContent = text;
    p.hidden = !text;
  }

  // Forms marked data-ajax are sent with fetch; the server answers 204.
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.hasAttribute('data-ajax')) { return; }
    ev.preventDefault();
    var data = new FormData(form, ev.submitter || undefined);
    var body = form.enctype === 'multipart/form-data' ? data : new URLSearchParams(data);
    var buttons = form.querySelectorAll('button');
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, { method: 'POST', body: body, headers: fetchHeaders, credentials: 'same-origin' })
      .then(function (r) {
        if (r.status === 401) { location.href = '/login'; return; }
        if (r.ok) {
          form.querySelectorAll('textarea, input[type=file], input:not([type])').forEach(function (i) { i.value = ''; });
          showError(form, '');
          lives().forEach(refresh);
          return;
        }
        return r.text().then(function (t) { showError(form, t.trim() || ('Failed: ' + r.status)); });
      })
      .catch(function (e) { showError(form, 'Not sent: ' + e); })
      .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  });

  // Tab after "/code" in a reply puts the canned response in its place.
  document.addEventListener('keydown', function (ev) {
    var ta = ev.target;
    if (ev.key !== 'Tab' || !ta.hasAttribute || !ta.hasAttribute('data-canned')) { return; }
    var upto = ta.value.slice(0, ta.selectionStart);
    var m = /(^|\s)\/([A-Za-z0-9_-]+)$/.exec(upto);
    if (!m) { return; }
    var hint = Array.prototype.find.call(document.querySelectorAll('.canned-hints [data-code]'),
      function (li) { return li.getAttribute('data-code') === m[2]; });
    if (!hint) { return; }
    ev.preventDefault();
    var start = upto.length - m[2].length - 1;
    ta.value = ta.value.slice(0, start) + hint.getAttribute('data-text') + ta.value.slice(ta.selectionStart);
    ta.selectionStart = ta.selectionEnd = start + hint.getAttribute('data-text').length;
  });

  // A click on a hint inserts its code.
  document.addEventListener('click', function (ev) {
    var li = ev.target.closest && ev.target.closest('.canned-hints [data-code]');
    if (!li) { return; }
    var ta = document.querySelector('textarea[data-canned]');
    if (!ta) { return; }
    ta.value += (ta.value && !/\s$/.test(ta.value) ? ' ' : '') + li.getAttribute('data-text');
    ta.focus();
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', listen);
  } else {
    listen();
  }
})();
