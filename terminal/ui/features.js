// Which optional parts the daemon has (devices, card terminal, reprints): read from its OpenAPI
// description, so the screen shows a panel only when the route behind it exists.
import { state } from "./state.js";

const ROUTES = {
  devices: ["get", /^\/api\/v1\/devices$/],
  card: ["post", /^\/api\/v1\/sales\/\{[^}]+\}\/payments\/card$/],
  payment: ["get", /^\/api\/v1\/payments\/\{[^}]+\}$/],
  reprint: ["post", /^\/api\/v1\/sales\/\{[^}]+\}\/receipt\/print$/],
  receiptQueue: ["get", /^\/api\/v1\/receipts\/queue$/],
  customerCapture: ["post", /^\/api\/v1\/customers$/],
};

export async function detectFeatures() {
  let paths = {};
  try {
    const response = await fetch("/openapi.json");
    if (response.ok) paths = (await response.json()).paths || {};
  } catch {
    // without the description the till still sells cash; optional panels stay hidden
  }
  const features = {};
  for (const [name, [method, pattern]] of Object.entries(ROUTES)) {
    features[name] = Object.entries(paths).some(([path, ops]) => pattern.test(path) && method in ops);
  }
  features.paths = paths;
  state.features = features;
  return features;
}

/** The concrete path of an optional route, e.g. route("post", /payments\/card$/, {sale_id}). */
export function findPath(method, pattern) {
  return Object.entries(state.features.paths || {}).find(([p, ops]) => pattern.test(p) && method in ops)?.[0];
}
