import { createHmac, randomBytes } from 'node:crypto';

// OAuth 1.0a request signing (RFC 5849), shared by OneRoster 1.1 (HMAC-SHA256,
// as 1EdTech's OneRoster 1.1 security section requires) and Schoology
// (two-legged HMAC-SHA1 or PLAINTEXT, realm "Schoology API", empty oauth_token:
// https://developers.schoology.com/api-documentation/authentication).

export type OAuth1Method = 'HMAC-SHA256' | 'HMAC-SHA1' | 'PLAINTEXT';

/** RFC 3986 percent-encoding, as OAuth 1.0a (RFC 5849 §3.6) requires. */
export const oauthEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** RFC 5849 §3.4.1: method, base URL and every query and oauth_* parameter (realm and the signature excepted), sorted. */
export function oauth1BaseString(method: string, url: string, oauthParams: Record<string, string>): string {
  const u = new URL(url);
  const params: [string, string][] = [...u.searchParams.entries(), ...Object.entries(oauthParams).filter(([k]) => k !== 'oauth_signature' && k !== 'realm')];
  const normalized = params.map(([k, v]) => [oauthEncode(k), oauthEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
  // §3.4.1.2: scheme and host lower case, default ports dropped (URL does both).
  return [method.toUpperCase(), oauthEncode(`${u.protocol}//${u.host}${u.pathname}`), oauthEncode(normalized)].join('&');
}

/**
 * The request's signature. Two-legged: there is no token secret, so the key is
 * the encoded consumer secret and an empty token secret (§3.4.2, §3.4.4).
 * The method is the one named in oauthParams (HMAC-SHA256 when absent).
 */
export function oauth1Signature(method: string, url: string, oauthParams: Record<string, string>, consumerSecret: string): string {
  const key = `${oauthEncode(consumerSecret)}&`;
  const signatureMethod = (oauthParams.oauth_signature_method ?? 'HMAC-SHA256') as OAuth1Method;
  if (signatureMethod === 'PLAINTEXT') return key;
  const algorithm = signatureMethod === 'HMAC-SHA1' ? 'sha1' : 'sha256';
  return createHmac(algorithm, key).update(oauth1BaseString(method, url, oauthParams)).digest('base64');
}

export interface OAuth1Options {
  signatureMethod?: OAuth1Method;
  /** Sent in the header, never signed (Schoology: "Schoology API"). */
  realm?: string;
  /** Schoology's two-legged requests carry an empty oauth_token. */
  token?: string;
}

/** A fresh Authorization header: a new nonce and timestamp every call, so every retry and redirect is signed anew. */
export function oauth1Header(method: string, url: string, consumerKey: string, consumerSecret: string, options: OAuth1Options = {}): string {
  const params: Record<string, string> = {
    oauth_consumer_key: consumerKey,
    oauth_nonce: randomBytes(16).toString('hex'),
    oauth_signature_method: options.signatureMethod ?? 'HMAC-SHA256',
    oauth_timestamp: String(Math.floor(Date.now() / 1000)),
    ...(options.token !== undefined ? { oauth_token: options.token } : {}),
    oauth_version: '1.0',
  };
  params.oauth_signature = oauth1Signature(method, url, params, consumerSecret);
  const parts = Object.entries(params).map(([k, v]) => `${k}="${oauthEncode(v)}"`);
  if (options.realm !== undefined) parts.unshift(`realm="${oauthEncode(options.realm)}"`);
  return `OAuth ${parts.join(', ')}`;
}

/** Parses an `Authorization: OAuth …` header into its parameters. */
export function parseOAuthHeader(header: string | undefined): Record<string, string> | null {
  if (!header?.startsWith('OAuth ')) return null;
  const out: Record<string, string> = {};
  for (const m of header.slice(6).matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]!] = decodeURIComponent(m[2]!);
  return out;
}
