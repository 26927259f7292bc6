import { z } from 'zod';

// Tuning shared by every connector; defaults suit the real providers.
const Tuning = {
  pageSize: z.number().int().positive().max(10000).optional(),
  timeoutMs: z.number().int().positive().optional(),
  retries: z.number().int().min(0).max(20).optional(),
  minRetryDelayMs: z.number().int().min(0).optional(),
};

// A URL with user:password@ would put a secret where it is logged, shown and
// stored in plaintext (and fetch refuses such URLs anyway): credentials go in
// their own flags, which are sealed at rest.
const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).refine((u) => {
  // zod runs this even when the url check above failed; that failure is the one to report.
  if (!URL.canParse(u)) return true;
  const url = new URL(u);
  return url.username === '' && url.password === '';
}, 'must not contain credentials (user:password@host): pass them with --token-file, --client-secret-file or --consumer-secret-file');

export const CleverSettings = z.object({
  provider: z.literal('clever'),
  baseUrl: HttpUrl,
  credentials: z.object({ token: z.string().min(1, 'Clever needs --token (the district token)') }),
  ...Tuning,
});

export const ClassLinkSettings = z.object({
  provider: z.literal('classlink'),
  baseUrl: HttpUrl,
  credentials: z.union([
    z.object({ clientId: z.string().min(1), clientSecret: z.string().min(1), tokenUrl: HttpUrl }),
    z.object({ consumerKey: z.string().min(1), consumerSecret: z.string().min(1) }),
  ], { error: 'ClassLink needs --client-id/--client-secret/--token-url (OneRoster 1.2) or --consumer-key/--consumer-secret (OneRoster 1.1)' }),
  /** Deltas (filter=dateLastModified>…) between full snapshots taken at least this often. */
  fullSnapshotEveryHours: z.number().positive().optional(),
  ...Tuning,
});

export const CanvasSettings = z.object({
  provider: z.literal('canvas'),
  baseUrl: HttpUrl,
  credentials: z.object({ token: z.string().min(1, 'Canvas needs --token (an access token)') }),
  /** The account whose roster this district is: `self` (the host's root account), a numeric id, or `sis_account_id:X`. */
  accountId: z.string().regex(/^(self|\d+|sis_account_id:.+)$/, 'account id: self, a number, or sis_account_id:<id>').default('self'),
  ...Tuning,
});

export const SchoologySettings = z.object({
  provider: z.literal('schoology'),
  baseUrl: HttpUrl,
  credentials: z.object({ consumerKey: z.string().min(1), consumerSecret: z.string().min(1) }, { error: 'Schoology needs --consumer-key and --consumer-secret' }),
  signatureMethod: z.enum(['HMAC-SHA1', 'PLAINTEXT'], { error: 'signature method: HMAC-SHA1 or PLAINTEXT' }).default('HMAC-SHA1'),
  ...Tuning,
});

export const DistrictSettings = z.discriminatedUnion('provider', [CleverSettings, ClassLinkSettings, CanvasSettings, SchoologySettings]);
export type DistrictSettings = z.infer<typeof DistrictSettings>;
export type CleverSettings = z.infer<typeof CleverSettings>;
export type ClassLinkSettings = z.infer<typeof ClassLinkSettings>;
export type CanvasSettings = z.infer<typeof CanvasSettings>;
export type SchoologySettings = z.infer<typeof SchoologySettings>;

/** Settings with every credential replaced, for output and logs. */
export function redactSettings(settings: DistrictSettings): Record<string, unknown> {
  const credentials = Object.fromEntries(
    Object.entries(settings.credentials).map(([k, v]) => [k, /url$/i.test(k) ? v : '[redacted]']),
  );
  return { ...settings, credentials };
}
