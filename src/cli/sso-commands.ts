import { Option, type Command } from 'commander';
import { z } from 'zod';
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

/** `sso set` / `sso list` (issue #9); `lti …` comes with issue #10. */
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
}
