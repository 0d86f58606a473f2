// keystile console. Talks to its own server only: GET session, and the
// management API under api/. Every value from the server is written as
// text (textContent, value), never as HTML.
"use strict";

(() => {
  // maxPages bounds how many pages of keys are read before the page asks
  // the user to load more.
  const maxPages = 20;

  // maxUsagePages bounds how many pages of usage counts a key's view reads.
  const maxUsagePages = 50;

  const state = {
    key: null, // the key whose view is shown, if any
    session: null,
    suspended: "", // when the account was suspended, if it is
    owner: null, // {owner, keys, next} of the owner whose keys are shown, if any
    actions: new Set(), // what the actor's role allows outside production
    productionActions: new Set(), // what it allows in production environments
    environments: [],
    environment: "",
    keys: [],
    next: "", // cursor of the next page of keys, if any
    search: "", // the list's search text, lower-cased
    filter: "current", // which keys the list shows: current, ended or all
    sort: "created", // the list's order within each group of statuses
  };

  const $ = (id) => document.getElementById(id);
  // can reports whether the actor's role allows action now, in the
  // environment env (default: the one shown; members change no key of a
  // production one, and an environment the page does not know counts as
  // production): while the account is suspended, keys may only be revoked.
  const can = (action, env) => {
    const e = env === undefined || env === state.environment ? settings() : state.environments.find((x) => x.environment === env);
    return (!e || e.production ? state.productionActions : state.actions).has(action) &&
      (!state.suspended || action === "revoke" || action === "revoke_owner");
  };
  // canKey reports whether the actor may perform action on key k, in k's
  // own environment (a key's view may show a key of another environment
  // than the list's).
  const canKey = (action, k) => can(action, k.environment || state.environment);

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
    if (!res.ok) {
      if (data && data.code === "account_suspended" && !state.suspended) markSuspended(new Date().toISOString());
      throw new APIError(res.status, data);
    }
    return data;
  }

  // keyHash is the location hash of a key's view.
  const keyHash = (env, prefix) => `env=${encodeURIComponent(env)}&key=${encodeURIComponent(prefix)}`;
  const envPath = (env) => `api/environments/${encodeURIComponent(env)}`;
  const keyPath = (view) => `api/keys/${encodeURIComponent(view.prefix)}`;
  const ownerHash = (owner) => `owner=${encodeURIComponent(owner)}`;
  const ownerPath = (owner) => `api/owners/${encodeURIComponent(owner)}`;

  // ownerLink links to the view of every key of owner.
  function ownerLink(owner) {
    return el("a", { href: `#${ownerHash(owner)}`, className: "owner-link", title: `Every key of ${owner}`, textContent: owner });
  }

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

  const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

  // relative says when iso is from now in words: "in 3 days", "3 minutes
  // ago", "now".
  function relative(iso) {
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const a = Math.abs(s);
    if (a < 45) return "now";
    // Each unit up to where the next one reads better.
    const units = [[2700, 60, "minute"], [79200, 3600, "hour"], [26 * 86400, 86400, "day"], [320 * 86400, 30 * 86400, "month"]];
    for (const [below, size, unit] of units) {
      if (a < below) return relativeFormat.format(Math.round(s / size), unit);
    }
    return relativeFormat.format(Math.round(s / (365 * 86400)), "year");
  }

  // humanTime shows iso in words ("in 3 days"), with the exact time (UTC)
  // in a tooltip that both hovering and the keyboard's focus show, and that
  // screen readers read with the words.
  function humanTime(iso) {
    const exact = `${formatTime(iso)} UTC`;
    return el("time", { dateTime: iso, title: exact, className: "human", tabIndex: 0 },
      el("span", { className: "rel", textContent: relative(iso) }),
      el("span", { className: "exact", textContent: ` (${exact})` }));
  }

  // timeCell shows a time in words, or none if the time is not set.
  function timeCell(iso, none) {
    if (!iso) return el("td", { className: "muted", textContent: none });
    return el("td", {}, humanTime(iso));
  }

  // ----- session and environments

  async function loadSession() {
    const s = await api("GET", "session");
    state.session = s;
    state.actions = new Set(s.actions || []);
    state.productionActions = new Set(s.production_actions || []);
    const who = $("session");
    who.textContent = "";
    who.append("Signed in as ", el("strong", { textContent: s.actor.id }), ` (${s.actor.role})`);
    const title = s.service_name ? `${s.service_name} API keys` : "API keys";
    $("title").textContent = title;
    document.title = title;
    const account = $("account-name");
    account.textContent = "";
    if (s.account_name) {
      account.append("Account ", el("strong", { textContent: s.account_name }));
      if (s.account_name !== s.account) account.append(" ", el("span", { className: "muted", textContent: `(${s.account})` }));
    }
  }

  // renderEnvironment marks the environment shown as production or not,
  // and tells the signed-in user what their role lets them do in it.
  function renderEnvironment() {
    const production = !!settings().production;
    const marker = $("env-marker");
    marker.className = `env-marker ${production ? "env-production" : "env-test"}`;
    marker.dataset.production = String(production);
    marker.textContent = production ? "Production: live keys" : "Not production";
    const note = $("role-note");
    const role = state.session.actor.role;
    let text = "";
    if (role === "read-only") {
      text = "You have read-only access: you can view keys, their limits, usage and activity, but not change them. " +
        "Owners of this account change keys; members change the keys of environments that are not production. Ask an owner for a key.";
    } else if (role === "member" && production) {
      text = `${state.environment} is a production environment: as a member you can view its keys and reveal its publishable keys. ` +
        "Only owners create, rotate, revoke or change production keys; you manage the keys of the environments that are not production.";
    }
    note.textContent = text;
    note.hidden = text === "";
  }

  async function loadEnvironments() {
    const data = await api("GET", "api/environments");
    state.environments = data.environments || [];
    const select = $("environment");
    select.textContent = "";
    for (const e of state.environments) {
      select.append(el("option", { value: e.environment, textContent: e.production ? `${e.environment} (production)` : e.environment }));
    }
    const wanted = new URLSearchParams(location.hash.slice(1)).get("env");
    const suspended = state.environments.find((e) => e.suspended_at);
    if (suspended) markSuspended(suspended.suspended_at);
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
    renderLifetime();
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
    if (has("owner")) cols.push({ id: "owner", title: "Owner", cell: (k) => el("td", {}, k.owner ? ownerLink(k.owner) : "") });
    cols.push(
      { id: "type", title: "Type", cell: (k) => el("td", { textContent: typeText(k) }) },
      { id: "status", title: "Status", cell: statusCell },
      { id: "scopes", title: "Scopes", cell: scopesCell },
      { id: "created", title: "Created", cell: (k) => timeCell(k.created_at, "") },
      { id: "expires", title: "Expires", cell: (k) => timeCell(k.expires_at, "never") },
      { id: "last-used", title: "Last used", cell: (k) => timeCell(k.last_used_at, "never") },
    );
    if (has("metadata")) cols.push({ id: "metadata", title: "Metadata", cell: metadataCell });
    if (state.keys.some((k) => keyActions(k).length > 0)) cols.push({ id: "actions", title: "Actions", cell: actionsCell });
    return cols;
  }

  // prefixCell links to the key's own view (its details, limits and
  // usage), by keyboard as by mouse.
  function prefixCell(k) {
    const link = el("a", { href: `#${keyHash(k.environment || state.environment, k.prefix)}`, className: "key-link", title: "Details, limits and usage" },
      el("code", { textContent: k.prefix }));
    const td = el("td", { className: "prefix" }, link);
    if (k.default) td.append(" ", el("span", { className: "badge", textContent: "default" }));
    if (k.imported) td.append(" ", importedBadge());
    return td;
  }

  // typeText names a key's type in the page's one vocabulary: secret keys
  // (server-) and publishable keys (client-).
  const typeText = (k) => (k.type === "client" ? "publishable" : "secret");

  // importedText marks a key issued before keystile.
  const importedText = "imported — rotate to a keystile key";

  function importedBadge() {
    return el("span", { className: "badge badge-imported", "data-imported": "true", title: importedText, textContent: "imported" },
      el("span", { className: "visually-hidden", textContent: ": rotate to a keystile key" }));
  }

  function statusCell(k) {
    return el("td", {}, el("span", { className: `status status-${k.status}`, "data-status": k.status, textContent: k.status }));
  }

  function scopesCell(k) {
    const td = el("td", { className: "scopes" });
    if (k.type === "client") {
      td.append(el("span", { className: "muted", textContent: "none (publishable key)" }));
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
      td.append(el("span", { className: "meta" }, `${name}=`, el("wbr"), value), " ");
    }
    return td;
  }

  // keyActions lists what the actor may do to key k now; long labels
  // (for a key's view) say more where the list's column is narrow.
  function keyActions(k, long) {
    const out = [];
    const live = k.status === "active" || k.status === "expiring";
    if (k.status === "active" && canKey("rotate", k)) {
      out.push({ id: "rotate", label: long && k.imported ? "Rotate to a keystile key" : "Rotate", run: () => openGrace(k, "rotate") });
    }
    if (k.status === "expiring" && canKey("change_grace", k)) out.push({ id: "grace", label: "Change grace", run: () => openGrace(k, "grace") });
    if (live && k.type === "server" && !k.default && canKey("set_scopes", k)) out.push({ id: "scopes", label: "Edit scopes", run: () => openScopes(k) });
    if (live && !k.imported && canKey("reveal", k) && (k.type === "client" || state.session.reveal_server_keys)) out.push({ id: "reveal", label: "Reveal", run: () => reveal(k) });
    if (live && !k.default && canKey("disable", k)) out.push({ id: "disable", label: "Disable", danger: true, run: () => openDisable(k) });
    if (k.status === "disabled" && canKey("enable", k)) out.push({ id: "enable", label: "Enable", run: () => enable(k) });
    if ((live || k.status === "disabled") && !k.default && canKey("revoke", k)) out.push({ id: "revoke", label: "Revoke", danger: true, run: () => openRevoke(k) });
    return out;
  }

  function actionsCell(k) {
    return actionButtons(el("td", { className: "actions" }), k, false);
  }

  // actionButtons appends to box a button for each of keyActions(k,
  // long): in the list each names its action by data-action, in a key's
  // view (long) by data-view-action.
  function actionButtons(box, k, long) {
    for (const a of keyActions(k, long)) {
      const b = el("button", {
        type: "button",
        className: a.danger ? "danger small" : "small",
        textContent: a.label,
        "aria-label": `${a.label} ${k.prefix}`,
        [long ? "data-view-action" : "data-action"]: a.id,
        "data-key": k.prefix,
      });
      b.addEventListener("click", a.run);
      box.append(b, " ");
    }
    return box;
  }

  // statusGroup puts live keys first (expiring, then active), then
  // disabled ones, then those that no longer work.
  const statusGroup = { expiring: 0, active: 0, disabled: 1, expired: 2, revoked: 2 };
  const ended = (k) => k.status === "revoked" || k.status === "expired";

  // shownByFilter reports whether the list's filter shows k: current keys
  // (active, expiring, disabled), ended ones (revoked, expired), or all.
  function shownByFilter(k) {
    if (state.filter === "all") return true;
    return state.filter === "ended" ? ended(k) : !ended(k);
  }

  // matchesSearch reports whether k's name, prefix or owner holds the
  // search text.
  function matchesSearch(k) {
    if (!state.search) return true;
    return [k.name, k.prefix, k.owner].some((v) => (v || "").toLowerCase().includes(state.search));
  }

  const timeOf = (iso) => (iso ? new Date(iso).getTime() : NaN);

  // compareKeys orders keys by statusGroup, then by the chosen sort: the
  // newest first, by name, the soonest expiry first, or the latest use
  // first; keys without the value go last.
  function compareKeys(a, b) {
    const g = (statusGroup[a.status] ?? 3) - (statusGroup[b.status] ?? 3);
    if (g !== 0) return g;
    const last = (x, y, cmp) => (Number.isNaN(x) ? (Number.isNaN(y) ? 0 : 1) : (Number.isNaN(y) ? -1 : cmp(x, y)));
    switch (state.sort) {
      case "name":
        if (!a.name !== !b.name) return a.name ? -1 : 1;
        return (a.name || "").localeCompare(b.name || "", "en", { sensitivity: "base" }) || a.prefix.localeCompare(b.prefix);
      case "expires":
        return last(timeOf(a.expires_at), timeOf(b.expires_at), (x, y) => x - y);
      case "last_used":
        return last(timeOf(a.last_used_at), timeOf(b.last_used_at), (x, y) => y - x);
      default:
        return last(timeOf(a.created_at), timeOf(b.created_at), (x, y) => y - x);
    }
  }

  function renderKeys() {
    const cols = columns();
    const head = $("keys-head");
    head.textContent = "";
    for (const c of cols) head.append(el("th", { scope: "col", textContent: c.title, "data-col": c.id }));
    const body = $("keys-body");
    body.textContent = "";
    let shown = 0;
    let endedHidden = 0;
    for (const k of [...state.keys].sort(compareKeys)) {
      const tr = el("tr", { "data-prefix": k.prefix, "data-status": k.status });
      for (const c of cols) {
        const td = c.cell(k);
        td.dataset.col = c.id;
        td.dataset.label = c.title;
        tr.append(td);
      }
      // Rows the filter or search leave out stay in the table, hidden.
      tr.hidden = !shownByFilter(k) || !matchesSearch(k);
      if (!tr.hidden) shown++;
      else if (ended(k) && state.filter === "current" && matchesSearch(k)) endedHidden++;
      body.append(tr);
    }
    $("keys").hidden = shown === 0;
    $("keys-empty").hidden = state.keys.length > 0;
    const counted = $("keys-count");
    let text = "";
    if (state.keys.length > 0) {
      text = `Showing ${plural(shown, "key", "keys")} of ${count(state.keys.length)}`;
      if (state.search) text += ` matching “${$("key-search").value.trim()}”`;
      text += ".";
      if (endedHidden > 0) text += ` ${plural(endedHidden, "revoked or expired key is", "revoked or expired keys are")} hidden: choose “All keys” or “Revoked and expired” to see ${endedHidden === 1 ? "it" : "them"}.`;
      if (state.next) text += " The search covers the keys loaded so far: load more keys to search them all.";
    }
    counted.textContent = text;
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

  // actionText names each audited action in words; an action it lacks
  // reads with its underscores as spaces.
  const actionText = {
    bootstrap: "created the default key",
    create: "created",
    rotate: "rotated",
    change_grace: "changed the grace of",
    revoke: "revoked",
    revoke_owner: "revoked every key of an owner",
    set_scopes: "changed the scopes of",
    set_origins: "changed the allowed origins",
    reveal: "revealed",
    set_owner: "changed the owner of",
    set_metadata: "changed the metadata of",
    set_limits: "changed the limits of",
    set_owner_limits: "changed the limits of an owner",
    rename: "renamed",
    disable: "disabled",
    enable: "enabled",
    import: "imported",
    set_lifetime: "changed the key lifetime policy",
    suspend_account: "suspended the account",
    resume_account: "resumed the account",
    close_account: "closed the account",
    purge: "deleted ended keys",
    quota_exhausted: "quota used up:",
    key_expiring: "expiring soon:",
    grace_ended: "grace period ended:",
    key_expired: "expired:",
    create_endpoint: "added a webhook endpoint",
    update_endpoint: "changed a webhook endpoint",
    rotate_endpoint_secret: "rotated the signing secret of a webhook endpoint",
    delete_endpoint: "deleted a webhook endpoint",
    replay_dead_letters: "replayed dead letters of a webhook endpoint",
  };

  // automaticActions are the facts that keystile records as time passes
  // or a quota runs out, not anyone's act.
  const automaticActions = new Set(["quota_exhausted", "key_expiring", "grace_ended", "key_expired"]);

  // loadActivity shows the environment's latest audit events, if the
  // console serves an audit log.
  async function loadActivity() {
    if (!state.session.audit) return;
    const data = await api("GET", `api/audit?environment=${encodeURIComponent(state.environment)}&limit=20`);
    const list = $("events");
    list.textContent = "";
    for (const e of data.events || []) {
      // keystile itself (apikey.SystemActor, of no one account) writes
      // the time-based facts and the quota events.
      const automatic = e.actor.account === "*" && automaticActions.has(e.action);
      const li = el("li", { "data-event": e.action },
        humanTime(e.time),
        " ", el("strong", { className: "actor", textContent: e.actor.id }), automatic ? " (automatic) " : ` (${e.actor.role}) `,
        el("span", { className: "action", textContent: actionText[e.action] || e.action.replace(/_/g, " ") }));
      if (e.key_id) li.append(" ", el("code", { className: "event-key", textContent: e.key_type ? `${e.key_type}-${e.key_id}` : e.key_id }));
      // Times in the detail read as the page's other exact times.
      const detail = (e.detail || "").replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, (t) => `${formatTime(t)} UTC`);
      if (detail) li.append(el("span", { className: "muted", textContent: ` ${detail}` }));
      list.append(li);
    }
    $("events-empty").hidden = list.children.length > 0;
    $("activity").hidden = false;
  }

  // ----- dialogs

  // openDialog clones the template id into a modal dialog. When it closes
  // it is removed (with any key it showed) and focus returns to the control
  // that opened it or, if that is gone or hidden meanwhile, to the limits'
  // heading in a key's view, to the same control of the endpoint
  // back.endpoint (else Add endpoint, else the heading) in the webhooks
  // view, else to the same control of the key back.key (or another of its
  // row's), else to the keys' heading.
  function openDialog(id, back) {
    const dialog = $(id).content.firstElementChild.cloneNode(true);
    const from = document.activeElement;
    if (!back && from && from.dataset && from.dataset.key) back = { key: from.dataset.key, action: from.dataset.action || from.dataset.viewAction };
    if (!back && from && from.dataset && from.dataset.endpoint) back = { endpoint: from.dataset.endpoint, action: from.dataset.hookAction };
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
    if (from && from.isConnected && from !== document.body && from.getClientRects().length > 0) {
      from.focus();
      return;
    }
    if (!$("owner-view").hidden) {
      $("owner-heading").focus();
      return;
    }
    if (!$("webhooks-view").hidden) {
      const same = back && back.endpoint && back.action &&
        document.querySelector(`#endpoints-body [data-endpoint="${CSS.escape(back.endpoint)}"][data-hook-action="${CSS.escape(back.action)}"]`);
      (same || $("add-endpoint") || $("webhooks-heading")).focus();
      return;
    }
    if (!$("key-view").hidden) {
      const same = back && back.action && $("key-actions").querySelector(`[data-view-action="${CSS.escape(back.action)}"]`);
      (same || $("limits-heading")).focus();
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
      clearFieldErrors(form);
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const keep = await run(form);
        if (keep !== false) dialog.close();
      } catch (err) {
        if (!showRefusal(form, err)) errors.textContent = err.message || String(err);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }

  function parseScopes(s) {
    return s.split(/[\s,]+/).filter((x) => x !== "");
  }

  // scopeChoices offers the service's scope catalogue (Options.Scopes) as
  // checkboxes, those of selected checked; a selected scope outside the
  // catalogue is offered too, checked, so that saving keeps it unless it
  // is unchecked.
  function scopeChoices(idPrefix, selected) {
    const fieldset = el("fieldset", { className: "scope-choices", id: `${idPrefix}s` }, el("legend", { textContent: "Scopes" }));
    const names = state.session.scopes.map((x) => x.name);
    const extra = selected.filter((x) => !names.includes(x))
      .map((x) => ({ name: x, description: x === "*" ? "Full access: every scope" : "Not in this service's list of scopes" }));
    [...state.session.scopes, ...extra].forEach((sc, i) => {
      const id = `${idPrefix}-${i}`;
      const input = el("input", { type: "checkbox", id, name: "scope", value: sc.name, checked: selected.includes(sc.name),
        "aria-describedby": sc.description ? `${id}-desc` : undefined });
      fieldset.append(el("div", { className: "choice scope-choice" }, input,
        el("label", { for: id }, el("code", { textContent: sc.name })),
        sc.description ? el("span", { id: `${id}-desc`, className: "scope-description", textContent: sc.description }) : null));
    });
    fieldset.append(el("p", { className: "hint", textContent: "Choose at least one. A write scope implies read." }));
    return fieldset;
  }

  // chosenScopes reads the checked scopes of scopeChoices, or throws if
  // none is.
  function chosenScopes(fieldset) {
    const out = [...fieldset.querySelectorAll('input[name="scope"]:checked')].map((i) => i.value);
    if (out.length === 0) {
      const first = fieldset.querySelector('input[name="scope"]');
      if (first) first.focus();
      throw new Error("Choose at least one scope.");
    }
    return out;
  }

  const hasCatalogue = () => (state.session.scopes || []).length > 0;

  function openCreate() {
    const dialog = openDialog("tpl-create");
    const type = dialog.querySelector("#create-type");
    const textField = dialog.querySelector('[data-for="server"]');
    const scopes = dialog.querySelector("#create-scopes");
    let choices = null;
    if (hasCatalogue()) {
      choices = scopeChoices("create-scope", []);
      textField.replaceWith(choices);
    }
    const sync = () => {
      const server = type.value === "server";
      (choices || textField).hidden = !server;
      (choices || scopes).disabled = !server;
    };
    type.addEventListener("change", sync);
    sync();
    const policy = lifetimeOf();
    if (policy.def || policy.max) {
      dialog.querySelector('#create-expiry option[value=""]').textContent = `The environment's default: in ${durationText(policy.def || policy.max)}`;
      const hint = dialog.querySelector("#create-expiry-hint");
      hint.textContent = policy.max
        ? `Keys of ${state.environment} may live at most ${durationText(policy.max)} (its maximum lifetime).`
        : `Keys of ${state.environment} expire after ${durationText(policy.def)} unless another expiry is chosen.`;
      hint.hidden = false;
    }
    submitting(dialog, async (form) => {
      const body = { type: type.value, name: form.elements.name.value.trim() };
      if (body.type === "server") body.scopes = choices ? chosenScopes(choices) : parseScopes(scopes.value);
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

  // openDisable asks before switching k off: every request with it is
  // refused until it is enabled again.
  function openDisable(k) {
    const dialog = openDialog("tpl-confirm");
    dialog.querySelector("h2").textContent = `Disable ${k.prefix}?`;
    dialog.querySelector(".explain").textContent =
      "Every request with this key is refused until it is enabled again. Its expiry keeps running.";
    dialog.querySelector('button[type="submit"]').textContent = "Disable key";
    submitting(dialog, async () => {
      await api("POST", `${keyPath(k)}/disable`);
      await refreshKeys();
      notify(`${k.prefix} was disabled: requests with it are refused until it is enabled.`);
    });
    dialog.showModal();
  }

  // enable switches a disabled key on again, with no question: it undoes
  // nothing that cannot be done again.
  async function enable(k) {
    try {
      const view = await api("POST", `${keyPath(k)}/enable`);
      await refreshKeys();
      notify(view.status === "disabled" ? `${k.prefix} is still disabled.` : `${k.prefix} was enabled: it is ${view.status}.`);
      const again = $("key-view").hidden
        ? document.querySelector(`tr[data-prefix="${CSS.escape(k.prefix)}"] [data-action="disable"]`)
        : document.querySelector('#key-actions [data-view-action="disable"]');
      if (again) again.focus();
    } catch (err) {
      fail(err);
    }
  }

  // markSuspended shows that the account is suspended (since the time
  // iso) and withdraws the actions it refuses.
  function markSuspended(iso) {
    state.suspended = iso;
    $("suspended").hidden = false;
    const since = $("suspended-since");
    since.textContent = "";
    since.append(" (suspended ", humanTime(iso), ")");
    if (!state.session) return;
    renderTools();
    renderKeys();
    if (state.key) renderKey(state.key);
    if (!$("webhooks-view").hidden) {
      renderEndpoints();
      renderLetters();
    }
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
      followReach(k);
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
    let choices = null;
    if (hasCatalogue()) {
      choices = scopeChoices("edit-scope", k.scopes || []);
      input.closest(".field").replaceWith(choices);
      choices.querySelector("input").autofocus = true;
    }
    submitting(dialog, async () => {
      await api("PUT", `${keyPath(k)}/scopes`, { scopes: choices ? chosenScopes(choices) : parseScopes(input.value) });
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


  // ----- lifetime policy, environments, names

  // maxLifetimeSeconds is apikey.MaxKeyLifetime (3,650 days).
  const maxLifetimeSeconds = 3650 * 86400;

  // lifetimeOf returns the lifetime policy of the environment shown, in
  // seconds: def (0: the maximum, or none) and max (0: none).
  function lifetimeOf() {
    const l = settings().lifetime || {};
    return { def: Number(l.default_expiry_seconds) || 0, max: Number(l.max_lifetime_seconds) || 0 };
  }

  // durationText writes whole seconds as days, else hours, else seconds.
  function durationText(sec) {
    if (sec % 86400 === 0) return plural(sec / 86400, "day", "days");
    if (sec % 3600 === 0) return plural(sec / 3600, "hour", "hours");
    return plural(sec, "second", "seconds");
  }

  function renderLifetime() {
    const dl = $("lifetime");
    dl.textContent = "";
    const p = lifetimeOf();
    const row = (name, field, text) => dl.append(el("dt", { textContent: name }), el("dd", { "data-lifetime": field, textContent: text }));
    let def = "never";
    if (p.def) def = `${durationText(p.def)} after creation`;
    else if (p.max) def = `${durationText(p.max)} after creation (the maximum lifetime)`;
    row("Default expiry", "default_expiry", def);
    row("Maximum lifetime", "max_lifetime", p.max ? durationText(p.max) : "none");
  }

  // fillDuration shows sec (0: none) in a number field and its unit.
  function fillDuration(input, unit, sec) {
    input.value = "";
    if (!sec) return;
    let per = sec % 86400 === 0 ? 86400 : (sec % 3600 === 0 ? 3600 : 1);
    if (per === 1) unit.append(el("option", { value: "1", textContent: "seconds" }));
    unit.value = String(per);
    input.value = String(sec / per);
  }

  // durationField reads a number field and its unit as whole seconds (0
  // when empty), or throws a FieldError for field.
  function durationField(form, input, unit, field) {
    const label = form.querySelector(`label[for="${input.id}"]`).textContent;
    const unitName = unit.options[unit.selectedIndex].textContent;
    const v = input.value.trim();
    if (v === "" && !(input.validity && input.validity.badInput)) return 0;
    const n = Number(v);
    if (v === "" || !Number.isSafeInteger(n) || n < 1) {
      throw new FieldError(field, `${label} must be a whole number of ${unitName}, at least 1; leave it empty for none.`);
    }
    const sec = n * Number(unit.value);
    if (sec > maxLifetimeSeconds) throw new FieldError(field, `${label} must be at most ${durationText(maxLifetimeSeconds)}.`);
    return sec;
  }

  function openLifetime() {
    const env = state.environment;
    const dialog = openDialog("tpl-lifetime");
    dialog.querySelector("h2").textContent = `Key lifetime of ${env}`;
    const form = dialog.querySelector("form");
    const e = form.elements;
    const p = lifetimeOf();
    fillDuration(e.default_expiry, e.default_expiry_unit, p.def);
    fillDuration(e.max_lifetime, e.max_lifetime_unit, p.max);
    submitting(dialog, async () => {
      const body = {};
      const def = durationField(form, e.default_expiry, e.default_expiry_unit, "default_expiry_seconds");
      const max = durationField(form, e.max_lifetime, e.max_lifetime_unit, "max_lifetime_seconds");
      if (def) body.default_expiry_seconds = def;
      if (max) body.max_lifetime_seconds = max;
      await api("PUT", `${envPath(env)}/lifetime`, body);
      await reloadSettings();
      loadActivity().catch(fail);
      notify(def || max ? `The key lifetime of ${env} was saved.` : `${env} has no key lifetime policy any more.`);
    });
    dialog.showModal();
  }

  function openEnvironment() {
    const dialog = openDialog("tpl-environment");
    const input = dialog.querySelector("#environment-name");
    submitting(dialog, async () => {
      const name = input.value.trim();
      if (name === "") throw new FieldError("environment", "Name the environment.");
      let res;
      try {
        res = await api("POST", "api/environments", { environment: name });
      } catch (err) {
        if (err.code === "already_bootstrapped") throw new FieldError("environment", `An environment named ${name} exists already.`);
        throw err;
      }
      dialog.close();
      await loadEnvironments();
      state.environment = res.environment;
      $("environment").value = res.environment;
      await showEnvironment();
      showSecrets(res);
      notify(`The environment ${res.environment} was created, with a default secret key and a default publishable key.`);
      return false;
    });
    dialog.showModal();
  }

  // showSecrets shows the full keys that creating an environment issued,
  // {"environment": "...", "issued": [{"full_key": "...", "view": VIEW}, ...]},
  // each with a copy button. They live only in this dialog, which is
  // removed when it closes.
  function showSecrets(res) {
    const dialog = openDialog("tpl-secrets");
    dialog.querySelector("h2").textContent = `The keys of ${res.environment}`;
    dialog.querySelector(".warning-text").textContent = state.session.reveal_server_keys
      ? "Copy the secret key now and keep it secret: only an owner can reveal it again. The publishable key is public by design."
      : "Copy the secret key now and keep it secret: it will not be shown again. The publishable key is public by design; an owner can reveal it again.";
    const box = dialog.querySelector(".secrets");
    (res.issued || []).forEach((k, i) => {
      const id = `secret-value-${i}`;
      const kind = k.view.type === "client" ? "publishable" : "secret";
      const input = el("input", { id, className: "secret-value", readOnly: true, spellcheck: false, autocomplete: "off", value: k.full_key, "data-prefix": k.view.prefix });
      const status = el("p", { className: "copy-status hint", role: "status", "aria-live": "polite" });
      const copyButton = el("button", { type: "button", className: "copy", "aria-label": `Copy the ${kind} key to clipboard`, textContent: "Copy" });
      if (i === 0) copyButton.autofocus = true;
      copyButton.addEventListener("click", async () => {
        status.textContent = (await copy(input)) ? "Copied to the clipboard." : "Copying failed: select the key and copy it yourself.";
      });
      box.append(el("div", { className: "field" },
        el("label", { for: id, textContent: `Default ${kind} key (${k.view.type}-)` }),
        el("div", { className: "copy-row" }, input, copyButton), status));
    });
    dialog.showModal();
  }

  // renderRename shows owners the form that renames k; a revoked key keeps
  // its name.
  function renderRename(k) {
    const box = $("rename-edit");
    if (!canKey("rename", k) || k.status === "revoked") {
      box.textContent = "";
      return;
    }
    let form = $("rename-form");
    if (!form) {
      box.append($("tpl-rename").content.firstElementChild.cloneNode(true));
      form = $("rename-form");
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        saveName(form).catch(fail);
      });
    }
    form.elements.name.value = k.name || "";
    clearFieldErrors(form);
  }

  async function saveName(form) {
    const k = state.key;
    clearFieldErrors(form);
    const name = form.elements.name.value.trim();
    const button = $("save-name");
    button.disabled = true;
    try {
      const view = await api("PUT", `${keyPath(k)}/name`, { name });
      const i = state.keys.findIndex((x) => x.id === view.id);
      if (i >= 0) state.keys[i] = view;
      if (i >= 0) renderKeys();
      if (state.key && state.key.id === view.id) {
        state.key = view;
        renderKey(view);
      }
      notify(name ? `${k.prefix} is now named ${name}.` : `${k.prefix} has no name any more.`);
      loadActivity().catch(fail);
    } catch (err) {
      if (!showRefusal(form, err)) form.querySelector(".form-error").textContent = err.message || String(err);
    } finally {
      button.disabled = false;
      // A button disabled while it had the focus lost it.
      if (document.activeElement === document.body) $("rename-name").focus();
    }
  }

  // codeFields are the fields that a refusal's code is about, in the forms
  // that have them.
  const codeFields = {
    invalid_name: "name",
    beyond_lifetime: "expiry",
    invalid_expiry: "expiry",
    invalid_environment: "environment",
  };

  // showRefusal shows err next to the control of the field it is about (a
  // FieldError's, its code's, or the first field of the form that its
  // detail names) and reports whether it could.
  function showRefusal(form, err) {
    let field = err instanceof FieldError ? err.field : codeFields[err.code];
    if (!field && err instanceof APIError) {
      let at = Infinity;
      for (const p of form.querySelectorAll(".field-error[data-field]")) {
        const m = new RegExp(`\\b${p.dataset.field.replace(/\./g, "\\.")}\\b`).exec(err.message);
        const i = m ? m.index : -1;
        if (i >= 0 && i < at) {
          at = i;
          field = p.dataset.field;
        }
      }
    }
    if (!field || !form.querySelector(`.field-error[data-field="${CSS.escape(field)}"]`)) return false;
    showFieldError(form, field, refusalText(err));
    return true;
  }

  // endpointFields name the fields of an invalid_endpoint detail as the
  // endpoint's form labels them.
  const endpointFields = { url: "The URL ", actions: "The event types ", environment: "The environment " };

  // refusalText says what err refused in words: the API's detail without
  // the package's prefix, with fields named as the forms label them.
  function refusalText(err) {
    if (err instanceof FieldError) return err.message;
    const p = lifetimeOf();
    if (err.code === "beyond_lifetime" && p.max) {
      return `Beyond the maximum key lifetime of ${state.environment}: its keys may live at most ${durationText(p.max)}. Choose an earlier expiry.`;
    }
    const text = (err.message || String(err))
      .replace(/^apikey: invalid lifetime policy: /, "")
      .replace(/^apikey: invalid webhook endpoint: (url|actions|environment) /, (_, f) => endpointFields[f])
      .replace(/^apikey: /, "")
      .replace(/(max_lifetime_seconds \()(\d+)\)/g, (_, name, n) => `${name}${durationText(Number(n))})`)
      .replace(/default_expiry_seconds/g, "the default expiry")
      .replace(/max_lifetime_seconds/g, "the maximum lifetime");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // ----- expiring soon, keys by owner

  // expiringWindow is how far ahead the list of expiring keys looks.
  const expiringWindow = "168h";

  // loadExpiring lists, at the top of the page, the keys of every
  // environment that stop working within expiringWindow. Where the API
  // cannot list them (a refusal: an API without the route, a store without
  // an expiry index), the list stays hidden.
  async function loadExpiring() {
    let data;
    try {
      data = await api("GET", `api/keys/expiring?within=${expiringWindow}&limit=20`);
    } catch (err) {
      if ((err.status >= 400 && err.status < 500) || err.status === 501) {
        $("expiring").hidden = true;
        return;
      }
      throw err;
    }
    const list = $("expiring-list");
    list.textContent = "";
    for (const k of data.keys || []) {
      const li = el("li", { "data-prefix": k.prefix },
        el("a", { href: `#${keyHash(k.environment, k.prefix)}`, className: "key-link" }, el("code", { textContent: k.prefix })),
        " ", k.name ? el("span", { textContent: k.name }) : null, k.name ? " " : null,
        el("span", { className: "muted", textContent: `in ${k.environment}` }), " ",
        el("span", { className: `status status-${k.status}`, "data-status": k.status, textContent: k.status }), " ",
        k.status === "expiring" ? "grace ends " : "expires ",
        humanTime(k.expires_at));
      list.append(li);
    }
    const more = $("expiring-more");
    more.hidden = !data.next;
    more.textContent = data.next ? `Showing the ${count(list.children.length)} that expire first.` : "";
    $("expiring").hidden = list.children.length === 0;
  }

  // showOwner shows every key of owner, in every environment.
  async function showOwner(owner) {
    await loadOwner(owner);
    leaveReach();
    state.key = null;
    $("list-view").hidden = true;
    $("key-view").hidden = true;
    $("webhooks-view").hidden = true;
    $("owner-view").hidden = false;
    $("owner-back").href = `#env=${encodeURIComponent(state.environment)}`;
    $("owner-heading").focus();
  }

  // loadOwner reads owner's keys, page by page (at most maxPages), and
  // shows them.
  async function loadOwner(owner) {
    let keys = [];
    let next = "";
    let pages = 0;
    let unavailable = "";
    try {
      do {
        const data = await api("GET", `${ownerPath(owner)}/keys${next ? `?after=${encodeURIComponent(next)}` : ""}`);
        keys = keys.concat(data.keys || []);
        next = data.next || "";
        pages++;
      } while (next && pages < maxPages);
    } catch (err) {
      if (err.status !== 404 && err.status !== 501) throw err;
      unavailable = "This service's key store cannot list keys by owner.";
    }
    state.owner = { owner, keys, next };
    renderOwner(unavailable);
  }

  function renderOwner(unavailable) {
    const { owner, keys, next } = state.owner;
    $("owner-heading").textContent = `Keys of ${owner}`;
    const body = $("owner-keys-body");
    body.textContent = "";
    for (const k of keys) {
      const tr = el("tr", { "data-prefix": k.prefix, "data-status": k.status });
      const link = el("a", { href: `#${keyHash(k.environment, k.prefix)}`, className: "key-link" }, el("code", { textContent: k.prefix }));
      const prefix = el("td", { className: "prefix" }, link);
      if (k.default) prefix.append(" ", el("span", { className: "badge", textContent: "default" }));
      if (k.imported) prefix.append(" ", importedBadge());
      tr.append(prefix,
        el("td", { textContent: k.environment }),
        el("td", { textContent: k.name || "" }),
        el("td", { textContent: typeText(k) }),
        statusCell(k),
        timeCell(k.expires_at, "never"));
      const labels = ["Key", "Environment", "Name", "Type", "Status", "Expires"];
      [...tr.children].forEach((td, i) => { td.dataset.label = labels[i]; });
      body.append(tr);
    }
    $("owner-empty").hidden = keys.length > 0 || !!unavailable;
    const more = $("owner-more");
    more.hidden = !next && !unavailable;
    more.textContent = unavailable || (next ? `Showing the first ${count(keys.length)} keys.` : "");
    const tools = $("owner-tools");
    tools.textContent = "";
    const revocable = keys.filter((k) => k.status !== "revoked" && k.status !== "expired" && !k.default);
    if (can("revoke_owner") && revocable.length > 0) {
      const b = el("button", { type: "button", id: "revoke-owner", className: "danger", textContent: `Revoke every key of ${owner}` });
      b.addEventListener("click", () => openRevokeOwner(owner, revocable));
      tools.append(b);
    }
  }

  // openRevokeOwner asks before revoking every key of owner at once.
  function openRevokeOwner(owner, revocable) {
    const dialog = openDialog("tpl-confirm");
    const envs = [...new Set(revocable.map((k) => k.environment))].sort();
    dialog.querySelector("h2").textContent = `Revoke every key of ${owner}?`;
    dialog.querySelector(".explain").textContent =
      `${plural(revocable.length, "key", "keys")} in ${envs.join(", ")} ${revocable.length === 1 ? "is" : "are"} revoked at once, and every request with ${revocable.length === 1 ? "it" : "them"} is refused from then on. ` +
      "Default keys are left as they are (rotate them first). Revoking cannot be undone.";
    dialog.querySelector('button[type="submit"]').textContent = "Revoke all";
    submitting(dialog, async () => {
      const res = await api("POST", `${ownerPath(owner)}/revoke`);
      await refreshKeys();
      const skipped = res.skipped_defaults || [];
      notify(`${plural(res.revoked, "key", "keys")} of ${owner} ${res.revoked === 1 ? "was" : "were"} revoked.` +
        (skipped.length ? ` Default keys left as they are (rotate them first): ${skipped.join(", ")}.` : ""));
    });
    dialog.showModal();
  }

  // ----- a key's view: details, limits and usage

  const dayMs = 86400000;
  const hourMs = 3600000;
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const windows = { 1: "second", 60: "minute", 3600: "hour", 86400: "day" };

  const count = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many}`;
  const windowText = (s) => windows[s] || `${count(s)} seconds`;

  function describeRate(r) {
    let text = `${plural(r.requests, "request", "requests")} per ${windowText(r.window_seconds)}`;
    if (r.burst) text += `, in bursts of at most ${count(r.burst)}`;
    return text;
  }

  function describeQuota(q) {
    const text = plural(q.limit, "use", "uses");
    if (!q.refill) return `${text}, never refilled`;
    return `${text}, refilled by ${count(q.refill)} each ${q.period === "month" ? "month (the 1st, 00:00 UTC)" : "day (00:00 UTC)"}`;
  }

  // showKey shows the view of the key named by prefix, read afresh.
  async function showKey(prefix) {
    const k = await api("GET", `api/keys/${encodeURIComponent(prefix)}`);
    state.key = k;
    state.owner = null;
    $("list-view").hidden = true;
    $("owner-view").hidden = true;
    $("webhooks-view").hidden = true;
    $("key-view").hidden = false;
    $("key-back").href = `#env=${encodeURIComponent(k.environment)}`;
    renderKey(k);
    $("key-heading").focus();
    if (k.status === "revoked") followReach(k);
    else leaveReach();
    await Promise.all([loadCallers(k), loadUsage(k)]);
  }

  // showList leaves a key's view for the list, with the focus on the key's
  // link.
  function showList() {
    const from = state.key;
    const fromOwner = state.owner;
    const fromHooks = !$("webhooks-view").hidden;
    state.key = null;
    state.owner = null;
    hooks.letters = null;
    $("key-view").hidden = true;
    $("owner-view").hidden = true;
    $("webhooks-view").hidden = true;
    $("list-view").hidden = false;
    if (fromHooks) {
      $("webhooks-link").focus();
      return;
    }
    // A link in a row that the list's filter or search hides cannot take
    // the focus: the keys' heading takes it instead.
    const link = (from && document.querySelector(`#keys-body tr[data-prefix="${CSS.escape(from.prefix)}"]:not([hidden]) a.key-link`)) ||
      (fromOwner && [...document.querySelectorAll("#keys-body tr:not([hidden]) a.owner-link")].find((a) => a.textContent === fromOwner.owner));
    if (link) link.focus();
    else if (fromOwner || from) $("keys-heading").focus();
  }

  function renderKey(k) {
    $("key-heading").textContent = `Key ${k.prefix}`;
    const dl = $("key-details");
    dl.textContent = "";
    const row = (name, ...value) => dl.append(el("dt", { textContent: name }), el("dd", {}, ...value));
    const time = (iso, none) => (iso
      ? el("span", {}, humanTime(iso), el("span", { className: "muted", textContent: ` · ${formatTime(iso)} UTC` }))
      : el("span", { className: "muted", textContent: none }));
    row("Key", el("code", { textContent: k.prefix }), k.default ? " " : null, k.default ? el("span", { className: "badge", textContent: "default" }) : null);
    row("Name", k.name || el("span", { className: "muted", textContent: "none" }));
    row("Type", k.type === "client" ? "publishable key (client-)" : "secret key (server-)");
    row("Environment", k.environment);
    row("Status", el("span", { className: `status status-${k.status}`, "data-status": k.status, textContent: k.status }));
    const scopes = scopesCell(k);
    row("Scopes", ...scopes.childNodes);
    row("Owner", k.owner ? ownerLink(k.owner) : el("span", { className: "muted", textContent: "nobody" }));
    row("Created", time(k.created_at, ""));
    row("Expires", time(k.expires_at, "never"));
    row("Last used", time(k.last_used_at, "never"));
    if (k.status === "expiring" && k.rotated_at) {
      row("Grace", "rotated ", humanTime(k.rotated_at), "; keeps working until ", humanTime(k.expires_at),
        el("span", { className: "muted", textContent: " (the grace period), then it expires" }));
    }
    if (k.disabled_at) row("Disabled", time(k.disabled_at, ""), " (requests with it are refused until it is enabled)");
    if (k.imported) row("Issued", importedBadge(), " before keystile, checked by its SHA-256 digest");
    const imported = $("key-imported");
    imported.textContent = "";
    imported.hidden = !k.imported;
    if (k.imported) {
      imported.append(el("strong", { textContent: "Imported — rotate to a keystile key." }),
        " This key was issued before keystile. Rotating it issues a keystile key in its place; the imported key keeps working for the grace period chosen.");
    }
    $("key-actions").textContent = "";
    actionButtons($("key-actions"), k, true);
    renderRename(k);
    renderLimits(k);
  }

  // renderLimits shows k's limits as text, and to owners the form that
  // changes them.
  function renderLimits(k) {
    const box = $("key-limits");
    box.textContent = "";
    const l = k.limits || {};
    const ips = l.allowed_ips || [];
    if (!l.rate && !l.quota && ips.length === 0) {
      box.append(el("p", { id: "no-limits", textContent: "No limits: the key may be used at any rate, with no quota, from any address." }));
    } else {
      const dl = el("dl", { className: "details", id: "limits-shown" });
      dl.append(el("dt", { textContent: "Rate" }), el("dd", { "data-limit": "rate", textContent: l.rate ? describeRate(l.rate) : "no rate limit" }));
      dl.append(el("dt", { textContent: "Quota" }), el("dd", { "data-limit": "quota", textContent: l.quota ? describeQuota(l.quota) : "no quota" }));
      if (k.type === "server") {
        const dd = el("dd", { "data-limit": "allowed_ips" });
        if (ips.length === 0) dd.append("any address");
        for (const ip of ips) dd.append(el("code", { className: "scope", textContent: ip }), " ");
        dl.append(el("dt", { textContent: "Allowed IPs" }), dd);
      }
      box.append(dl);
    }
    const edit = $("limits-edit");
    if (!canKey("set_limits", k) || k.status === "revoked") {
      edit.textContent = "";
      return;
    }
    let form = $("limits-form");
    if (!form) {
      edit.append($("tpl-limits").content.firstElementChild.cloneNode(true));
      form = $("limits-form");
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        saveLimits(form).catch(fail);
      });
      $("remove-limits").addEventListener("click", () => openRemoveLimits(state.key));
    }
    fillLimits(form, k);
  }

  // fillLimits sets the form's controls to k's limits.
  function fillLimits(form, k) {
    const l = k.limits || {};
    const e = form.elements;
    const rate = l.rate || {};
    const windowSelect = e.rate_window;
    const seconds = String(rate.window_seconds || 60);
    if (![...windowSelect.options].some((o) => o.value === seconds)) {
      windowSelect.append(el("option", { value: seconds, textContent: windowText(Number(seconds)) }));
    }
    e.rate_requests.value = rate.requests || "";
    windowSelect.value = seconds;
    e.rate_burst.value = rate.burst || "";
    const quota = l.quota || {};
    e.quota_limit.value = quota.limit || "";
    e.quota_refill.value = quota.refill || "";
    e.quota_period.value = quota.period || "";
    e.allowed_ips.value = (l.allowed_ips || []).join("\n");
    const server = k.type === "server";
    const ipField = form.querySelector('[data-for="server"]');
    ipField.hidden = !server;
    e.allowed_ips.disabled = !server;
    $("remove-limits").hidden = !l.rate && !l.quota && !(l.allowed_ips || []).length;
    clearFieldErrors(form);
  }

  // FieldError is a refusal that names one of the limits ("rate.burst",
  // "allowed_ips[2]"), shown next to its control.
  class FieldError extends Error {
    constructor(field, message) {
      super(message);
      this.field = field;
    }
  }

  // limitsField finds the field that an invalid_limits detail names.
  const limitsField = /\b(rate\.(?:requests|window_seconds|burst)|quota\.(?:limit|refill|period)|allowed_ips)(?:\[(\d+)\])?/;

  // limitsLabels name the API's limit fields as the form labels them.
  const limitsLabels = {
    "rate.requests": "Requests",
    "rate.window_seconds": "The rate's period (per)",
    "rate.burst": "Burst",
    "quota.limit": "Uses",
    "quota.refill": "Refill",
    "quota.period": "Refilled",
    "allowed_ips": "Address ranges",
  };

  // limitsText says what an invalid_limits detail refused with the
  // fields named as the form labels them ("Refill must be 0 to Uses
  // (1000)", "Address ranges, line 2, is not an address range (CIDR)").
  function limitsText(detail) {
    const text = detail.replace(new RegExp(limitsField.source, "g"), (_, field, i) =>
      (i === undefined ? limitsLabels[field] : `${limitsLabels[field]}, line ${Number(i) + 1},`));
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function clearFieldErrors(form) {
    form.querySelector(".form-error").textContent = "";
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
  }

  // showFieldError writes message next to the control of field and
  // focuses it; a field the form has no control for goes to the form's
  // error line.
  function showFieldError(form, field, message) {
    const p = form.querySelector(`.field-error[data-field="${CSS.escape(field)}"]`);
    if (!p) {
      form.querySelector(".form-error").textContent = message;
      return;
    }
    p.textContent = message;
    const control = p.parentElement.querySelector("input, select, textarea");
    control.setAttribute("aria-invalid", "true");
    control.focus();
  }

  // limitsBody reads the form into the API's limits: an empty rate or
  // quota is none at all.
  function limitsBody(form, k) {
    const e = form.elements;
    const whole = (control, field) => {
      const v = control.value.trim();
      const label = form.querySelector(`label[for="${control.id}"]`).textContent;
      if (v === "") {
        if (control.validity && control.validity.badInput) throw new FieldError(field, `${label} must be a whole number.`);
        return undefined;
      }
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new FieldError(field, `${label} must be a whole number.`);
      return n;
    };
    const body = {};
    const requests = whole(e.rate_requests, "rate.requests");
    const burst = whole(e.rate_burst, "rate.burst");
    if (requests !== undefined || burst !== undefined) {
      body.rate = { requests: requests === undefined ? 0 : requests, window_seconds: Number(e.rate_window.value) };
      if (burst !== undefined) body.rate.burst = burst;
    }
    const limit = whole(e.quota_limit, "quota.limit");
    const refill = whole(e.quota_refill, "quota.refill");
    const period = e.quota_period.value;
    if (limit !== undefined || refill !== undefined || period !== "") {
      body.quota = { limit: limit === undefined ? 0 : limit };
      if (refill !== undefined) body.quota.refill = refill;
      if (period !== "") body.quota.period = period;
    }
    if (k.type === "server") {
      const ips = e.allowed_ips.value.split("\n").map((x) => x.trim()).filter((x) => x !== "");
      if (ips.length > 0) body.allowed_ips = ips;
    }
    return body;
  }

  // putLimits sends limits for k and shows the saved key.
  async function putLimits(k, body) {
    const view = await api("PUT", `${keyPath(k)}/limits`, body);
    const i = state.keys.findIndex((x) => x.id === view.id);
    if (i >= 0) state.keys[i] = view;
    if (state.key && state.key.id === view.id) {
      state.key = view;
      renderLimits(view);
    }
    loadActivity().catch(fail);
    return view;
  }

  async function saveLimits(form) {
    const k = state.key;
    clearFieldErrors(form);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await putLimits(k, limitsBody(form, k));
      notify(`The limits of ${k.prefix} were saved.`);
    } catch (err) {
      const detail = (err.message || String(err)).replace(/^apikey: invalid limits: /, "");
      const m = err instanceof FieldError ? [null, err.field, undefined] : limitsField.exec(detail);
      if (m && err instanceof FieldError) {
        showFieldError(form, m[1], detail);
      } else if (m && (err.code === "invalid_limits" || err.code === "invalid_request")) {
        showFieldError(form, m[1], limitsText(detail));
      } else {
        form.querySelector(".form-error").textContent = detail;
      }
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      // A button disabled while it had the focus lost it.
      if (document.activeElement === document.body) $("save-limits").focus();
    }
  }

  function openRemoveLimits(k) {
    const dialog = openDialog("tpl-confirm");
    dialog.querySelector("h2").textContent = `Remove the limits of ${k.prefix}?`;
    dialog.querySelector(".explain").textContent =
      "The key may then be used at any rate, with no quota, from any address.";
    dialog.querySelector('button[type="submit"]').textContent = "Remove limits";
    submitting(dialog, async () => {
      await putLimits(k, {});
      notify(`The limits of ${k.prefix} were removed.`);
    });
    dialog.showModal();
  }

  function isoSeconds(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // loadCallers shows, for a key rotated out, who still uses it: how many
  // callers since the rotation, when it was last seen, and each caller
  // (client address and user agent), most recently seen first.
  async function loadCallers(k) {
    const box = $("key-callers");
    box.textContent = "";
    box.hidden = k.status !== "expiring";
    if (box.hidden) return;
    const heading = () => el("h3", { id: "callers-heading", textContent: "Still in use" });
    let data;
    try {
      data = await api("GET", `${keyPath(k)}/callers`);
    } catch (err) {
      if (!state.key || state.key.id !== k.id) return;
      box.textContent = "";
      box.append(heading(), err.status === 501
        ? el("p", { id: "callers-unavailable", className: "notice-box", textContent: "Callers are not available: this service's key store does not record who uses keys rotated out." })
        : el("p", { className: "error", textContent: `The callers could not be read: ${err.message}` }));
      return;
    }
    if (!state.key || state.key.id !== k.id) return; // the view moved on meanwhile
    const callers = data.callers || [];
    const n = callers.length + (data.others || 0);
    const summary = el("p", { id: "callers-summary" });
    if (n === 0 || !data.last_used_at) {
      summary.append("No caller seen since the key was rotated ", data.rotated_at ? humanTime(data.rotated_at) : "",
        ": nothing seems to use it any more. Requests show here once the service has written them (within five minutes; a minute by default).");
    } else {
      summary.append(`Still used by ${plural(n, "caller", "callers")}, last seen `, humanTime(data.last_used_at),
        ` (${plural(data.requests, "request", "requests")} since the rotation).`);
    }
    box.textContent = "";
    box.append(heading(), summary);
    if (canKey("change_grace", k)) box.append(silenceForm(k));
    if (callers.length === 0) return;
    const tbody = el("tbody");
    for (const c of callers) {
      tbody.append(el("tr", {},
        el("td", { "data-label": "Address" }, c.address ? el("code", { textContent: c.address }) : el("span", { className: "muted", textContent: "unknown" })),
        el("td", { "data-label": "User agent", className: "agent" }, c.user_agent ? c.user_agent : el("span", { className: "muted", textContent: "none" })),
        el("td", { "data-label": "Requests", className: "num", textContent: count(c.requests) }),
        el("td", { "data-label": "Last seen" }, humanTime(c.last_seen))));
    }
    box.append(el("div", { className: "table-wrap" }, el("table", { id: "callers-table", className: "callers-table" },
      el("caption", { className: "visually-hidden", textContent: "Callers still using this key, most recently seen first" }),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", textContent: "Address" }),
        el("th", { scope: "col", textContent: "User agent" }),
        el("th", { scope: "col", textContent: "Requests" }),
        el("th", { scope: "col", textContent: "Last seen" }))),
      tbody)));
    if (data.others) {
      box.append(el("p", { className: "hint", textContent: `And ${plural(data.others, "more caller", "more callers")}, not listed.` }));
    }
  }

  // ----- a revocation's reach

  // reachEvery and reachFor bound how the page follows a revocation until
  // every running validator has applied it: it reads GET
  // .../propagation every reachEvery ms for at most reachFor ms, then
  // offers a Refresh button that follows it as long again.
  const reachEvery = 1000;
  const reachFor = 30000;

  const reach = {
    key: null, // the revoked key followed, if any
    timer: 0,
    run: 0, // counts the reads started: an answer to an older one is dropped
    shown: "", // what the status says, to leave the live region alone while it says the same
  };

  // followReach shows how far the revocation of k has reached the running
  // validators, read afresh until it is confirmed, in the page's
  // propagation section (a polite live region). A key already followed
  // keeps its reads as they are.
  function followReach(k) {
    if (reach.key && reach.key.id === k.id) return;
    leaveReach();
    reach.key = k;
    $("propagation-heading").textContent = `Revocation of ${k.prefix}`;
    $("propagation").hidden = false;
    readReach(Date.now() + reachFor);
  }

  // leaveReach stops following a revocation and hides its section.
  function leaveReach() {
    clearTimeout(reach.timer);
    reach.run++;
    reach.key = null;
    reach.shown = "";
    $("propagation").hidden = true;
    $("propagation-status").textContent = "";
    $("propagation-tools").textContent = "";
  }

  // readReach reads the followed key's propagation, shows it and, unless
  // it is confirmed, reads it again in reachEvery ms while that is before
  // until; after that, a Refresh button reads it again.
  async function readReach(until) {
    const k = reach.key;
    const run = ++reach.run;
    clearTimeout(reach.timer);
    $("propagation-tools").textContent = "";
    let p;
    try {
      p = await api("GET", `${keyPath(k)}/propagation`);
    } catch (err) {
      if (run !== reach.run) return;
      if (err.status === 501) {
        showReach("unavailable", "Confirmation not available: this service's key store does not record which instances have applied a change.");
        return;
      }
      showReach(`error ${err.message}`, `How far the revocation has reached could not be read: ${err.message}`);
      reachRefresh();
      return;
    }
    if (run !== reach.run) return; // another key, or a newer read, meanwhile
    renderReach(p);
    if (p.confirmed) return;
    if (Date.now() + reachEvery > until) {
      reachRefresh();
      return;
    }
    reach.timer = setTimeout(() => readReach(until), reachEvery);
  }

  // reachRefresh offers to follow the revocation again.
  function reachRefresh() {
    const b = el("button", { type: "button", id: "propagation-refresh", textContent: "Refresh" });
    b.addEventListener("click", () => {
      readReach(Date.now() + reachFor);
      $("propagation-status").focus();
    });
    $("propagation-tools").append(b);
  }

  // renderReach says how far a revocation has reached, from p (GET
  // .../propagation): confirmed, or how many live instances have applied
  // it and how many cannot be reached.
  function renderReach(p) {
    const stopped = p.stopped ? ` (${plural(p.stopped, "stopped instance", "stopped instances")} not counted)` : "";
    if (p.confirmed) {
      const at = p.confirmed_by || p.checked_at;
      const none = p.live === 0 ? ": no running validator reports to the key store" : "";
      showReach(`confirmed ${at} ${p.applied} ${p.live} ${p.stopped}`,
        "Revoked everywhere at ", clockTime(at), ` — ${count(p.applied)} of ${plural(p.live, "instance", "instances")}${none}${stopped}.`);
      return;
    }
    const parts = [`Reaching instances: ${count(p.applied)} of ${count(p.live)} applied${stopped}.`];
    if (p.unreachable && p.unreachable_until) {
      parts.push(` ${plural(p.unreachable, "instance", "instances")} unreachable, confirmed by `, clockTime(p.unreachable_until), " at the latest.");
    }
    showReach(`reaching ${p.applied} ${p.live} ${p.stopped} ${p.unreachable} ${p.unreachable_until}`, ...parts);
  }

  // showReach writes nodes in the propagation status, unless it already
  // says what (screen readers announce each change of a live region).
  function showReach(what, ...nodes) {
    if (reach.shown === what) return;
    reach.shown = what;
    const status = $("propagation-status");
    status.textContent = "";
    status.append(...nodes);
  }

  // clockTime shows iso as its exact time (UTC), with the words ("3
  // minutes ago") shown on hover and keyboard focus, and read by screen
  // readers with the time.
  function clockTime(iso) {
    const words = relative(iso);
    return el("time", { dateTime: iso, title: words, className: "human", tabIndex: 0 },
      el("span", { className: "rel", textContent: `${formatTime(iso)} UTC` }),
      el("span", { className: "exact", textContent: ` (${words})` }));
  }

  // silenceForm offers to end k's grace now if no caller used it for a
  // time the owner picks (POST .../end-grace-if-silent); a key still in use
  // keeps its grace, and the form says when it was last seen.
  function silenceForm(k) {
    const select = el("select", { id: "silence", name: "silent_for" },
      ...[["1h", "1 hour"], ["24h", "24 hours"], ["72h", "3 days"]].map(([value, label]) => el("option", { value, textContent: label })));
    const status = el("p", { id: "silence-status", className: "hint", role: "status", "aria-live": "polite" });
    const button = el("button", { type: "submit", id: "silence-submit", textContent: "End grace if unused" });
    const form = el("form", { id: "silence-form", className: "tools" },
      el("label", { for: "silence", textContent: "End the grace now if no caller used the key for" }), select, button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      status.textContent = "";
      button.disabled = true;
      const quiet = select.selectedOptions[0].textContent;
      try {
        await api("POST", `${keyPath(k)}/end-grace-if-silent`, { silent_for: select.value });
        await refreshKeys();
        notify(`${k.prefix} has expired: no caller used it for ${quiet}.`);
      } catch (err) {
        status.textContent = err.code === "still_in_use" ? `The grace goes on: ${err.message}.` : err.message;
      } finally {
        button.disabled = false;
      }
    });
    return el("div", {}, form, status);
  }

  // loadUsage reads k's usage of the last 30 days (UTC), page by page (at
  // most maxUsagePages), and draws it per hour for the last 24 hours and
  // per day for the last 30 days.
  async function loadUsage(k) {
    const box = $("key-usage");
    box.textContent = "";
    box.append(el("p", { className: "hint", textContent: "Loading usage…" }));
    const now = Date.now();
    const thisHour = Math.floor(now / hourMs) * hourMs;
    const today = Math.floor(now / dayMs) * dayMs;
    const hours = { start: thisHour - 23 * hourMs, step: hourMs, n: 24 };
    const days = { start: today - 29 * dayMs, step: dayMs, n: 30 };
    const q = `from=${encodeURIComponent(isoSeconds(days.start))}&to=${encodeURIComponent(isoSeconds(now))}&limit=1000`;
    let counts = [];
    let next = "";
    let pages = 0;
    try {
      do {
        const data = await api("GET", `${keyPath(k)}/usage?${q}${next ? `&after=${encodeURIComponent(next)}` : ""}`);
        counts = counts.concat(data.counts || []);
        next = data.next || "";
        pages++;
      } while (next && pages < maxUsagePages);
    } catch (err) {
      if (!state.key || state.key.id !== k.id) return;
      box.textContent = "";
      if (err.status === 501) {
        box.append(el("p", { id: "usage-unavailable", className: "notice-box", textContent: "Usage is not available: this service's key store keeps no usage counts." }));
      } else {
        box.append(el("p", { className: "error", textContent: `The usage could not be read: ${err.message}` }));
      }
      return;
    }
    if (!state.key || state.key.id !== k.id) return; // the view moved on meanwhile
    box.textContent = "";
    const hourLabel = (t) => { const d = new Date(t); return `${pad(d.getUTCHours())}:00`; };
    const dayLabel = (t) => { const d = new Date(t); return `${d.getUTCDate()} ${months[d.getUTCMonth()]}`; };
    box.append(
      usageChart({ id: "usage-hours", title: "Requests per hour, last 24 hours", unit: "Hour (UTC)", every: 6,
        buckets: bucket(counts, hours), label: hourLabel, long: (t) => `${formatTime(new Date(t).toISOString())} UTC` }),
      usageChart({ id: "usage-days", title: "Requests per day, last 30 days", unit: "Day (UTC)", every: 5,
        buckets: bucket(counts, days), label: dayLabel, long: (t) => new Date(t).toISOString().slice(0, 10) }),
    );
    if (next) {
      box.append(el("p", { className: "hint", textContent: `Only the first ${count(counts.length)} counts were read: the charts may show less than there was.` }));
    }
  }

  // bucket adds counts up into span.n buckets of span.step from
  // span.start: admitted, refused, and each refusal by its code.
  function bucket(counts, span) {
    const out = [];
    for (let i = 0; i < span.n; i++) out.push({ start: span.start + i * span.step, admitted: 0, refused: 0, codes: {} });
    for (const c of counts) {
      const i = Math.floor((new Date(c.hour).getTime() - span.start) / span.step);
      if (i < 0 || i >= span.n) continue;
      const n = Number(c.count) || 0;
      if (c.outcome === "admitted") out[i].admitted += n;
      else {
        out[i].refused += n;
        out[i].codes[c.outcome] = (out[i].codes[c.outcome] || 0) + n;
      }
    }
    return out;
  }

  // niceMax rounds n up to 1, 2 or 5 times a power of ten.
  function niceMax(n) {
    if (n <= 1) return 1;
    const p = 10 ** Math.floor(Math.log10(n));
    for (const m of [1, 2, 5, 10]) {
      if (m * p >= n) return m * p;
    }
    return 10 * p;
  }

  const svgNS = "http://www.w3.org/2000/svg";

  // svg creates an SVG element with attrs; children are nodes or strings
  // (as text).
  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, typeof v === "number" ? String(Math.round(v * 100) / 100) : v);
    for (const c of children) node.append(c);
    return node;
  }

  // usageChart draws spec.buckets as stacked bars (admitted below, refused
  // above) in an inline SVG whose title sums them up, with a summary line
  // and the numbers as a table.
  function usageChart(spec) {
    const W = 720, H = 190, left = 52, right = 8, top = 12, bottom = 26;
    const plotW = W - left - right, plotH = H - top - bottom;
    const b = spec.buckets;
    let admitted = 0, refused = 0;
    const codes = {};
    for (const x of b) {
      admitted += x.admitted;
      refused += x.refused;
      for (const [c, n] of Object.entries(x.codes)) codes[c] = (codes[c] || 0) + n;
    }
    const scale = niceMax(Math.max(...b.map((x) => x.admitted + x.refused)));
    let summary = `${spec.title}: ${plural(admitted + refused, "request", "requests")}, ${count(admitted)} admitted, ${count(refused)} refused`;
    const byCode = Object.entries(codes).sort((a, c) => c[1] - a[1]).map(([c, n]) => `${c.replace(/_/g, " ")} ${count(n)}`);
    if (byCode.length > 0) summary += ` (${byCode.join(", ")})`;
    summary += ".";

    const titleId = `${spec.id}-title`;
    const root = svg("svg", { id: spec.id, class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId,
      "data-admitted": String(admitted), "data-refused": String(refused) });
    root.append(svg("title", { id: titleId }, summary));
    for (const f of [0, 0.5, 1]) {
      const y = top + plotH * (1 - f);
      root.append(svg("line", { class: f === 0 ? "axis-line" : "grid", x1: left, x2: W - right, y1: y, y2: y }));
      root.append(svg("text", { class: "axis", x: left - 6, y: y + 4, "text-anchor": "end" }, count(scale * f)));
    }
    const slot = plotW / b.length;
    const barW = Math.max(1, slot * 0.7);
    b.forEach((x, i) => {
      const g = svg("g", { class: "bar", "data-admitted": String(x.admitted), "data-refused": String(x.refused) });
      g.append(svg("title", {}, `${spec.long(x.start)}: ${count(x.admitted)} admitted, ${count(x.refused)} refused`));
      const bx = left + i * slot;
      g.append(svg("rect", { class: "bar-hit", x: bx, y: top, width: slot, height: plotH }));
      const hA = plotH * x.admitted / scale;
      const hR = plotH * x.refused / scale;
      const x0 = bx + (slot - barW) / 2;
      if (x.admitted > 0) g.append(svg("rect", { class: "bar-admitted", x: x0, y: top + plotH - hA, width: barW, height: hA }));
      if (x.refused > 0) g.append(svg("rect", { class: "bar-refused", x: x0, y: top + plotH - hA - hR, width: barW, height: hR }));
      root.append(g);
      if (i % spec.every === 0) {
        root.append(svg("text", { class: "axis", x: bx + slot / 2, y: H - 8, "text-anchor": "middle" }, spec.label(x.start)));
      }
    });

    const legend = el("p", { className: "legend", "aria-hidden": "true" },
      el("span", { className: "swatch swatch-admitted" }), " Admitted ",
      el("span", { className: "swatch swatch-refused" }), " Refused");
    const table = el("table", { className: "usage-table" },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", textContent: spec.unit }),
        el("th", { scope: "col", textContent: "Admitted" }),
        el("th", { scope: "col", textContent: "Refused" }))));
    const tbody = el("tbody");
    for (const x of b) {
      tbody.append(el("tr", {},
        el("th", { scope: "row", textContent: spec.long(x.start) }),
        el("td", { textContent: count(x.admitted) }),
        el("td", { textContent: count(x.refused) })));
    }
    table.append(tbody);
    return el("figure", { className: "usage", "aria-labelledby": `${spec.id}-caption` },
      el("figcaption", { id: `${spec.id}-caption`, textContent: spec.title }),
      root, legend,
      el("p", { className: "summary", "data-summary": spec.id, textContent: summary }),
      el("details", {}, el("summary", { textContent: "The numbers, as a table" }), table));
  }

  // ----- webhooks: the account's endpoints and their dead letters

  // secretOverlaps are the choices of how long a replaced signing secret
  // keeps signing beside the new one (0 to 7 days, apikey.MaxSecretOverlap).
  const secretOverlaps = [
    { overlap: "0s", label: "Not at all: the old secret stops signing now" },
    { overlap: "1h", label: "1 hour" },
    { overlap: "24h", label: "24 hours" },
    { overlap: "72h", label: "3 days" },
    { overlap: "168h", label: "7 days" },
  ];

  const hooks = {
    endpoints: [],
    next: "", // cursor of the next page of endpoints, if any
    unavailable: false, // the store keeps no endpoints (501)
    letters: null, // {endpoint, list, next, types, loaded} of the endpoint whose dead letters are shown
    names: new Map(), // endpoint id -> its name in labels and headings (see endpointNames)
  };

  // endpointNames names each of endpoints for the labels of its controls
  // and the heading of its dead letters: its URL, followed by its position
  // in the list where another endpoint shows the same URL (two endpoints on
  // one host do, redacted to scheme and host), so that no two share a name.
  function endpointNames(endpoints) {
    const seen = new Map();
    for (const ep of endpoints) seen.set(ep.url, (seen.get(ep.url) || 0) + 1);
    return new Map(endpoints.map((ep, i) => [ep.id, seen.get(ep.url) > 1 ? `${ep.url} (endpoint ${i + 1})` : ep.url]));
  }

  const endpointName = (ep) => hooks.names.get(ep.id) || ep.url;

  // canHooks reports whether the actor may perform action on the
  // account's webhook endpoints now: owners, while the account is not
  // suspended. Endpoints belong to the account, not to an environment.
  const canHooks = (action) => state.actions.has(action) && state.productionActions.has(action) && !state.suspended;

  const endpointPath = (id) => `api/webhooks/${encodeURIComponent(id)}`;

  // showWebhooks shows the account's webhook endpoints.
  async function showWebhooks() {
    leaveReach();
    state.key = null;
    state.owner = null;
    hooks.letters = null;
    $("list-view").hidden = true;
    $("key-view").hidden = true;
    $("owner-view").hidden = true;
    $("webhooks-view").hidden = false;
    $("webhooks-back").href = `#env=${encodeURIComponent(state.environment)}`;
    renderLetters();
    await loadEndpoints();
    $("webhooks-heading").focus();
  }

  // loadEndpoints reads the account's endpoints, page by page (at most
  // maxPages), and shows them; a store without endpoints (501) makes the
  // view say webhooks are not available.
  async function loadEndpoints() {
    let list = [];
    let next = "";
    let pages = 0;
    hooks.unavailable = false;
    try {
      do {
        const data = await api("GET", `api/webhooks${next ? `?after=${encodeURIComponent(next)}` : ""}`);
        list = list.concat(data.endpoints || []);
        next = data.next || "";
        pages++;
      } while (next && pages < maxPages);
    } catch (err) {
      if (err.status !== 501) throw err;
      hooks.unavailable = true;
    }
    hooks.endpoints = list;
    hooks.next = next;
    hooks.names = endpointNames(list);
    renderEndpoints();
  }

  // endpointActions lists what the actor may do to endpoint ep: every
  // role reads its dead letters; owners change it.
  function endpointActions(ep) {
    const out = [{ id: "letters", label: "Dead letters", run: () => showLetters(ep) }];
    if (canHooks("update_endpoint")) out.push({ id: "edit", label: "Edit", run: () => openEndpoint(ep) });
    if (canHooks("rotate_endpoint_secret")) out.push({ id: "rotate", label: "Rotate secret", run: () => openRotateSecret(ep) });
    if (canHooks("delete_endpoint")) out.push({ id: "delete", label: "Delete", danger: true, run: () => openDeleteEndpoint(ep) });
    return out;
  }

  function renderEndpoints() {
    const role = state.session.actor.role;
    const note = $("webhooks-role-note");
    note.textContent = canHooks("create_endpoint") || hooks.unavailable ? "" : (state.suspended
      ? "The account is suspended: its webhook endpoints can be viewed, not changed."
      : `As ${role === "read-only" ? "a read-only user" : "a member"} you can view this account's webhook endpoints and their dead letters. Only owners add, change or delete endpoints and replay dead letters.`);
    note.hidden = note.textContent === "";
    $("webhooks-unavailable").hidden = !hooks.unavailable;
    $("webhooks-list").hidden = hooks.unavailable;
    tool($("webhooks-tools"), !hooks.unavailable && canHooks("create_endpoint"), "add-endpoint",
      { className: "primary", textContent: "Add endpoint" }, () => openEndpoint(null));
    const body = $("endpoints-body");
    body.textContent = "";
    for (const ep of hooks.endpoints) {
      const status = ep.enabled ? "enabled" : "disabled";
      const url = el("td", { className: "endpoint-url", "data-label": "URL" }, el("code", { textContent: ep.url }));
      // The API redacts the URL to scheme and host for those who may not
      // change endpoints; the note says so in text, so it is read out too.
      if (ep.url_redacted) url.append(el("span", { className: "muted sub url-redacted", textContent: "Path hidden: only owners see the whole URL." }));
      const events = el("td", { className: "scopes", "data-label": "Events" });
      if ((ep.actions || []).length === 0) events.append(el("span", { className: "muted", textContent: "every event" }));
      for (const a of ep.actions || []) events.append(el("code", { className: "scope", textContent: a }), " ");
      const statusTd = el("td", { className: "endpoint-status", "data-label": "Status" },
        el("span", { className: `status status-${status}`, "data-status": status, textContent: status }));
      if (!ep.enabled) statusTd.append(el("span", { className: "muted sub", textContent: "receives nothing until enabled" }));
      if (ep.previous_secret_until && new Date(ep.previous_secret_until).getTime() > Date.now()) {
        statusTd.append(el("span", { className: "muted sub" }, "previous secret signs until ", humanTime(ep.previous_secret_until)));
      }
      const actions = el("td", { className: "actions", "data-label": "Actions" });
      for (const a of endpointActions(ep)) {
        const b = el("button", { type: "button", className: a.danger ? "danger small" : "small", textContent: a.label,
          "aria-label": `${a.label} of ${endpointName(ep)}`, "data-endpoint": ep.id, "data-hook-action": a.id });
        b.addEventListener("click", a.run);
        actions.append(b, " ");
      }
      body.append(el("tr", { "data-endpoint": ep.id, "data-status": status },
        url, events,
        el("td", { "data-label": "Environment" }, ep.environment || el("span", { className: "muted", textContent: "every environment" })),
        statusTd,
        el("td", { "data-label": "Created" }, humanTime(ep.created_at)),
        actions));
    }
    $("endpoints").hidden = hooks.endpoints.length === 0;
    $("endpoints-empty").hidden = hooks.endpoints.length > 0;
    const more = $("endpoints-more");
    more.hidden = !hooks.next;
    more.textContent = hooks.next ? `Showing the first ${count(hooks.endpoints.length)} endpoints.` : "";
  }

  // eventTypes reads the event types typed into a field: names separated
  // by commas or spaces.
  const eventTypes = (s) => s.split(/[\s,]+/).filter((x) => x !== "");

  // openEndpoint asks for a new endpoint (ep null) or changes ep: its URL,
  // environment, event types and, for ep, whether it is enabled. A refusal
  // is shown at the field it names.
  function openEndpoint(ep) {
    const dialog = openDialog("tpl-endpoint", ep ? { endpoint: ep.id, action: "edit" } : undefined);
    dialog.querySelector("h2").textContent = ep ? "Edit the endpoint" : "Add a webhook endpoint";
    const form = dialog.querySelector("form");
    const e = form.elements;
    for (const env of state.environments) e.environment.append(el("option", { value: env.environment, textContent: env.environment }));
    if (ep && ep.environment && ![...e.environment.options].some((o) => o.value === ep.environment)) {
      e.environment.append(el("option", { value: ep.environment, textContent: ep.environment }));
    }
    const enabled = dialog.querySelector('[data-for="edit"]');
    enabled.hidden = !ep;
    e.enabled.disabled = !ep;
    if (ep) {
      e.url.value = ep.url;
      e.environment.value = ep.environment || "";
      e.actions.value = (ep.actions || []).join(", ");
      e.enabled.checked = ep.enabled;
    }
    dialog.querySelector('button[type="submit"]').textContent = ep ? "Save endpoint" : "Add endpoint";
    submitting(dialog, async () => {
      const url = e.url.value.trim();
      if (url === "") throw new FieldError("url", "Type the endpoint's URL, such as https://example.com/webhooks.");
      const body = { url, actions: eventTypes(e.actions.value), environment: e.environment.value };
      if (!ep) {
        const res = await api("POST", "api/webhooks", body);
        dialog.close();
        await loadEndpoints();
        notify(`The endpoint ${res.endpoint.url} was added.`);
        showEndpointSecret(res, "created");
        return false;
      }
      body.enabled = e.enabled.checked;
      const saved = await api("PUT", endpointPath(ep.id), body);
      await loadEndpoints();
      if (hooks.letters && hooks.letters.endpoint.id === saved.id) hooks.letters.endpoint = saved;
      renderLetters();
      notify(`The endpoint ${saved.url} was saved${saved.enabled ? "" : ": it is disabled and receives nothing until enabled"}.`);
      return true;
    });
    dialog.showModal();
  }

  // openRotateSecret gives ep a new signing secret, after asking how long
  // the replaced one keeps signing beside it. No choice is preselected.
  function openRotateSecret(ep) {
    const dialog = openDialog("tpl-grace", { endpoint: ep.id, action: "rotate" });
    dialog.querySelector("h2").textContent = "Rotate the signing secret";
    dialog.querySelector(".explain").textContent =
      `A new secret signs the events sent to ${ep.url} from now on. While the old one keeps signing too, each event carries both signatures, so that your receiver can switch without losing any.`;
    const fieldset = dialog.querySelector("fieldset");
    fieldset.querySelector("legend").textContent = "The old secret keeps signing";
    secretOverlaps.forEach((o, i) => {
      const id = `overlap-${i}`;
      const input = el("input", { type: "radio", name: "overlap", id, value: o.overlap, required: true });
      if (i === 0) input.autofocus = true;
      fieldset.append(el("div", { className: "choice" }, input, el("label", { for: id, textContent: o.label })));
    });
    dialog.querySelector('button[type="submit"]').textContent = "Rotate secret";
    submitting(dialog, async (form) => {
      const overlap = form.elements.overlap.value;
      if (!overlap) throw new Error("Choose how long the old secret keeps signing.");
      const res = await api("POST", `${endpointPath(ep.id)}/rotate-secret`, { overlap });
      dialog.close();
      await loadEndpoints();
      const until = res.endpoint.previous_secret_until;
      notify(`The signing secret of ${ep.url} was rotated; ${until ? `the old one keeps signing until ${formatTime(until)} UTC` : "the old one no longer signs"}.`);
      showEndpointSecret(res, "rotated");
      return false;
    });
    dialog.showModal();
  }

  // showEndpointSecret shows the signing secret of a create or rotate
  // response, {"secret": "whsec_...", "endpoint": ENDPOINT}, once, with a
  // copy button. It lives only in this dialog, which is removed when it
  // closes.
  function showEndpointSecret(res, how) {
    const dialog = openDialog("tpl-secret", { endpoint: res.endpoint.id, action: how === "rotated" ? "rotate" : "" });
    dialog.querySelector("h2").textContent = how === "rotated" ? "The new signing secret" : "The endpoint's signing secret";
    dialog.querySelector(".warning-text").textContent =
      "Copy this signing secret now and keep it secret: you will not see it again. Your receiver checks each event's signature with it.";
    dialog.querySelector('label[for="secret-value"]').textContent = "Signing secret";
    const value = dialog.querySelector("#secret-value");
    value.value = res.secret;
    value.dataset.endpoint = res.endpoint.id;
    const copyButton = dialog.querySelector("button.copy");
    copyButton.setAttribute("aria-label", "Copy the signing secret to clipboard");
    const status = dialog.querySelector(".copy-status");
    copyButton.addEventListener("click", async () => {
      status.textContent = (await copy(value)) ? "Copied to the clipboard." : "Copying failed: select the secret and copy it yourself.";
    });
    dialog.showModal();
  }

  function openDeleteEndpoint(ep) {
    const dialog = openDialog("tpl-confirm", { endpoint: ep.id, action: "delete" });
    dialog.querySelector("h2").textContent = "Delete the endpoint?";
    dialog.querySelector(".explain").textContent =
      `${ep.url} receives no event from now on (a delivery under way may still arrive). Deleting cannot be undone: to receive events there again, add it again, with a new secret.`;
    dialog.querySelector('button[type="submit"]').textContent = "Delete endpoint";
    submitting(dialog, async () => {
      await api("DELETE", endpointPath(ep.id));
      if (hooks.letters && hooks.letters.endpoint.id === ep.id) hooks.letters = null;
      await loadEndpoints();
      renderLetters();
      notify(`The endpoint ${ep.url} was deleted.`);
    });
    dialog.showModal();
  }

  // showLetters shows the dead letters of ep below the endpoints, with the
  // focus on their heading.
  async function showLetters(ep) {
    hooks.letters = { endpoint: ep, list: [], next: "" };
    renderLetters();
    $("letters-heading").focus();
    await loadLetters(ep).catch(fail);
  }

  // loadLetters reads ep's dead letters, page by page (at most maxPages);
  // each says its event's type.
  async function loadLetters(ep) {
    let list = [];
    let next = "";
    let pages = 0;
    do {
      const data = await api("GET", `${endpointPath(ep.id)}/dead-letters${next ? `?after=${encodeURIComponent(next)}` : ""}`);
      list = list.concat(data.dead_letters || []);
      next = data.next || "";
      pages++;
    } while (next && pages < maxPages);
    if (!hooks.letters || hooks.letters.endpoint.id !== ep.id) return; // another endpoint meanwhile
    hooks.letters = { endpoint: hooks.letters.endpoint, list, next, loaded: true };
    renderLetters();
  }

  // letterStates say where a dead letter stands, in words.
  const letterStates = { dead: "not delivered", replaying: "replaying", delivered: "delivered by a replay" };

  function renderLetters() {
    const box = $("dead-letters");
    const l = hooks.letters;
    box.hidden = !l;
    const tools = $("letters-tools");
    tools.textContent = "";
    $("letters-body").textContent = "";
    $("letters-empty").hidden = true;
    $("letters").hidden = true;
    if (!l) return;
    $("letters-heading").textContent = `Dead letters of ${endpointName(l.endpoint)}`;
    const refresh = el("button", { type: "button", id: "letters-refresh", textContent: "Refresh" });
    refresh.addEventListener("click", () => loadLetters(l.endpoint).then(() => notify("The dead letters were read afresh.")).catch(fail));
    tools.append(refresh);
    const dead = l.list.filter((x) => !x.state || x.state === "dead");
    if (dead.length > 1 && canHooks("replay_dead_letters")) {
      const all = el("button", { type: "button", id: "letters-replay-all", textContent: `Replay all ${count(dead.length)}` });
      all.addEventListener("click", () => replay(l.endpoint, null));
      tools.append(all);
    }
    if (!l.loaded) return;
    const body = $("letters-body");
    for (const x of l.list) {
      const st = x.state || "dead";
      const type = x.type;
      const actions = el("td", { className: "actions", "data-label": "Actions" });
      if (st === "dead" && canHooks("replay_dead_letters")) {
        const b = el("button", { type: "button", className: "small", textContent: "Replay", "aria-label": `Replay ${x.event_id}`,
          "data-event": x.event_id, "data-letter-action": "replay" });
        b.addEventListener("click", () => replay(l.endpoint, x));
        actions.append(b);
      }
      body.append(el("tr", { "data-event": x.event_id, "data-state": st },
        el("td", { "data-label": "Event" }, el("code", { textContent: x.event_id })),
        el("td", { "data-label": "Type" }, type ? el("code", { textContent: type }) : el("span", { className: "muted", textContent: "unknown" })),
        el("td", { "data-label": "Failed" }, humanTime(x.at)),
        el("td", { "data-label": "Attempts", textContent: count(x.attempts) }),
        el("td", { className: "reason", "data-label": "Last error", textContent: x.reason }),
        el("td", { "data-label": "State" }, el("span", { className: `status letter-${st}`, "data-state": st, textContent: letterStates[st] || st })),
        actions));
    }
    $("letters").hidden = l.list.length === 0;
    $("letters-empty").hidden = l.list.length > 0;
    const more = $("letters-more");
    more.hidden = !l.next;
    more.textContent = l.next ? `Showing the first ${count(l.list.length)} dead letters.` : "";
  }

  // replay re-queues the dead letter x of ep, or every one of them (x
  // null): the service sends each again, under its event id, before the
  // endpoint's next events.
  async function replay(ep, x) {
    try {
      const res = await api("POST", `${endpointPath(ep.id)}/replay`, x ? { event_id: x.event_id } : undefined);
      await loadLetters(ep);
      notify(x ? `${x.event_id} is queued to be sent to ${ep.url} again.`
        : `${plural(res.replayed, "dead letter is", "dead letters are")} queued to be sent to ${ep.url} again.`);
      $("letters-heading").focus();
    } catch (err) {
      fail(err);
    }
  }

  // route follows the location hash: a key's view, an owner's keys, the
  // webhooks, or the list.
  async function route() {
    if (new URLSearchParams(location.hash.slice(1)).has("webhooks")) {
      await showWebhooks();
      return;
    }
    const prefix = new URLSearchParams(location.hash.slice(1)).get("key");
    if (prefix) {
      await showKey(prefix);
      return;
    }
    const owner = new URLSearchParams(location.hash.slice(1)).get("owner");
    if (owner) {
      await showOwner(owner);
      return;
    }
    if (!$("key-view").hidden || !$("owner-view").hidden || !$("webhooks-view").hidden) showList();
    const env = new URLSearchParams(location.hash.slice(1)).get("env");
    if (env && env !== state.environment && state.environments.some((e) => e.environment === env)) {
      state.environment = env;
      $("environment").value = env;
      await showEnvironment();
    }
  }

  // ----- page

  async function refreshKeys() {
    await loadKeys(false);
    if (state.key) await reloadKey();
    if (state.owner) await loadOwner(state.owner.owner);
    loadActivity().catch(fail);
    loadExpiring().catch(fail);
  }

  // reloadKey reads the key whose view is shown afresh and shows it.
  async function reloadKey() {
    const k = await api("GET", keyPath(state.key));
    if (!state.key || state.key.id !== k.id) return;
    state.key = k;
    renderKey(k);
    if (k.status === "revoked") followReach(k);
    await loadCallers(k);
  }

  // tool shows the button id in box while allowed, and removes it
  // otherwise; a button already shown is kept (with the focus it may have).
  function tool(box, allowed, id, props, run) {
    const b = $(id);
    if (!allowed) {
      if (b) b.remove();
      return;
    }
    if (b) return;
    const made = el("button", { type: "button", id, ...props });
    made.addEventListener("click", run);
    box.append(made);
  }

  // renderTools shows the buttons of the page's own actions that the
  // actor may use in the environment shown.
  function renderTools() {
    tool($("key-tools"), can("create"), "create-key", { className: "primary", textContent: "Create key" }, openCreate);
    tool($("key-tools"), can("bootstrap"), "create-environment", { textContent: "Create environment" }, openEnvironment);
    // Create key stays first.
    if ($("create-key") && $("create-environment")) $("key-tools").prepend($("create-key"));
    tool($("lifetime-tools"), can("set_lifetime"), "edit-lifetime-button", { textContent: "Edit key lifetime" }, openLifetime);
    tool($("origin-tools"), can("set_origins"), "edit-origins-button", { textContent: "Edit allowed origins" }, openOrigins);
    tool($("account-tools"), !!state.session.close_account, "close-account", { className: "danger", textContent: "Close account" }, openCloseAccount);
    $("account").hidden = !state.session.close_account;
  }

  async function showEnvironment() {
    history.replaceState(null, "", `#env=${encodeURIComponent(state.environment)}`);
    renderEnvironment();
    renderTools();
    renderOrigins();
    renderLifetime();
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
      const wanted = new URLSearchParams(location.hash.slice(1)).get("key");
      const hooksWanted = new URLSearchParams(location.hash.slice(1)).has("webhooks");
      if (state.environment) await showEnvironment();
      else $("keys-empty").hidden = false;
      await loadExpiring();
      const owner = new URLSearchParams(location.hash.slice(1)).get("owner");
      if (owner) await showOwner(owner);
      if (hooksWanted) {
        history.replaceState(null, "", "#webhooks");
        await showWebhooks();
      }
      if (wanted) {
        history.replaceState(null, "", `#${keyHash(state.environment, wanted)}`);
        await showKey(wanted);
      }
    } catch (err) {
      fail(err);
    }
    window.addEventListener("hashchange", () => {
      route().catch((err) => {
        showList();
        fail(err);
      });
    });
    $("owner-search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = $("owner-search-input");
      const owner = input.value.trim();
      $("owner-search-error").textContent = "";
      input.removeAttribute("aria-invalid");
      if (owner === "") {
        $("owner-search-error").textContent = "Type an owner, such as a user or customer id.";
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      location.hash = ownerHash(owner);
    });
    $("key-search").addEventListener("input", (ev) => {
      state.search = ev.target.value.trim().toLowerCase();
      renderKeys();
    });
    $("key-filter").addEventListener("change", (ev) => {
      state.filter = ev.target.value;
      renderKeys();
    });
    $("key-sort").addEventListener("change", (ev) => {
      state.sort = ev.target.value;
      renderKeys();
    });
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
