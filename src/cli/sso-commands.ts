import { Option, type Command } from 'commander';
import { z } from 'zod';
import { LtiPlatformSchema, MatchSchema, PLATFORM_PROFILES } from '../lti/platforms.js';
import { LtiConfigError, listPlatforms, planAddPlatform, platformView, savePlatform } from '../lti/registry.js';
import { SecretBox } from '../secrets/secret-box.js';
import { bindingView, listBindings, setProvider, SsoConfigError } from '../sso/config-store.js';
import { IssuerUrl, SsoProviderSchema } from '../sso/providers.js';
import { run } from './command.js';
import { DistrictId, UsageError, parseFlags } from './flags.js';
import { formatTable } from './output.js';

const SsoSetFlags = z.object({
  provider: SsoProviderSchema,
  clientId: z.string({ error: 'is required' }).min(1, 'is required'),
  clientSecret: z.string({ error: 'is required' }).min(1, 'is required'),
  tenant: z.string({ error: 'is required' }).min(1, 'is required'),
  issuer: IssuerUrl.optional(),
  apiUrl: IssuerUrl.optional(),
  jit: z.boolean().optional(),
});

const LtiAddFlags = z.object({
  platform: LtiPlatformSchema,
  clientId: z.string({ error: 'is required' }).min(1, 'is required').max(255),
  deploymentId: z.array(z.string().min(1).max(255)).min(1, 'give at least one (repeat --deployment-id for several)'),
  issuer: z.string().min(1).optional(),
  authUrl: IssuerUrl.optional(),
  tokenUrl: IssuerUrl.optional(),
  jwksUrl: IssuerUrl.optional(),
  match: MatchSchema.optional(),
});

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `sso set` / `sso list` (issue #9); `lti add-platform` / `lti list` / `lti roster` (issue #10). */
export function registerSsoCommands(program: Command): void {
  const json = () => new Option('--json', 'machine-readable output');
  const sso = program.command('sso').description('OpenID Connect sign-in (Clever, ClassLink)');

  sso.command('set <district>').description('set up Clever or ClassLink sign-in for a district')
    .requiredOption('--provider <provider>', 'clever | classlink')
    .requiredOption('--client-id <id>', "the provider app's client id (one app serves many districts)")
    .requiredOption('--client-secret <secret>', "the provider app's client secret (stored encrypted; never printed)")
    .requiredOption('--tenant <id>', "the district's id at the provider (Clever district id; ClassLink TenantId)")
    .option('--issuer <url>', 'OpenID issuer (default https://clever.com / https://launchpad.classlink.com)')
    .option('--api-url <url>', 'provider API root (default https://api.clever.com / https://nodeapi.classlink.com)')
    .option('--jit', 'create an ACTIVE account for an unrostered user of the tenant at sign-in')
    .option('--no-jit', 'only rostered accounts sign in (default)')
    .addOption(json())
    .action(run(async (ctx, out, id: string, opts: Record<string, unknown>) => {
      const districtId = parseFlags(DistrictId, id);
      const f = parseFlags(SsoSetFlags, opts);
      try {
        const saved = await setProvider(ctx.db, SecretBox.fromConfig(ctx.config), { districtId, ...f });
        const view = bindingView(saved, ctx.config.PUBLIC_URL);
        out.result(view, () => `${view.provider} sign-in set for ${view.districtId} (tenant ${view.tenant}${view.jit ? ', JIT accounts on' : ''}); register this redirect URI at the provider: ${view.redirectUri}`);
      } catch (err) {
        if (err instanceof SsoConfigError) throw new UsageError(err.message);
        throw err;
      }
    }));

  sso.command('list [district]').description('list sign-in settings (secrets never shown)').addOption(json())
    .action(run(async (ctx, out, districtId: string | undefined) => {
      const rows = (await listBindings(ctx.db, districtId)).map((b) => bindingView(b, ctx.config.PUBLIC_URL));
      out.result(rows, () => (rows.length ? formatTable(rows, ['districtId', 'provider', 'tenant', 'clientId', 'issuer', 'jit', 'redirectUri']) : 'no sign-in configured'));
    }));

  const lti = program.command('lti').description('LTI 1.3 launches from Canvas and Schoology');

  lti.command('add-platform <district>').description('register a Canvas or Schoology LTI 1.3 tool installation (deployments) for a district')
    .requiredOption('--platform <platform>', 'canvas | schoology')
    .requiredOption('--client-id <id>', "the LMS's client id for the tool (Canvas developer key id; Schoology app client id)")
    .option('--deployment-id <id>', 'a deployment id of the tool in the LMS (repeat for several); the district gets exactly these', collect)
    .option('--issuer <iss>', 'platform issuer (default https://canvas.instructure.com / https://schoology.schoology.com)')
    .option('--auth-url <url>', "the platform's OIDC authorization endpoint")
    .option('--token-url <url>', "the platform's OAuth 2 token endpoint")
    .option('--jwks-url <url>', "the platform's JWKS URL")
    .option('--match <rule>', 'sis | custom:<key> (default custom:canvas_user_id / custom:schoology_uid for a district rostered by that platform, else sis)')
    .addOption(json())
    .action(run(async (ctx, out, id: string, opts: Record<string, unknown>) => {
      const districtId = parseFlags(DistrictId, id);
      const f = parseFlags(LtiAddFlags, { ...opts, deploymentId: opts.deploymentId ?? [] });
      const secret = ctx.config.SESSION_SECRET;
      if (!secret) throw new UsageError('SESSION_SECRET must be set (the same value as for `serve`): it keys the LTI store that holds the tool\'s signing keys');
      // ltijs loads only for the commands that use it (see `serve` in main.ts).
      const { LtiStoreError, startLtijs, stopLtijs } = await import('../lti/ltijs.js');
      try {
        const input = { districtId, platform: f.platform, clientId: f.clientId, deploymentIds: [...new Set(f.deploymentId)], issuer: f.issuer, authUrl: f.authUrl, tokenUrl: f.tokenUrl, jwksUrl: f.jwksUrl, match: f.match };
        const plan = await planAddPlatform(ctx.db, input);
        // ltijs generates the tool's 4096-bit key pair for a new (issuer, client id): seconds of CPU, so here and not on a request.
        const store = await startLtijs({ db: ctx.db, databaseUrl: ctx.config.DATABASE_URL, sessionSecret: secret, logger: ctx.logger });
        try {
          const r = plan.registration;
          await store.registerPlatform({
            url: r.issuer, name: `${PLATFORM_PROFILES[r.platform].label} ${r.issuer}`, clientId: r.clientId,
            authenticationEndpoint: r.authUrl, accesstokenEndpoint: r.tokenUrl, authConfig: { method: 'JWK_SET', key: r.jwksUrl },
          });
        } finally {
          await stopLtijs(store);
        }
        const saved = await savePlatform(ctx.db, { districtId, deploymentIds: input.deploymentIds, match: plan.match, registration: plan.registration });
        const view = platformView(saved, ctx.config.PUBLIC_URL);
        out.result(view, () => [
          `${PLATFORM_PROFILES[view.platform].label} launches set for ${view.districtId} (deployments ${view.deploymentIds.join(', ')}; match ${view.match}). Give the LMS administrator:`,
          `  OpenID Connect login (initiation) URL: ${view.loginUrl}`,
          `  target link URI and redirect URI:     ${view.launchUrl}`,
          `  public JWK set URL:                   ${view.keysUrl}`,
          ...(plan.match.kind === 'custom' ? [`  custom field:                         ${plan.match.key}=${PLATFORM_PROFILES[view.platform].customVariable}`] : []),
        ].join('\n'));
      } catch (err) {
        if (err instanceof LtiConfigError) throw new UsageError(err.message);
        if (err instanceof LtiStoreError) throw new Error(err.message);
        throw err;
      }
    }));

  lti.command('list [district]').description('list LTI platform registrations and deployments').addOption(json())
    .action(run(async (ctx, out, districtId: string | undefined) => {
      const rows = (await listPlatforms(ctx.db, districtId)).map((p) => platformView(p, ctx.config.PUBLIC_URL));
      out.result(rows, () => (rows.length ? formatTable(rows.map((r) => ({ ...r, deploymentIds: r.deploymentIds.join(',') })), ['districtId', 'platform', 'issuer', 'clientId', 'deploymentIds', 'match']) : 'no LTI platform configured'));
    }));

  lti.command('roster <district> <contextId>').description("a course's membership from the LMS (LTI Names and Roles), tied to rostered accounts").addOption(json())
    .action(run(async (ctx, out, id: string, contextId: string) => {
      const districtId = parseFlags(DistrictId, id);
      const { NrpsError, fetchContextRoster } = await import('../lti/nrps.js');
      try {
        const roster = await fetchContextRoster(ctx, districtId, contextId);
        out.result(roster, () => `${roster.title ?? roster.contextId}: ${roster.members.length} member(s)\n${formatTable(roster.members.map((m) => ({ ...m, roles: m.roles.map((r) => r.split('#').pop()).join(','), account: m.sourcedId ?? '(not rostered)' })), ['userId', 'name', 'roles', 'status', 'account'])}`);
      } catch (err) {
        if (err instanceof NrpsError) throw new Error(err.message);
        throw err;
      }
    }));
}
