// The kiosk's shared state and a small publish/subscribe between its modules.

export const state = {
  store: null, // GET /api/v1/store
  features: {}, // which optional routes the daemon has (features.js)
  token: null,
  user: null, // {id, name, role}
  shift: null,
  sale: null, // the open (or just completed) sale, as the API answers it
  health: null, // GET /healthz, updated by `uplink` events
  devices: null,
};

const listeners = new Map();

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name).delete(fn);
}

export function emit(name, data) {
  for (const fn of listeners.get(name) || []) fn(data);
}
