// The minimal page: onboarding, login and a live table of entities, using only the public API
// (the same calls any Home Assistant client makes). The real web UI replaces it later.
"use strict";

const CLIENT_ID = `${location.origin}/`;
const STORE_KEY = "hub_tokens";
const POLL_MS = 2000;  // polling is enough for this page
const RETRY_MS = 3000;  // while the hub cannot be reached
const $ = (selector) => document.querySelector(selector);
let pollTimer = null;
let pollRun = 0;  // bumped when polling stops: a late answer of an older poll is dropped
let refreshing = null;  // the refresh request in flight, shared by every caller
let ownerCreated = false;  // onboarding: the owner exists, only the site name is left to save

class SessionEnded extends Error {}

function showOnly(id) {
  for (const el of ["#onboarding", "#login", "#states"]) $(el).hidden = el !== id;
  $("#logout").hidden = id !== "#states";
  if (id !== "#states") stopPolling();
}

function say(text) {
  $("#message").textContent = text || "";
  $("#message").hidden = !text;
}

function setSiteName(name) {
  $("#site-name").textContent = name;
  document.title = name;
}

// --- tokens ----------------------------------------------------------------------------------

function tokens() {
  try { return JSON.parse(localStorage.getItem(STORE_KEY)); } catch { return null; }
}

function saveTokens(data) {
  const old = tokens() || {};
  localStorage.setItem(STORE_KEY, JSON.stringify({
    access_token: data.access_token,
    refresh_token: data.refresh_token || old.refresh_token,
    expires_at: Date.now() + (data.expires_in - 30) * 1000,
  }));
}

async function jsonOrThrow(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || body.error_description || body.error || response.statusText);
  return body;
}

function tokenRequest(params) {
  return fetch("/auth/token", { method: "POST", body: new URLSearchParams(params) });
}

async function exchangeCode(code) {
  saveTokens(await jsonOrThrow(await tokenRequest({ grant_type: "authorization_code", code, client_id: CLIENT_ID })));
}

// A new access token from the refresh token; null when there is none or the hub no longer
// accepts it. A network error throws and keeps the tokens for the next try.
function refreshAccessToken() {
  const t = tokens();
  if (!t || !t.refresh_token) return Promise.resolve(null);
  refreshing ??= (async () => {
    const response = await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: CLIENT_ID });
    if (response.status === 400 || response.status === 401) return null;  // revoked or unknown
    saveTokens(await jsonOrThrow(response));
    return tokens().access_token;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

async function accessToken() {
  const t = tokens();
  if (!t) return null;
  if (t.access_token && Date.now() < t.expires_at) return t.access_token;
  return refreshAccessToken();
}

// The hub refused our tokens: back to the login form. After a log out there were none, and
// nothing needs saying.
function sessionEnded() {
  const hadSession = tokens() !== null;
  localStorage.removeItem(STORE_KEY);
  showOnly("#login");
  return new SessionEnded(hadSession ? "Your session ended; please log in again." : "");
}

// An API call with the access token; when the hub refuses it (expired early, a clock off),
// one refresh and one retry.
async function api(path, options = {}) {
  const call = (token) => fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  let token = await accessToken();
  if (!token) throw sessionEnded();
  let response = await call(token);
  if (response.status === 401) {
    token = await refreshAccessToken();
    if (!token) throw sessionEnded();
    response = await call(token);
    if (response.status === 401) throw sessionEnded();
  }
  return jsonOrThrow(response);
}

// --- forms -----------------------------------------------------------------------------------

async function submitting(form, work) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await work(Object.fromEntries(new FormData(form)));
  } catch (err) {
    say(err.message);
  } finally {
    button.disabled = false;
  }
}

function onboard(event) {
  event.preventDefault();
  return submitting(event.target, async (data) => {
    if (!ownerCreated) {  // a second try after the site name failed must not ask again
      const result = await jsonOrThrow(await fetch("/api/onboarding/users", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ client_id: CLIENT_ID, name: data.name, username: data.username, password: data.password, language: navigator.language || "en" }),
      }));
      await exchangeCode(result.auth_code);
      ownerCreated = true;
    }
    await api("/api/onboarding/core_config", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ location_name: data.site }) });
    event.target.reset();
    say("");
    await showStates();
  });
}

