// Drive the hub with home-assistant-js-websocket, the library Home Assistant's own frontend
// uses, through its ordinary public API only. Usage: node ha_js_client.mjs URL TOKEN
//
// Prints one JSON line of what it saw and exits 0; on any failure (or after 20 s) it prints
// {"error": ...} and exits non-zero. tests/compat/test_ha_clients.py runs it against a real hub.
import {
  callService,
  createConnection,
  createLongLivedTokenAuth,
  getConfig,
  getServices,
  getStates,
  getUser,
  subscribeEntities,
} from "home-assistant-js-websocket";
import * as haws from "home-assistant-js-websocket";

const TIMEOUT_MS = 20000;
const SWITCH = "switch.heater_power";

// The library expects a browser's WebSocket; Node 20 has one only behind a flag.
if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = (await import("ws")).WebSocket;
}

function fail(error) {
  process.stdout.write(JSON.stringify({ error: String(error?.message ?? JSON.stringify(error)) }) + "\n");
  process.exit(1);
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

// Resolves with the first value of a subscription for which `test` holds.
function first(subscribe, test) {
  let unsubscribe;
  const seen = [];
  const promise = new Promise((resolve) => {
    unsubscribe = subscribe((value) => {
      seen.push(value);
      if (test(value)) resolve(value);
    });
  });
  return { promise, seen, unsubscribe: () => unsubscribe() };
}

async function main() {
  const [url, token] = process.argv.slice(2);
  if (!url || !token) throw new Error("usage: ha_js_client.mjs URL TOKEN");
  const conn = await createConnection({ auth: createLongLivedTokenAuth(url, token) });
  const out = { ha_version: conn.haVersion };

  const states = await getStates(conn);
  out.states = states.map((s) => s.entity_id).sort();
  const before = states.find((s) => s.entity_id === SWITCH);
  if (!before) throw new Error(`${SWITCH} not in get_states`);
  out.switch_before = before.state;

  const user = await getUser(conn);
  out.user = { name: user.name, is_admin: user.is_admin, is_owner: user.is_owner };

  const config = await getConfig(conn);
  out.config = { version: config.version, components: config.components, unit_system: config.unit_system };

  const services = await getServices(conn);
  out.service_domains = Object.keys(services).sort();
  out.switch_services = Object.keys(services.switch ?? {}).sort();

  // subscribeConfig exists from 4.x on; use it when this version has it.
  if (typeof haws.subscribeConfig === "function") {
    const cfg = first((cb) => haws.subscribeConfig(conn, cb), () => true);
    out.subscribed_config_version = (await cfg.promise).version;
    cfg.unsubscribe();
  }
  if (typeof haws.subscribeServices === "function") {
    const srv = first((cb) => haws.subscribeServices(conn, cb), () => true);
    out.subscribed_service_domains = Object.keys(await srv.promise).length;
    srv.unsubscribe();
  }

  // The entity subscription must see the initial states, then the switch turning on.
  let initial = null;
  const entities = first(
    (cb) => subscribeEntities(conn, cb),
    (ents) => {
      if (initial === null) initial = ents;
      return ents[SWITCH]?.state === "on" && initial[SWITCH]?.state !== "on";
    },
  );
  // Wait for the initial snapshot before acting, so the change arrives as a diff.
  while (initial === null) await new Promise((r) => setTimeout(r, 10));
  out.subscribed_initial = Object.keys(initial).sort();
  out.subscribed_switch_initial = initial[SWITCH]?.state;

  const response = await callService(conn, "switch", "turn_on", {}, { entity_id: SWITCH });
  out.call_service_result = response;
  const seen = await entities.promise;
  out.subscribed_switch = {
    state: seen[SWITCH].state,
    last_changed: seen[SWITCH].last_changed,
    context: seen[SWITCH].context,
    attributes: seen[SWITCH].attributes,
  };
  out.subscription_updates = entities.seen.length;
  entities.unsubscribe();

  // A failing call must reject with HA's error shape.
  try {
    await callService(conn, "switch", "no_such_service", {}, { entity_id: SWITCH });
    out.unknown_service_error = null;
  } catch (err) {
    out.unknown_service_error = { code: err.code, message: err.message };
  }

  // ping through the library's own keep-alive call.
  await conn.ping();
  out.ping = true;

  conn.close();
  return out;
}

main().then(
  (out) => {
    clearTimeout(timer);
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exit(0);
  },
  (err) => fail(err),
);
