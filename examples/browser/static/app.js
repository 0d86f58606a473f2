// Calls the example API's /v1/whoami with the key from the form or from
// the page's fragment (#key=client-...), and shows the result. The outcome
// is also kept in window.keystileResult, for the end-to-end test:
//   {state: "ok" | "refused" | "blocked", status, code, environment, error}
"use strict";

const api = document.body.dataset.api;
const form = document.getElementById("form");
const keyInput = document.getElementById("key");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");
const environment = document.getElementById("environment");
const prefix = document.getElementById("prefix");

document.getElementById("origin").textContent = location.origin;
for (const el of document.querySelectorAll(".this-origin")) el.textContent = location.origin;

function show(outcome, text, body) {
  statusLine.dataset.state = outcome.state;
  statusLine.textContent = text;
  environment.textContent = outcome.environment || "-";
  prefix.textContent = (body && body.prefix) || "-";
  result.textContent = body ? JSON.stringify(body, null, 2) : "";
  window.keystileResult = outcome;
}

async function whoami(key) {
  window.keystileResult = null;
  statusLine.dataset.state = "pending";
  statusLine.textContent = "Calling " + api + "/v1/whoami ...";
  let res;
  try {
    // The X-API-Key header makes this a non-simple request: the browser
    // first asks the API (CORS preflight) whether this origin may send it.
    res = await fetch(api + "/v1/whoami", { headers: { "X-API-Key": key }, cache: "no-store" });
  } catch (err) {
    show({ state: "blocked", error: String(err) },
      "Blocked by the browser (" + err.message + "): the API did not allow this origin " +
      "(CORS preflight refused), or it is not running. The browser console says which.", null);
    return;
  }
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (res.ok) {
    show({ state: "ok", status: res.status, environment: body.environment },
      res.status + " OK: a " + body.type + " key of environment " + body.environment + ".", body);
    return;
  }
  const code = body && body.code;
  show({ state: "refused", status: res.status, code: code },
    "Refused by the API: " + res.status + " " + (code || "") +
    (body && (body.detail || body.title) ? " (" + (body.detail || body.title) + ")" : ""), body);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (key) whoami(key);
});

function fromFragment() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  if (key) {
    keyInput.value = key;
    whoami(key);
  }
}
window.addEventListener("hashchange", fromFragment);
fromFragment();
