import type http from 'node:http';

export function readCookies(req: http.IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (out.has(name)) continue;
    const raw = part.slice(i + 1).trim();
    // Another app on this host may set a cookie that is not valid percent-encoding: keep it raw rather than fail every route.
    let value = raw;
    try { value = decodeURIComponent(raw); } catch { /* not ours, not encoded by us */ }
    out.set(name, value);
  }
  return out;
}

export interface CookieOptions { path: string; maxAgeSec?: number; secure: boolean; sameSite?: 'Lax' | 'None' }

/**
 * HttpOnly always. SameSite=Lax by default: Lax still sends the cookie on the
 * provider's top-level redirect back to us. SameSite=None (always with Secure,
 * which browsers require for it) for a session made inside an LMS iframe, where
 * every request to us is cross-site.
 */
export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  const sameSite = o.sameSite ?? 'Lax';
  const parts = [`${name}=${encodeURIComponent(value)}`, `Path=${o.path}`, 'HttpOnly', `SameSite=${sameSite}`];
  if (o.maxAgeSec !== undefined) parts.push(`Max-Age=${o.maxAgeSec}`);
  if (o.secure || sameSite === 'None') parts.push('Secure');
  return parts.join('; ');
}
