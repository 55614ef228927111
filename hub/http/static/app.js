// The minimal page: onboarding, login and a live table of entities, using only the public API
// (the same calls any Home Assistant client makes). The real UI replaces it later.
"use strict";

const CLIENT_ID = `${location.origin}/`;
const STORE_KEY = "hub_tokens";
const $ = (selector) => document.querySelector(selector);
let pollTimer = null;

function showOnly(id) {
  for (const el of ["#onboarding", "#login", "#states"]) $(el).hidden = el !== id;
  $("#logout").hidden = id !== "#states";
}

function say(text) {
  $("#message").textContent = text || "";
  $("#message").hidden = !text;
}

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

async function tokenRequest(params) {
  const response = await fetch("/auth/token", { method: "POST", body: new URLSearchParams(params) });
  return jsonOrThrow(response);
}

async function exchangeCode(code) {
  saveTokens(await tokenRequest({ grant_type: "authorization_code", code, client_id: CLIENT_ID }));
}

async function accessToken() {
  const t = tokens();
  if (!t) return null;
  if (Date.now() < t.expires_at) return t.access_token;
  try {
    saveTokens(await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: CLIENT_ID }));
    return tokens().access_token;
  } catch {
    localStorage.removeItem(STORE_KEY);
    return null;
  }
}

async function api(path, options = {}) {
  const token = await accessToken();
  if (!token) throw new Error("Not logged in");
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  if (response.status === 401) {
    localStorage.removeItem(STORE_KEY);
    start();
    throw new Error("Your session ended; please log in again.");
  }
  return jsonOrThrow(response);
}

async function onboard(event) {
  event.preventDefault();
  const form = event.target;
  form.querySelector("button").disabled = true;
  try {
    const data = Object.fromEntries(new FormData(form));
    const result = await jsonOrThrow(await fetch("/api/onboarding/users", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: CLIENT_ID, name: data.name, username: data.username, password: data.password, language: navigator.language || "en" }),
    }));
    await exchangeCode(result.auth_code);
    await api("/api/onboarding/core_config", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ location_name: data.site }) });
    say("");
    showStates();
  } catch (err) {
    say(err.message);
  } finally {
    form.querySelector("button").disabled = false;
  }
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  form.querySelector("button").disabled = true;
  try {
    const flow = await jsonOrThrow(await fetch("/auth/login_flow", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: CLIENT_ID, handler: ["homeassistant", null], redirect_uri: CLIENT_ID }),
    }));
    const data = Object.fromEntries(new FormData(form));
    const step = await jsonOrThrow(await fetch(`/auth/login_flow/${flow.flow_id}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ client_id: CLIENT_ID, username: data.username, password: data.password }),
    }));
    if (step.type !== "create_entry") throw new Error("Wrong username or password.");
    await exchangeCode(step.result);
    form.reset();
    say("");
    showStates();
  } catch (err) {
    say(err.message);
  } finally {
    form.querySelector("button").disabled = false;
  }
}

async function logout() {
  const t = tokens();
  localStorage.removeItem(STORE_KEY);
  clearInterval(pollTimer);
  if (t && t.refresh_token) await tokenRequest({ action: "revoke", token: t.refresh_token }).catch(() => {});
  start();
}

function renderStates(states) {
  const rows = states
    .map((s) => ({ name: s.attributes.friendly_name || s.entity_id, state: s.state, unit: s.attributes.unit_of_measurement || "" }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const body = $("#states tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const [key, cls] of [["name", ""], ["state", "state"], ["unit", "muted"]]) {
      const td = document.createElement("td");
      td.textContent = row[key];  // textContent: entity names are data, never markup
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
  $("#updated").textContent = `${rows.length} entities · updated ${new Date().toLocaleTimeString()}`;
}

async function refresh() {
  try {
    renderStates(await api("/api/states"));
  } catch (err) {
    say(err.message);
  }
}

async function showStates() {
  showOnly("#states");
  try {
    const config = await api("/api/config");
    $("#site-name").textContent = config.location_name;
    document.title = config.location_name;
  } catch (err) {
    say(err.message);
    return;
  }
  await refresh();
  clearInterval(pollTimer);
  pollTimer = setInterval(refresh, 2000);  // polling is enough for this page
}

async function start() {
  clearInterval(pollTimer);
  $("#site-name").textContent = "Hub";
  try {
    const steps = await jsonOrThrow(await fetch("/api/onboarding"));
    if (!steps.find((s) => s.step === "user").done) return showOnly("#onboarding");
  } catch (err) {
    say(err.message);
  }
  if (await accessToken()) return showStates();
  showOnly("#login");
}

$("#onboarding").addEventListener("submit", onboard);
$("#login").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
start();
