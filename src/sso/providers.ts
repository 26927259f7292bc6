import { z } from 'zod';

// The two OpenID providers and what differs between them. Sources:
// - Clever: https://dev.clever.com/docs/oidc-implementation (id_token claims,
//   `district` = the district's Clever id, `sub` = Data API v3 user id),
//   https://dev.clever.com/docs/the-userinfo-endpoint; token endpoint with HTTP
//   Basic client authentication; `district_id` on the authorize URL skips the
//   district picker.
// - ClassLink: https://developer.classlink.com/docs/accessing-user-data-1
//   (`GET https://nodeapi.classlink.com/v2/my/info` with the access token returns
//   UserId, TenantId, SourcedId, Role…; TenantId identifies the district);
//   client secret in the POST body (client_secret_post).

export const SSO_PROVIDERS = ['clever', 'classlink'] as const;
export type SsoProvider = (typeof SSO_PROVIDERS)[number];
export const SsoProviderSchema = z.enum(SSO_PROVIDERS, { error: `must be one of ${SSO_PROVIDERS.join(', ')}` });

export interface ProviderProfile {
  label: string;
  defaultIssuer: string;
  defaultApiUrl: string;
  tokenAuth: 'client_secret_basic' | 'client_secret_post';
  scope: string;
}

export const PROFILES: Record<SsoProvider, ProviderProfile> = {
  clever: { label: 'Clever', defaultIssuer: 'https://clever.com', defaultApiUrl: 'https://api.clever.com', tokenAuth: 'client_secret_basic', scope: 'openid' },
  classlink: { label: 'ClassLink', defaultIssuer: 'https://launchpad.classlink.com', defaultApiUrl: 'https://nodeapi.classlink.com', tokenAuth: 'client_secret_post', scope: 'openid profile' },
};

/** Plain http is for loopback test issuers only; every real issuer is https. */
export function isLoopbackHttp(url: URL): boolean {
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

export const IssuerUrl = z.url({ error: 'must be a URL' }).refine((s) => {
  const u = new URL(s);
  return u.protocol === 'https:' || isLoopbackHttp(u);
}, 'must be https (http only for a loopback test issuer)');

export function redirectUri(publicUrl: string, provider: SsoProvider): string {
  return `${publicUrl.replace(/\/+$/, '')}/sso/${provider}/callback`;
}
