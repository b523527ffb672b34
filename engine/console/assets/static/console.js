// Live updates for the finderbot console. Every page works without this
// script; it only keeps the open page current while events arrive.
(function () {
  "use strict";

  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var rows = document.getElementById("event-rows");
  var fragment = main && main.getAttribute("data-fragment");
  var maxRows = 500;
  var pending = null;
  var ticking = null;

  // Countdowns to a QR code's expiry; the time itself is printed beside them.
  function tick() {
    var left = document.querySelectorAll(".countdown[data-until]");
    left.forEach(function (el) {
      var s = Math.round((Date.parse(el.getAttribute("data-until")) - Date.now()) / 1000);
      el.textContent = s > 0 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") : el.getAttribute("data-expired");
    });
    if (left.length === 0 && ticking !== null) {
      clearInterval(ticking);
      ticking = null;
    } else if (left.length > 0 && ticking === null) {
      ticking = setInterval(tick, 1000);
    }
  }

  // A person typing in the live part keeps it: replacing it would lose the input.
  function busy() {
    var el = document.activeElement;
    return el && live.contains(el) && (el.value || "") !== "";
  }

  // Re-fetch the live part at most twice a second however many events come.
  function refresh() {
    pending = null;
    if (busy()) {
      schedule();
      return;
    }
    fetch(fragment, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (!res.ok) throw new Error(res.status);
        return res.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        tick();
      })
      .catch(function () {});
  }

  function schedule() {
    if (pending === null) pending = setTimeout(refresh, 500);
  }

  function append(ev) {
    var empty = document.getElementById("events-empty");
    if (empty) empty.remove();
    var tr = document.createElement("tr");
    var time = document.createElement("time");
    time.setAttribute("datetime", ev.time);
    time.textContent = ev.clock;
    [time, ev.kind, ev.account, ev.message].forEach(function (v, i) {
      var td = document.createElement("td");
      if (i === 0) td.appendChild(v);
      else td.textContent = v;
      if (i === 3) td.className = "text";
      tr.appendChild(td);
    });
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > maxRows) rows.lastChild.remove();
  }

  tick();
  if (!window.EventSource || !((fragment && live) || rows)) return;
  var source = new EventSource("/events/stream");
  // An event published after the page was rendered but before the stream
  // subscribed is never sent: once the stream is open (again), the live
  // part is fetched anew.
  source.onopen = function () {
    if (fragment && live) schedule();
  };
  source.onmessage = function (msg) {
    if (rows) append(JSON.parse(msg.data));
    if (fragment && live) schedule();
  };
})();