function login(event) {
  event.preventDefault();
  return submitting(event.target, async (data) => {
    const flow = await jsonOrThrow(await fetch("/auth/login_flow", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: CLIENT_ID, handler: ["homeassistant", null], redirect_uri: CLIENT_ID }),
    }));
    const step = await jsonOrThrow(await fetch(`/auth/login_flow/${flow.flow_id}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: CLIENT_ID, username: data.username, password: data.password }),
    }));
    if (step.type !== "create_entry") {
      event.target.elements.password.select();
      throw new Error("Wrong username or password.");
    }
    await exchangeCode(step.result);
    event.target.reset();
    say("");
    await showStates();
  });
}

async function logout() {
  const t = tokens();
  localStorage.removeItem(STORE_KEY);
  showOnly("#login");
  say("");
  if (t && t.refresh_token) await tokenRequest({ action: "revoke", token: t.refresh_token }).catch(() => {});
  start();
}

// --- the live table --------------------------------------------------------------------------

function cell(row, index) {
  return row.children[index];
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;  // textContent: names are data, never markup
}

function newRow() {
  const tr = document.createElement("tr");
  const name = document.createElement("td");
  name.append(document.createElement("span"), document.createElement("span"));
  name.lastChild.className = "entity-id";
  const state = document.createElement("td");
  state.className = "state";
  tr.append(name, state);
  return tr;
}

// Rows are updated in place (keyed by entity id), so text can be selected while values move.
function renderStates(states) {
  const body = $("#states tbody");
  const rows = new Map([...body.children].map((tr) => [tr.dataset.entityId, tr]));
  const sorted = states
    .map((s) => ({ id: s.entity_id, name: String(s.attributes.friendly_name || s.entity_id), state: String(s.state), unit: s.attributes.unit_of_measurement }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  sorted.forEach((entity, index) => {
    let tr = rows.get(entity.id);
    rows.delete(entity.id);
    if (!tr) {
      tr = newRow();
      tr.dataset.entityId = entity.id;
      // Narrow screens may break a long id after a dot or an underscore.
      const parts = entity.id.split(/(?<=[._])/);
      cell(tr, 0).lastChild.append(...parts.flatMap((part, i) => (i ? [document.createElement("wbr"), part] : [part])));
    }
    setText(cell(tr, 0).firstChild, entity.name);
    const missing = entity.state === "unknown" || entity.state === "unavailable";
    setText(cell(tr, 1), entity.unit && !missing ? `${entity.state} ${entity.unit}` : entity.state);
    cell(tr, 1).classList.toggle("missing", missing);
    if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] || null);
  });
  for (const tr of rows.values()) tr.remove();
  $("#updated").textContent = `${sorted.length} entities · updated ${new Date().toLocaleTimeString()}`;
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
  pollRun += 1;
}

async function poll(run) {
  try {
    const states = await api("/api/states");
    if (run !== pollRun) return;  // stopped meanwhile
    renderStates(states);
    say("");
  } catch (err) {
    if (err instanceof SessionEnded) return say(err.message);
    if (run === pollRun) say(`Cannot update the values: ${err.message}`);
  }
  if (run === pollRun) pollTimer = setTimeout(poll, POLL_MS, run);
}

async function showStates() {
  showOnly("#states");
  const config = await api("/api/config");
  setSiteName(config.location_name);
  stopPolling();
  await poll(pollRun);
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  stopPolling();
  setSiteName("Hub");
  try {
    const steps = await jsonOrThrow(await fetch("/api/onboarding"));
    say("");
    if (!steps.find((s) => s.step === "user").done) {
      localStorage.removeItem(STORE_KEY);  // tokens of an earlier hub at this address
      return showOnly("#onboarding");
    }
    if (await accessToken()) return await showStates();
    localStorage.removeItem(STORE_KEY);
    showOnly("#login");
  } catch (err) {
    if (err instanceof SessionEnded) return say(err.message);
    // fetch() throws a TypeError when the hub cannot be reached; the rest are the hub's answers.
    say(err instanceof TypeError ? "Cannot reach the hub. Trying again…" : `${err.message} Trying again…`);
    setTimeout(start, RETRY_MS);
  }
}

$("#onboarding").addEventListener("submit", onboard);
$("#login").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
start();
