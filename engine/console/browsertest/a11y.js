// Accessibility checks run in the page by browsertest. The file is one
// function expression; Go calls it with a mode:
//   "check"      the problems of the page, as sentences naming the element
//   "focusables" what Tab should reach, in order, as descriptions
//   "start"      move the sequential focus start to the top of the page and
//                begin watching for elements being replaced
//   "focused"    where the focus is: its index among the focusables, its
//                description, whether it shows a focus indicator, and whether
//                elements were replaced since "start"
(function (mode) {
  "use strict";

  // describe names an element so that a person can find it in the page.
  function describe(el) {
    var s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (typeof el.className === "string" && el.className.trim()) s += "." + el.className.trim().split(/\s+/).join(".");
    ["name", "type", "href", "action", "for"].forEach(function (a) {
      if (el.hasAttribute(a) && !(a === "type" && el.tagName !== "INPUT")) s += "[" + a + '="' + el.getAttribute(a) + '"]';
    });
    var form = el.closest("form");
    if (form && el !== form && form.getAttribute("action")) s += ' in form[action="' + form.getAttribute("action") + '"]';
    var text = (el.innerText || el.value || "").replace(/\s+/g, " ").trim();
    if (text) s += ' "' + (text.length > 40 ? text.slice(0, 40) + "…" : text) + '"';
    return s;
  }

  function rendered(el) {
    if (el.getClientRects().length === 0) return false;
    var cs = getComputedStyle(el);
    return cs.visibility === "visible" && cs.display !== "none";
  }

  // parseColor reads a computed colour: rgb(), rgba() or color(srgb ...).
  function parseColor(s) {
    var m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/.exec(s);
    if (!m) {
      m = /^color\(srgb\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)(?:\s*\/\s*([\d.]+%?))?\s*\)$/.exec(s);
      if (!m) return null;
      m = [m[0], m[1] * 255, m[2] * 255, m[3] * 255, m[4]];
    }
    var a = m[4] === undefined ? 1 : m[4].endsWith("%") ? parseFloat(m[4]) / 100 : parseFloat(m[4]);
    return [+m[1], +m[2], +m[3], a];
  }

  // over puts colour top over an opaque colour bottom.
  function over(top, bottom) {
    var a = top[3];
    return [0, 1, 2].map(function (i) { return top[i] * a + bottom[i] * (1 - a); }).concat(1);
  }

  // background is what shows behind el: the backgrounds from el up to the
  // first opaque one, the translucent ones laid over it; white if none.
  function background(el) {
    var layers = [];
    for (var e = el; e; e = e.parentElement) {
      var c = parseColor(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) {
        layers.push(c);
        if (c[3] >= 1) break;
      }
    }
    var bg = [255, 255, 255, 1];
    for (var i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  }

  function luminance(c) {
    var v = c.slice(0, 3).map(function (x) {
      x /= 255;
      return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }

  function contrast(a, b) {
    var la = luminance(a), lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function rgb(c) { return "rgb(" + c.slice(0, 3).map(Math.round).join(", ") + ")"; }

  // ownText says el shows text of its own, not only its children's.
  function ownText(el) {
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) return el.type !== "hidden";
    for (var n = el.firstChild; n; n = n.nextSibling) {
      if (n.nodeType === Node.TEXT_NODE && n.textContent.trim()) return true;
    }
    return false;
  }

  function checkContrast(problems) {
    document.querySelectorAll("body *").forEach(function (el) {
      if (/^(SCRIPT|STYLE|OPTION|TITLE|NOSCRIPT)$/.test(el.tagName) || !ownText(el) || !rendered(el)) return;
      var cs = getComputedStyle(el);
      var fg = parseColor(cs.color);
      if (!fg) {
        problems.push("contrast: cannot read the colour " + cs.color + " of " + describe(el));
        return;
      }
      var bg = background(el);
      var ratio = contrast(over(fg, bg), bg);
      var size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
      var large = size >= 24 || (size >= 18.66 && bold);
      var want = large ? 3 : 4.5;
      if (ratio < want) {
        problems.push("contrast " + ratio.toFixed(2) + ":1, want at least " + want + ":1 for " + (large ? "large" : "normal") +
          " text: " + describe(el) + " (" + rgb(fg) + " on " + rgb(bg) + ")");
      }
    });
  }

  function named(el) {
    var n = (el.getAttribute("aria-label") || "").trim();
    if (n) return true;
    var by = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    if (by.some(function (id) { var l = document.getElementById(id); return l && l.textContent.trim(); })) return true;
    return false;
  }

  function checkLabels(problems) {
    document.querySelectorAll("input, select, textarea").forEach(function (el) {
      if (/^(hidden|submit|button|reset|image)$/.test(el.type)) return;
      var labelled = Array.prototype.some.call(el.labels || [], function (l) { return l.textContent.trim() !== ""; });
      if (!labelled && !named(el)) problems.push("label: no label[for], wrapping label or aria-label for " + describe(el));
    });
    document.querySelectorAll("a[href], button").forEach(function (el) {
      if (!el.textContent.trim() && !named(el) && !el.querySelector("img[alt]:not([alt=''])")) {
        problems.push("name: no text or aria-label for " + describe(el));
      }
    });
    document.querySelectorAll("img").forEach(function (el) {
      if (!el.hasAttribute("alt")) problems.push("alt: no alt attribute on " + describe(el));
    });
    if (!document.documentElement.getAttribute("lang")) problems.push("lang: the html element has no lang");
    document.querySelectorAll("[tabindex]").forEach(function (el) {
      if (el.tabIndex > 0) problems.push("tabindex: a positive tabindex changes the Tab order: " + describe(el));
    });
  }

  // scroller says el scrolls and holds nothing focusable: Chrome makes such
  // a box a Tab stop of its own.
  function scroller(el) {
    var cs = getComputedStyle(el);
    var scrolls = (/auto|scroll/.test(cs.overflowX) && el.scrollWidth > el.clientWidth) ||
      (/auto|scroll/.test(cs.overflowY) && el.scrollHeight > el.clientHeight);
    return scrolls && !el.querySelector("a[href], button, input, select, textarea, summary, [tabindex]");
  }

  function focusables() {
    return Array.prototype.filter.call(document.querySelectorAll("body *"), function (el) {
      var focusable = el.matches("a[href], button, input, select, textarea, [tabindex]") ||
        (el.tagName === "SUMMARY" && el.parentElement.tagName === "DETAILS" && el.parentElement.firstElementChild === el) ||
        scroller(el);
      if (!focusable || el.disabled || el.type === "hidden" || el.tabIndex < 0 || !rendered(el)) return false;
      for (var d = el.parentElement.closest("details"); d; d = d.parentElement.closest("details")) {
        if (!d.open && !(el.tagName === "SUMMARY" && el.parentElement === d)) return false;
      }
      return true;
    });
  }

  function indicator(el) {
    var cs = getComputedStyle(el);
    if (cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0) {
      return "outline " + cs.outlineWidth + " " + cs.outlineStyle + " " + cs.outlineColor;
    }
    if (cs.boxShadow && cs.boxShadow !== "none") return "box-shadow " + cs.boxShadow;
    return "";
  }

  switch (mode) {
    case "check":
      var problems = [];
      checkLabels(problems);
      checkContrast(problems);
      return problems;
    case "focusables":
      return focusables().map(describe);
    case "start":
      if (window.__a11yObserver) window.__a11yObserver.disconnect();
      window.__a11yReplaced = false;
      window.__a11yObserver = new MutationObserver(function (records) {
        records.forEach(function (r) {
          r.removedNodes.forEach(function (n) { if (n.nodeType === Node.ELEMENT_NODE) window.__a11yReplaced = true; });
        });
      });
      window.__a11yObserver.observe(document.body, { childList: true, subtree: true });
      var active = document.activeElement;
      if (active && active !== document.body) active.blur();
      document.body.setAttribute("tabindex", "-1");
      document.body.focus({ preventScroll: true });
      document.body.removeAttribute("tabindex");
      return true;
    case "focused":
      var el = document.activeElement;
      var at = focusables().indexOf(el);
      return {
        index: at,
        element: el && el !== document.body ? describe(el) : "nothing (the page itself)",
        indicator: el ? indicator(el) : "",
        replaced: !!window.__a11yReplaced
      };
  }
  throw new Error("a11y.js: unknown mode " + mode);
})
