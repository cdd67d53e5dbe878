// The tablet page that cannot start says so (index.html's #opening-notice), rather than leaving a blank screen with
// only "Taille du texte": a module that did not load (the connection dropped in the middle of an opening just after
// the server was updated, and the worker answered the network's error rather than a module of another version), a
// file cut short, an error thrown while the page starts in an old browser.
//
// A classic script, not a module, loaded before the modules (defer keeps the document order): it must run when no
// module does, and the page's policy forbids inline scripts. Written for old browsers too (no arrow, no let, no
// fetch): a page in an old browser is one it must speak for. It only makes the notice show at once and complete it;
// the notice does not depend on it: tablet.css shows it by itself when no screen has shown 10 s after it was drawn
// (a module stalled, or this script did not load either), and its "Réessayer" is a plain link.

(function () {
  "use strict";

  var STORE = "oncofollow.tablet."; // app.js's and comfort.js's prefix
  var TEXT_SIZES = 4; // comfort.js's steps
  var FAILED = "opening-failed"; // tablet.css: the notice at once, whatever shows under it
  var root = document.documentElement;

  function stored(name) {
    try {
      return JSON.parse(window.localStorage.getItem(STORE + name));
    } catch (error) {
      return null;
    }
  }

  /** Whether a screen shows (app.js sets body[data-screen] at its first one): the page has started. */
  function started() {
    return Boolean(document.body && document.body.getAttribute("data-screen"));
  }

  /** The team's number, as comfort.js shows it on the other screens: a link to call, and its sentence. */
  function showTeamPhone(notice, phone) {
    var links = notice.querySelectorAll(".team-phone");
    for (var i = 0; i < links.length; i += 1) {
      if (phone) {
        links[i].href = "tel:" + phone.replace(/[^0-9+]/g, "");
        links[i].textContent = "Appeler l'équipe soignante : ";
        var number = document.createElement("span");
        number.className = "team-phone-number"; // kept on one line: a number split in two is misread
        number.textContent = phone;
        links[i].appendChild(number);
      }
      links[i].parentNode.hidden = !phone;
    }
    var sentences = notice.querySelectorAll("[data-team-phone]");
    for (var j = 0; j < sentences.length; j += 1)
      sentences[j].hidden = (sentences[j].getAttribute("data-team-phone") === "shown") !== Boolean(phone);
  }

  /**
   * The notice as the patient left the page: the text size chosen (comfort.js may be what did not load) and the
   * team's number, the last one known at once, then the deployment's (config.json, through the worker: the
   * network's, or the kept copy's) when it can be read.
   */
  var completed = false;
  function complete() {
    var notice = document.getElementById("opening-notice");
    if (completed || !notice) return;
    completed = true;
    var size = stored("textSize");
    if (!root.getAttribute("data-text-size"))
      root.setAttribute("data-text-size", String(size >= 1 && size < TEXT_SIZES && size % 1 === 0 ? size : 0));
    var phone = stored("teamPhone");
    showTeamPhone(notice, typeof phone === "string" ? phone : null);
    var request = new XMLHttpRequest();
    request.open("GET", "config.json");
    request.onload = function () {
      if (request.status !== 200) return;
      try {
        var teamPhone = JSON.parse(request.responseText).team_phone;
        showTeamPhone(notice, typeof teamPhone === "string" && teamPhone ? teamPhone : null);
      } catch (error) {
        // unreadable: the number last known, or the sentence that points to the printed sheet
      }
    };
    request.send();
  }

  /**
   * What shows under the notice (a screen app.js drew before another module failed) out of reach: the notice covers
   * it for the eye, and a screen reader or the keyboard must not wander into a page that is not whole either.
   * Only on a failure: a late notice (tablet.css's delay) goes when the page starts, and must leave it usable.
   */
  function setAside(notice) {
    var children = document.body.children;
    for (var i = 0; i < children.length; i += 1) {
      if (children[i] === notice || children[i].tagName === "SCRIPT") continue;
      children[i].setAttribute("aria-hidden", "true");
      children[i].inert = true; // ignored where unknown: aria-hidden still keeps it from screen readers
    }
  }

  function failed() {
    complete();
    var notice = document.getElementById("opening-notice");
    if (notice) setAside(notice);
  }

  function fail() {
    root.classList.add(FAILED);
    if (document.body) failed();
    else document.addEventListener("DOMContentLoaded", failed);
  }

  // A script of the page that did not load (one of the modules a module imports, too: its importer's load fails).
  // The page imports every module when it loads, never later (tests/unit/questionnaire/test_tablet_worker.py), so
  // this is always the opening's failure. Element errors do not bubble: caught on their way down.
  window.addEventListener(
    "error",
    function (event) {
      var target = event.target;
      if (target && target.tagName === "SCRIPT") fail();
      // An error thrown while the page starts (a module's own code, a file cut short that no longer parses): only
      // before its first screen, since afterwards the page has started and says its own errors.
      else if (target === window && !started()) fail();
    },
    true,
  );
  window.addEventListener("unhandledrejection", function () {
    if (!started()) fail(); // app.js's start goes on asynchronously (begin)
  });

  // Shown by tablet.css after the delay (a stalled opening): completed then.
  document.addEventListener("animationstart", function (event) {
    if (event.animationName === "opening-notice-late") complete();
  });

  // Every file of this opening loaded, or failed: said to the worker that answered it, which keeps the opening under
  // way until then so that no new worker takes over in the middle of it (sw.js, pageLoaded). Here rather than in a
  // module: a page whose module did not load says it too.
  window.addEventListener("load", function () {
    var worker = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (worker) worker.postMessage("page loaded");
  });

  document.addEventListener("click", function (event) {
    var retry = event.target && event.target.closest ? event.target.closest("#opening-retry") : null;
    if (!retry) return;
    // Opened again at its own address, fragment included: the enrolment's #enrol=… (or #device_token=…) that a page
    // which never started has not yet taken in is tried again, where the plain link would drop it.
    event.preventDefault();
    window.location.reload();
  });
})();
