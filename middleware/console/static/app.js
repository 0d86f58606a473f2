// keystile console. Talks to its own server only: GET session, and the
// management API under api/. Every value from the server is written as
// text (textContent, value), never as HTML.
"use strict";

(() => {
  // maxPages bounds how many pages of keys are read before the page asks
  // the user to load more.
  const maxPages = 20;

  const state = {
    session: null,
    actions: new Set(), // what the actor's role allows
    environments: [],
    environment: "",
    keys: [],
    next: "", // cursor of the next page of keys, if any
  };

  const $ = (id) => document.getElementById(id);
  const can = (action) => state.actions.has(action);

  // el creates an element: props sets properties (className, textContent,
  // ...), "data-*" and "aria-*" keys set attributes; children are nodes or
  // strings (as text).
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) {
      if (c !== undefined && c !== null) node.append(c);
    }
    return node;
  }

  class APIError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `request failed (HTTP ${status})`);
      this.status = status;
      this.code = problem && problem.code;
    }
  }

  // api calls the console's server: path is relative to the page.
  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) throw new APIError(res.status, data);
    return data;
  }

  const envPath = (env) => `api/environments/${encodeURIComponent(env)}`;
  const keyPath = (view) => `api/keys/${encodeURIComponent(view.prefix)}`;

  function notify(text) {
    $("error").textContent = "";
    $("notice").textContent = text;
  }

  function fail(err) {
    $("notice").textContent = "";
    $("error").textContent = err.message || String(err);
  }

  // ----- formatting

  function pad(n) { return String(n).padStart(2, "0"); }

  function formatTime(iso) {
    const d = new Date(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }

  function relative(iso) {
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const a = Math.abs(s);
    let text;
    if (a < 90) text = `${a} s`;
    else if (a < 90 * 60) text = `${Math.round(a / 60)} min`;
    else if (a < 48 * 3600) text = `${Math.round(a / 3600)} h`;
    else text = `${Math.round(a / 86400)} days`;
    return s >= 0 ? `in ${text}` : `${text} ago`;
  }

  // timeCell shows a time, or none if the time is not set.
  function timeCell(iso, none, withRelative) {
    if (!iso) return el("td", { className: "muted", textContent: none });
    const t = el("time", { dateTime: iso, title: iso, textContent: formatTime(iso) });
    const td = el("td", {}, t);
    if (withRelative) td.append(el("span", { className: "relative", textContent: relative(iso) }));
    return td;
  }

  // ----- session and environments

  async function loadSession() {
    const s = await api("GET", "session");
    state.session = s;
    state.actions = new Set(s.actions || []);
    const who = $("session");
    who.textContent = "";
    who.append("Signed in as ", el("strong", { textContent: s.actor.id }), ` (${s.actor.role})`);
    if (s.actor.account) who.append(`, account ${s.actor.account}`);
  }

  async function loadEnvironments() {
    const data = await api("GET", "api/environments");
    state.environments = data.environments || [];
    const select = $("environment");
    select.textContent = "";
    for (const e of state.environments) {
      select.append(el("option", { value: e.environment, textContent: e.environment }));
    }
    const wanted = new URLSearchParams(location.hash.slice(1)).get("env");
    const names = state.environments.map((e) => e.environment);
    state.environment = names.includes(wanted) ? wanted : (names.includes("production") ? "production" : names[0] || "");
    select.value = state.environment;
    select.disabled = names.length === 0;
  }

  function settings() {
    return state.environments.find((e) => e.environment === state.environment) || { allowed_origins: [] };
  }

  async function reloadSettings() {
    const s = await api("GET", `${envPath(state.environment)}/origins`);
    const i = state.environments.findIndex((e) => e.environment === s.environment);
    if (i >= 0) state.environments[i] = s;
    renderOrigins();
  }

  // ----- keys

  // loadKeys reads the environment's keys, following the "next" cursor of
  // a paged listing if the server sends one.
  async function loadKeys(more) {
    if (!more) {
      state.keys = [];
      state.next = "";
    }
    let pages = 0;
    do {
      const q = state.next ? `?after=${encodeURIComponent(state.next)}` : "";
      const data = await api("GET", `${envPath(state.environment)}/keys${q}`);
      state.keys = state.keys.concat(data.keys || []);
      state.next = data.next || "";
      pages++;
    } while (state.next && pages < maxPages);
    renderKeys();
  }

  // columns are the table's columns; optional ones appear only when some key
  // has a value for them (owner and metadata come with accounts).
  function columns() {
    const has = (f) => state.keys.some((k) => {
      const v = k[f];
      return v !== undefined && v !== null && v !== "" && !(typeof v === "object" && Object.keys(v).length === 0);
    });
    const cols = [
      { id: "prefix", title: "Key", cell: prefixCell },
      { id: "name", title: "Name", cell: (k) => el("td", { textContent: k.name || "" }) },
    ];
    if (has("owner")) cols.push({ id: "owner", title: "Owner", cell: (k) => el("td", { textContent: k.owner || "" }) });
    cols.push(
      { id: "type", title: "Type", cell: (k) => el("td", { textContent: k.type === "client" ? "publishable" : "secret" }) },
      { id: "status", title: "Status", cell: statusCell },
      { id: "scopes", title: "Scopes", cell: scopesCell },
      { id: "created", title: "Created (UTC)", cell: (k) => timeCell(k.created_at, "", false) },
      { id: "expires", title: "Expires (UTC)", cell: (k) => timeCell(k.expires_at, "never", k.status === "expiring" || k.status === "active") },
      { id: "last-used", title: "Last used (UTC)", cell: (k) => timeCell(k.last_used_at, "never", false) },
    );
    if (has("metadata")) cols.push({ id: "metadata", title: "Metadata", cell: metadataCell });
    if (state.keys.some((k) => keyActions(k).length > 0)) cols.push({ id: "actions", title: "Actions", cell: actionsCell });
    return cols;
  }

  function prefixCell(k) {
    const td = el("td", { className: "prefix" }, el("code", { textContent: k.prefix }));
    if (k.default) td.append(" ", el("span", { className: "badge", textContent: "default" }));
    return td;
  }

  function statusCell(k) {
    return el("td", {}, el("span", { className: `status status-${k.status}`, "data-status": k.status, textContent: k.status }));
  }

  function scopesCell(k) {
    const td = el("td", { className: "scopes" });
    if (k.type === "client") {
      td.append(el("span", { className: "muted", textContent: "publishable" }));
      return td;
    }
    for (const s of k.scopes || []) {
      td.append(el("code", { className: "scope", textContent: s === "*" ? "* (full access)" : s }), " ");
    }
    return td;
  }

  function metadataCell(k) {
    const td = el("td", { className: "metadata" });
    for (const [name, value] of Object.entries(k.metadata || {})) {
      td.append(el("span", { className: "meta", textContent: `${name}=${value}` }), " ");
    }
    return td;
  }

  // keyActions lists what the actor may do to key k now.
  function keyActions(k) {
    const out = [];
    const live = k.status === "active" || k.status === "expiring";
    if (k.status === "active" && can("rotate")) out.push({ id: "rotate", label: "Rotate", run: () => openGrace(k, "rotate") });
    if (k.status === "expiring" && can("change_grace")) out.push({ id: "grace", label: "Change grace", run: () => openGrace(k, "grace") });
    if (live && k.type === "server" && !k.default && can("set_scopes")) out.push({ id: "scopes", label: "Edit scopes", run: () => openScopes(k) });
    if (live && can("reveal") && (k.type === "client" || state.session.reveal_server_keys)) out.push({ id: "reveal", label: "Reveal", run: () => reveal(k) });
    if (live && !k.default && can("revoke")) out.push({ id: "revoke", label: "Revoke", danger: true, run: () => openRevoke(k) });
    return out;
  }

  function actionsCell(k) {
    const td = el("td", { className: "actions" });
    for (const a of keyActions(k)) {
      const b = el("button", {
        type: "button",
        className: a.danger ? "danger small" : "small",
        textContent: a.label,
        "aria-label": `${a.label} ${k.prefix}`,
        "data-action": a.id,
        "data-key": k.prefix,
      });
      b.addEventListener("click", a.run);
      td.append(b, " ");
    }
    return td;
  }

  function renderKeys() {
    const cols = columns();
    const head = $("keys-head");
    head.textContent = "";
    for (const c of cols) head.append(el("th", { scope: "col", textContent: c.title }));
    const body = $("keys-body");
    body.textContent = "";
    for (const k of state.keys) {
      const tr = el("tr", { "data-prefix": k.prefix, "data-status": k.status });
      for (const c of cols) {
        const td = c.cell(k);
        td.dataset.col = c.id;
        tr.append(td);
      }
      body.append(tr);
    }
    $("keys-empty").hidden = state.keys.length > 0;
    const more = $("keys-more");
    more.textContent = "";
    more.hidden = !state.next;
    if (state.next) {
      more.append(`Showing the first ${state.keys.length} keys. `);
      const b = el("button", { type: "button", className: "small", textContent: "Load more keys" });
      b.addEventListener("click", () => loadKeys(true).catch(fail));
      more.append(b);
    }
  }

  function renderOrigins() {
    const list = $("origins");
    list.textContent = "";
    const origins = settings().allowed_origins || [];
    for (const o of origins) list.append(el("li", {}, el("code", { textContent: o })));
    $("origins-empty").hidden = origins.length > 0;
  }

  // loadActivity shows the environment's latest audit events, if the
  // console serves an audit log.
  async function loadActivity() {
    if (!state.session.audit) return;
    const data = await api("GET", `api/audit?environment=${encodeURIComponent(state.environment)}&limit=20`);
    const list = $("events");
    list.textContent = "";
    for (const e of data.events || []) {
      const li = el("li", {},
        el("time", { dateTime: e.time, title: e.time, textContent: formatTime(e.time) }),
        " ", el("strong", { textContent: e.actor.id }), ` (${e.actor.role}) `,
        el("span", { className: "action", textContent: e.action.replace(/_/g, " ") }));
      if (e.key_id) li.append(" ", el("code", { textContent: e.key_id }));
      if (e.detail) li.append(el("span", { className: "muted", textContent: ` ${e.detail}` }));
      list.append(li);
    }
    $("events-empty").hidden = list.children.length > 0;
    $("activity").hidden = false;
  }

  // ----- dialogs

  // openDialog clones the template id into a modal dialog. When it closes
  // it is removed (with any key it showed) and focus returns to the control
  // that opened it or, if the page was re-rendered meanwhile, to the same
  // control of the key back.key (or another of its row's), else to the
  // keys' heading.
  function openDialog(id, back) {
    const dialog = $(id).content.firstElementChild.cloneNode(true);
    const from = document.activeElement;
    if (!back && from && from.dataset && from.dataset.key) back = { key: from.dataset.key, action: from.dataset.action };
    dialog.addEventListener("close", () => {
      dialog.remove();
      restoreFocus(from, back);
    });
    for (const b of dialog.querySelectorAll("[data-close]")) {
      b.addEventListener("click", () => dialog.close());
    }
    document.body.append(dialog);
    return dialog;
  }

  function restoreFocus(from, back) {
    if (from && from.isConnected && from !== document.body) {
      from.focus();
      return;
    }
    const row = back && document.querySelector(`tr[data-prefix="${CSS.escape(back.key)}"]`);
    const same = row && ((back.action && row.querySelector(`[data-action="${CSS.escape(back.action)}"]`)) || row.querySelector("button"));
    (same || $("keys-heading")).focus();
  }

  // submitting wires a dialog's form to run(form) and shows its errors in
  // the dialog; on success the dialog closes (unless run returned false).
  function submitting(dialog, run) {
    const form = dialog.querySelector("form");
    const errors = dialog.querySelector(".form-error");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      errors.textContent = "";
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const keep = await run(form);
        if (keep !== false) dialog.close();
      } catch (err) {
        errors.textContent = err.message || String(err);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function parseScopes(s) {
    return s.split(/[\s,]+/).filter((x) => x !== "");
  }

  function openCreate() {
    const dialog = openDialog("tpl-create");
    const type = dialog.querySelector("#create-type");
    const scopesField = dialog.querySelector('[data-for="server"]');
    const scopes = dialog.querySelector("#create-scopes");
    const sync = () => {
      const server = type.value === "server";
      scopesField.hidden = !server;
      scopes.disabled = !server;
    };
    type.addEventListener("change", sync);
    sync();
    submitting(dialog, async (form) => {
      const body = { type: type.value, name: form.elements.name.value.trim() };
      if (body.type === "server") body.scopes = parseScopes(scopes.value);
      if (form.elements.expiry.value) body.expires_in = form.elements.expiry.value;
      const issued = await api("POST", `${envPath(state.environment)}/keys`, body);
      dialog.close();
      await refreshKeys();
      showSecret(issued, "created");
      return false;
    });
    dialog.showModal();
  }

  // openGrace asks for a grace period: to rotate an active key, or to
  // change the grace of a rotated one. No choice is preselected: a grace is
  // never picked silently.
  function openGrace(k, mode) {
    const dialog = openDialog("tpl-grace");
    const rotate = mode === "rotate";
    dialog.querySelector("h2").textContent = rotate ? `Rotate ${k.prefix}` : `Change the grace period of ${k.prefix}`;
    dialog.querySelector(".explain").textContent = rotate
      ? "A new key replaces this one at once. Until when should the old key keep working?"
      : `This key was rotated ${k.rotated_at ? formatTime(k.rotated_at) + " UTC" : ""}. It keeps working for the grace period, counted from the rotation.`;
    const fieldset = dialog.querySelector("fieldset");
    fieldset.querySelector("legend").textContent = rotate ? "The old key expires" : "Grace period";
    (state.session.graces || []).forEach((g, i) => {
      const id = `grace-${i}`;
      const input = el("input", { type: "radio", name: "grace", id, value: g.grace, required: true });
      if (i === 0) input.autofocus = true;
      fieldset.append(el("div", { className: "choice" }, input, el("label", { for: id, textContent: g.label })));
    });
    dialog.querySelector('button[type="submit"]').textContent = rotate ? "Rotate key" : "Change grace";
    submitting(dialog, async (form) => {
      const grace = form.elements.grace.value;
      if (rotate) {
        const issued = await api("POST", `${keyPath(k)}/rotate`, { grace });
        dialog.close();
        await refreshKeys();
        showSecret(issued, "rotated", k);
        return false;
      }
      const view = await api("PUT", `${keyPath(k)}/grace`, { grace });
      await refreshKeys();
      notify(view.status === "expired" ? `${k.prefix} has expired.` : `${k.prefix} now expires ${formatTime(view.expires_at)} UTC.`);
      return true;
    });
    dialog.showModal();
  }

  function openRevoke(k) {
    const dialog = openDialog("tpl-confirm");
    dialog.querySelector("h2").textContent = `Revoke ${k.prefix}?`;
    dialog.querySelector(".explain").textContent =
      "Every request with this key is refused from now on. Revoking cannot be undone.";
    dialog.querySelector('button[type="submit"]').textContent = "Revoke key";
    submitting(dialog, async () => {
      await api("POST", `${keyPath(k)}/revoke`);
      await refreshKeys();
      notify(`${k.prefix} was revoked.`);
    });
    dialog.showModal();
  }

  // openCloseAccount asks an owner to type the account's id. The button is
  // enabled, and the request sent, only while the typed id is exactly the
  // account's; the API checks it again.
  function openCloseAccount() {
    const account = state.session.account;
    const dialog = openDialog("tpl-close-account");
    dialog.querySelector("h2").textContent = `Close the account ${account}?`;
    dialog.querySelector(".explain").textContent =
      "Every key of every environment is revoked at once, defaults included, and no key can be created in this account again. This cannot be undone.";
    dialog.querySelector("label").textContent = `Type ${account} to confirm`;
    const input = dialog.querySelector("#close-account-confirm");
    const submit = dialog.querySelector('button[type="submit"]');
    const confirmed = () => input.value === account;
    input.addEventListener("input", () => { submit.disabled = !confirmed(); });
    submitting(dialog, async () => {
      if (!confirmed()) throw new Error(`Type ${account} to confirm.`);
      const res = await api("POST", "api/account/close", { confirm: input.value });
      await refreshKeys();
      notify(`The account ${res.account} was closed: ${res.revoked} keys were revoked.`);
    });
    dialog.showModal();
  }

  function openScopes(k) {
    const dialog = openDialog("tpl-scopes");
    dialog.querySelector("h2").textContent = `Scopes of ${k.prefix}`;
    const input = dialog.querySelector("#edit-scopes");
    input.value = (k.scopes || []).join(", ");
    submitting(dialog, async () => {
      await api("PUT", `${keyPath(k)}/scopes`, { scopes: parseScopes(input.value) });
      await refreshKeys();
      notify(`The scopes of ${k.prefix} were saved.`);
    });
    dialog.showModal();
  }

  function openOrigins() {
    const dialog = openDialog("tpl-origins");
    dialog.querySelector("h2").textContent = `Allowed origins of ${state.environment}`;
    const area = dialog.querySelector("#edit-origins");
    area.value = (settings().allowed_origins || []).join("\n");
    submitting(dialog, async () => {
      const origins = area.value.split("\n").map((s) => s.trim()).filter((s) => s !== "");
      await api("PUT", `${envPath(state.environment)}/origins`, { allowed_origins: origins });
      await reloadSettings();
      loadActivity().catch(fail);
      notify(`The allowed origins of ${state.environment} were saved.`);
    });
    dialog.showModal();
  }

  async function reveal(k) {
    try {
      const res = await api("POST", `${keyPath(k)}/reveal`);
      showSecret(res, "revealed", k);
    } catch (err) {
      fail(err);
    }
  }

  // showSecret shows the full key of a create, rotate or reveal response,
  // {"full_key": "...", "view": VIEW}, with a copy button. The key lives only in
  // this dialog, which is removed when it closes.
  function showSecret(res, how, old) {
    const view = res.view;
    const dialog = openDialog("tpl-secret", old && { key: old.prefix });
    const title = { created: "Your new key", rotated: "Your new key", revealed: `Key ${view.prefix}` }[how];
    dialog.querySelector("h2").textContent = title;
    let warning;
    if (how === "revealed") warning = "Anyone with this key can use it. Do not share it in public places.";
    else if (view.type === "server" && !state.session.reveal_server_keys) warning = "Copy this key now and keep it secret. It will not be shown again.";
    else if (view.type === "server") warning = "Copy this key now and keep it secret. Only an owner can reveal it again.";
    else warning = "Copy this key now. Publishable keys are public by design; an owner can reveal it again.";
    dialog.querySelector(".warning-text").textContent = warning;
    const value = dialog.querySelector("#secret-value");
    value.value = res.full_key;
    value.setAttribute("data-prefix", view.prefix);
    const status = dialog.querySelector(".copy-status");
    dialog.querySelector("button.copy").addEventListener("click", async () => {
      status.textContent = (await copy(value)) ? "Copied to the clipboard." : "Copying failed: select the key and copy it yourself.";
    });
    if (how === "rotated") {
      const until = state.keys.find((k) => k.id === old.id);
      notify(`${old.prefix} was rotated; it ${until && until.status === "expiring" ? `keeps working until ${formatTime(until.expires_at)} UTC` : "no longer works"}. Its replacement is ${view.prefix}.`);
    } else if (how === "created") {
      notify(`${view.prefix} was created.`);
    }
    dialog.showModal();
  }

  async function copy(input) {
    try {
      await navigator.clipboard.writeText(input.value);
      return true;
    } catch {
      input.focus();
      input.select();
      try {
        return document.execCommand("copy");
      } catch {
        return false;
      }
    }
  }

  // ----- page

  async function refreshKeys() {
    await loadKeys(false);
    loadActivity().catch(fail);
  }

  function renderTools() {
    const keyTools = $("key-tools");
    keyTools.textContent = "";
    if (can("create")) {
      const b = el("button", { type: "button", id: "create-key", className: "primary", textContent: "Create key" });
      b.addEventListener("click", openCreate);
      keyTools.append(b);
    }
    const originTools = $("origin-tools");
    originTools.textContent = "";
    if (can("set_origins")) {
      const b = el("button", { type: "button", id: "edit-origins-button", textContent: "Edit allowed origins" });
      b.addEventListener("click", openOrigins);
      originTools.append(b);
    }
    const accountTools = $("account-tools");
    accountTools.textContent = "";
    if (state.session.close_account) {
      const b = el("button", { type: "button", id: "close-account", className: "danger", textContent: "Close account" });
      b.addEventListener("click", openCloseAccount);
      accountTools.append(b);
    }
    $("account").hidden = !state.session.close_account;
  }

  async function showEnvironment() {
    history.replaceState(null, "", `#env=${encodeURIComponent(state.environment)}`);
    renderOrigins();
    await loadKeys(false);
    await loadActivity();
  }

  async function start() {
    try {
      await loadSession();
    } catch (err) {
      $("session").textContent = "Not signed in.";
      fail(err);
      document.body.dataset.ready = "error";
      return;
    }
    try {
      await loadEnvironments();
      renderTools();
      if (state.environment) await showEnvironment();
      else $("keys-empty").hidden = false;
    } catch (err) {
      fail(err);
    }
    $("environment").addEventListener("change", (ev) => {
      state.environment = ev.target.value;
      $("notice").textContent = "";
      $("error").textContent = "";
      showEnvironment().catch(fail);
    });
    document.body.dataset.ready = "true";
  }

  start();
})();
