import type { ParseArgsConfig } from 'node:util';

/** The bench district's size and seed as parseArgs options, for the bench's standalone scripts. */
export const districtOptions = {
  students: { type: 'string', default: '50000' },
  sections: { type: 'string', default: '2000' },
  'per-student': { type: 'string', default: '6' },
  schools: { type: 'string', default: '25' },
  seed: { type: 'string', default: '42' },
} satisfies NonNullable<ParseArgsConfig['options']>;
