import { z } from 'zod';

// The two LMS platforms and their documented LTI 1.3 endpoints:
// - Canvas (Instructure-hosted): iss https://canvas.instructure.com, endpoints on
//   sso.canvaslms.com (https://developerdocs.instructure.com/services/canvas/external-tools/lti/file.lti_dev_key_config,
//   …/file.lti_launch_overview). Self-hosted Canvas has its own issuer: pass --issuer.
// - Schoology: https://developers.schoology.com/app-platform/lti-apps ("LTI 1.3
//   Support and Documentation": issuer, OIDC authorization, access token, JWKS).

export const LTI_PLATFORMS = ['canvas', 'schoology'] as const;
export type LtiPlatform = (typeof LTI_PLATFORMS)[number];
export const LtiPlatformSchema = z.enum(LTI_PLATFORMS, { error: `must be one of ${LTI_PLATFORMS.join(', ')}` });

export interface PlatformProfile {
  label: string;
  issuer: string;
  authUrl: string;
  tokenUrl: string;
  jwksUrl: string;
  /** The custom parameter the tool asks the LMS for, carrying the id the roster uses as sourcedId. */
  customKey: string;
  /** The LMS substitution variable for that id. */
  customVariable: string;
}

const SCHOOLOGY_SERVICE = 'https://lti-service.svc.schoology.com/lti-service';

export const PLATFORM_PROFILES: Record<LtiPlatform, PlatformProfile> = {
  canvas: {
    label: 'Canvas', issuer: 'https://canvas.instructure.com',
    authUrl: 'https://sso.canvaslms.com/api/lti/authorize_redirect', tokenUrl: 'https://sso.canvaslms.com/login/oauth2/token', jwksUrl: 'https://sso.canvaslms.com/api/lti/security/jwks',
    customKey: 'canvas_user_id', customVariable: '$Canvas.user.id',
  },
  schoology: {
    label: 'Schoology', issuer: 'https://schoology.schoology.com',
    authUrl: `${SCHOOLOGY_SERVICE}/authorize-redirect`, tokenUrl: `${SCHOOLOGY_SERVICE}/access-token`, jwksUrl: `${SCHOOLOGY_SERVICE}/.well-known/jwks`,
    customKey: 'schoology_uid', customVariable: '$User.id',
  },
};

/** How a launch names the account: a custom parameter equal to the sourcedId, or the SIS id. */
export type MatchRule = { kind: 'sis' } | { kind: 'custom'; key: string };

export const MatchSchema = z.string().regex(/^(sis|custom:[A-Za-z0-9_]{1,64})$/, 'must be sis or custom:<key> (letters, digits, _)')
  .transform((s): MatchRule => (s === 'sis' ? { kind: 'sis' } : { kind: 'custom', key: s.slice('custom:'.length) }));

export const formatMatch = (m: MatchRule): string => (m.kind === 'sis' ? 'sis' : `custom:${m.key}`);
export const parseMatch = (s: string): MatchRule => MatchSchema.parse(s);

/**
 * DESIGN.md: `custom:<platform key>` for a district rostered by the platform it
 * launches from (its sourcedIds are that platform's user ids); `sis` for a
 * district rostered elsewhere (Clever, ClassLink), whose accounts carry the SIS id.
 */
export function defaultMatch(platform: LtiPlatform, districtProvider: string): MatchRule {
  return districtProvider === platform ? { kind: 'custom', key: PLATFORM_PROFILES[platform].customKey } : { kind: 'sis' };
}

export interface ToolUrls { loginUrl: string; launchUrl: string; keysUrl: string }

export function toolUrls(publicUrl: string): ToolUrls {
  const base = publicUrl.replace(/\/+$/, '');
  return { loginUrl: `${base}/lti/login`, launchUrl: `${base}/lti/launch`, keysUrl: `${base}/lti/keys` };
}
