// The daemon's HTTP API: JSON, the session token, retry-safe requests, errors a cashier reads.
import { state } from "./state.js";

export const API = "/api/v1";

/** A refusal from the till ({"error": {code, message}}) or a failure to reach it. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const NO_ANSWER =
  "The till service is not answering. Wait a moment and try again; it restarts by itself.";

/** A fresh Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the generic message
  }
  if (body && body.error) return new ApiError(response.status, body.error.code, body.error.message);
  return new ApiError(
    response.status,
    `http_${response.status}`,
    `Something went wrong (HTTP ${response.status}). Try again; if it happens again, call a manager.`,
  );
}

/**
 * One request. Writes carry an Idempotency-Key, so a request whose answer was lost
 * is sent again with the same key and the till acts only once.
 */
export async function call(method, path, { body, key, managerPin, retries } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (managerPin) headers["X-Manager-Pin"] = managerPin;
  const writes = method !== "GET";
  if (writes && key !== null) headers["Idempotency-Key"] = key || newKey();
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  let left = retries ?? (writes && key !== null ? 2 : 1);
  for (;;) {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      if (left-- > 0) {
        await new Promise((r) => setTimeout(r, 400));
        continue;
      }
      throw new ApiError(0, "no_answer", NO_ANSWER);
    }
    if (response.status === 204) return null;
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }
}

export const get = (path) => call("GET", path);
export const post = (path, body, opts = {}) => call("POST", path, { ...opts, body });
export const patch = (path, body, opts = {}) => call("PATCH", path, { ...opts, body });
export const put = (path, body, opts = {}) => call("PUT", path, { ...opts, body });
export const del = (path, opts = {}) => call("DELETE", path, opts);
