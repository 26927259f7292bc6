#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npx rostersync` works straight after
// `npm ci` with no build step, and ESM-only and CommonJS dependencies load alike.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
