/// <reference lib="dom" />
/**
 * The dashboard's client of /api/v1: a bearer token kept in sessionStorage (not a cookie, so no other
 * site can send requests with it), JSON in and out, problems turned into errors with their detail.
 */

const TOKEN_KEY = "mqtt-proxy.token";

/** An RFC 9457 problem from the API. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** Calls the API; resolves the JSON body (undefined for 204), rejects with {@link ApiError}. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const token = savedToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const fields = (data.errors ?? []).map((e: { field: string; message: string }) =>
      `${e.field}: ${e.message}`
    );
    throw new ApiError(response.status, [data.detail ?? response.statusText, ...fields].join("; "));
  }
  return data as T;
}

/** A page of a list, as the API returns it. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Query string from the set fields. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
