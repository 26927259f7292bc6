import axios from 'axios';
import { z } from 'zod';
import { ProviderError } from '../http/errors.js';

// OAuth 1.0a signing lives in connectors/http/oauth1.ts (shared with Schoology).
export { oauth1Header, oauth1Signature, oauthEncode, parseOAuthHeader } from '../http/oauth1.js';

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
  /** The token endpoint refused our client: asking again this run would only be refused again (and may lock the client out). */
  private refused?: ProviderError;
  issued = 0;

  constructor(private readonly opts: { tokenUrl: string; clientId: string; clientSecret: string; timeoutMs: number }) {}

  async get(): Promise<string> {
    if (this.refused) throw this.refused;
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
      // A total deadline (a dripping token endpoint), and no redirect that would carry the client's credentials elsewhere.
      signal: AbortSignal.timeout(this.opts.timeoutMs),
      maxRedirects: 0,
      validateStatus: () => true,
    }).catch((err: Error) => {
      throw new ProviderError(`ClassLink: token endpoint ${tokenUrl} unreachable: ${err.message}`, 'network');
    });
    if (refusesClient(response.status)) {
      // RFC 6749 §5.2: invalid_client is 401 (or 400); remembered for this token's life, which is one run.
      this.refused = new ProviderError(`ClassLink's token endpoint refused the client credentials (HTTP ${response.status}): check --client-id, --client-secret and --token-url`, 'auth', response.status);
      throw this.refused;
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

/**
 * Whether the token endpoint refused who we are, not a passing fault: 401/403,
 * or 400, which RFC 6749 §5.2 uses for every client-credentials error
 * (invalid_request, invalid_client, invalid_grant, unauthorized_client,
 * unsupported_grant_type, invalid_scope): none of them heals within a run.
 */
function refusesClient(status: number): boolean {
  return status === 400 || status === 401 || status === 403;
}
