import type { Logger } from '../src/logger.js';
import type { DistrictSettings } from '../src/districts/settings.js';
import { CleverConnector } from './clever/connector.js';
import { OneRosterConnector } from './oneroster/connector.js';
import { CanvasConnector } from './canvas/connector.js';
import { SchoologyConnector } from './schoology/connector.js';
import type { Connector } from './types.js';

export class UnsupportedProviderError extends Error {}

/** Providers whose connector exists; `district add` refuses the others up front. */
export const SUPPORTED_PROVIDERS = ['clever', 'classlink', 'canvas', 'schoology'] as const;

export function createConnector(settings: DistrictSettings, logger: Logger): Connector {
  switch (settings.provider) {
    case 'clever':
      return new CleverConnector(settings, logger);
    case 'classlink':
      return new OneRosterConnector(settings, logger);
    case 'canvas':
      return new CanvasConnector(settings, logger);
    case 'schoology':
      return new SchoologyConnector(settings, logger);
    default:
      throw new UnsupportedProviderError(`no connector for provider '${(settings as { provider: string }).provider}' (supported: ${SUPPORTED_PROVIDERS.join(', ')})`);
  }
}
