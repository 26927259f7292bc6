import { FakeOidcProvider, type Flavor, type OidcClient } from '../../fixtures/oidc/provider.js';

// The cookie-keeping browser is shared with the LTI tests.
export { Browser, type Hop } from './browser.js';

export async function startOidcProvider(flavor: Flavor, clients: OidcClient[]): Promise<FakeOidcProvider> {
  const provider = new FakeOidcProvider(flavor, clients);
  await provider.start();
  return provider;
}

export const isCallback = (u: URL) => /^\/sso\/(clever|classlink)\/callback$/.test(u.pathname);
