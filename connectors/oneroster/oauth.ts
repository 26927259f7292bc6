import { createHmac, randomBytes } from 'node:crypto';
import axios from 'axios';
import { z } from 'zod';
import { ProviderError } from '../http/errors.js';

/** RFC 3986 percent-encoding, as OAuth 1.0a (RFC 5849 §3.6) requires. */
export const oauthEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The HMAC-SHA256 signature of a request (RFC 5849 §3.4, with SHA-256 as
 * OneRoster 1.1 requires): method, base URL and every query and oauth_*
 * parameter, sorted. Shared by the client and the fake server that checks it.
 */
export function oauth1Signature(method: string, url: string, oauthParams: Record<string, string>, consumerSecret: string): string {
  const u = new URL(url);
  const params: [string, string][] = [...u.searchParams.entries(), ...Object.entries(oauthParams).filter(([k]) => k !== 'oauth_signature')];
  const normalized = params.map(([k, v]) => [oauthEncode(k), oauthEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const base = [method.toUpperCase(), oauthEncode(`${u.protocol}//${u.host}${u.pathname}`), oauthEncode(normalized)].join('&');
  return createHmac('sha256', `${oauthEncode(consumerSecret)}&`).update(base).digest('base64');
}

export function oauth1Header(method: string, url: string, consumerKey: string, consumerSecret: string): string {
  const params: Record<string, string> = {
    oauth_consumer_key: consumerKey,
    oauth_nonce: randomBytes(16).toString('hex'),
    oauth_signature_method: 'HMAC-SHA256',
    oauth_timestamp: String(Math.floor(Date.now() / 1000)),
    oauth_version: '1.0',
  };
  params.oauth_signature = oauth1Signature(method, url, params, consumerSecret);
  return `OAuth ${Object.entries(params).map(([k, v]) => `${k}="${oauthEncode(v)}"`).join(', ')}`;
}

/** Parses an `Authorization: OAuth …` header into its parameters. */
export function parseOAuthHeader(header: string | undefined): Record<string, string> | null {
  if (!header?.startsWith('OAuth ')) return null;
  const out: Record<string, string> = {};
  for (const m of header.slice(6).matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]!] = decodeURIComponent(m[2]!);
  return out;
}

const TokenResponse = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().positive().optional(), token_type: z.string().optional() });

export const ONEROSTER_SCOPE = 'https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly';

/**
 * OAuth 2.0 client credentials (OneRoster 1.2): one token, fetched on first
 * use, reused while valid, renewed before it expires so a long sync never
 * sends an expired one.
 */
export class ClientCredentialsToken {
  private current?: { token: string; renewAt: number };
  private pending?: Promise<string>;
  issued = 0;

  constructor(private readonly opts: { tokenUrl: string; clientId: string; clientSecret: string; timeoutMs: number }) {}

  async get(): Promise<string> {
    if (this.current && Date.now() < this.current.renewAt) return this.current.token;
    this.pending ??= this.fetch().finally(() => { this.pending = undefined; });
    return this.pending;
  }

  private async fetch(): Promise<string> {
    const { tokenUrl, clientId, clientSecret } = this.opts;
    const response = await axios.post(tokenUrl, new URLSearchParams({ grant_type: 'client_credentials', scope: ONEROSTER_SCOPE }).toString(), {
      auth: { username: clientId, password: clientSecret },
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      timeout: this.opts.timeoutMs,
      validateStatus: () => true,
    }).catch((err: Error) => {
      throw new ProviderError(`ClassLink: token endpoint ${tokenUrl} unreachable: ${err.message}`, 'network');
    });
    if (response.status === 400 || response.status === 401 || response.status === 403) {
      throw new ProviderError(`ClassLink's token endpoint refused the client credentials (HTTP ${response.status}): check --client-id, --client-secret and --token-url`, 'auth', response.status);
    }
    if (response.status >= 500 || response.status === 429) throw new ProviderError(`ClassLink's token endpoint failed with HTTP ${response.status}`, 'server', response.status);
    const parsed = TokenResponse.safeParse(response.data);
    if (!parsed.success) throw new ProviderError(`ClassLink's token endpoint returned no usable access_token (HTTP ${response.status})`, 'malformed', response.status);
    const ttlMs = (parsed.data.expires_in ?? 3600) * 1000;
    // Renew with a margin: a minute, or half the lifetime of a short-lived token.
    this.current = { token: parsed.data.access_token, renewAt: Date.now() + ttlMs - Math.min(60000, ttlMs / 2) };
    this.issued += 1;
    return parsed.data.access_token;
  }
}
