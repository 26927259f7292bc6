import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import xxhash from 'xxhash-wasm';
import type { Db } from '../../db/connection.js';
import { mix64 } from '../../connectors/http/page-origin.js';
import type { HashSet } from './record-hash.js';
import type { RunLease } from './runs.js';
import { inLeasedTransaction } from './stage.js';

// What a complete fetch made of each page a connector tagged with an origin
// (connectors/http/page-origin.ts; db/migrations/009_page_memo.ts): the
// content hashes of the batch's rows. A resync that meets the same origin,
// with every one of those rows still in the district's mirror, marks them
// seen there and moves on: the page's records are not cleaned, turned into
// COPY lines or hashed again, which is most of what a no-op resync costs
// beyond receiving the pages (issue #11).
//
// Why it is exact: a batch's rows are a function of its origin, given the
// code that makes them and the district's settings. So an origin is salted
// with both (a digest of the connectors' and the stage's source files, and
// the settings without credentials), and a memo entry is used only when the
// mirror still holds every row it names: the rows are then copied from the
// mirror exactly as if the page had been read (snapshot-mirror.ts). An entry
// from a lost mirror, an older one or a bad write is simply not used.

/** The source the rows of a page are made by, relative to this module: the connectors, record preparation, the stage's columns, the hash. */
const MAKERS = ['../../connectors', 'record-prep', 'stage-tables', 'record-hash', '../domain/model'];

let code: Promise<string | undefined> | undefined;

/** A digest of the code that turns pages into rows; undefined when it cannot be read (the memo is then not used). */
function codeDigest(): Promise<string | undefined> {
  code ??= (async () => {
    const self = fileURLToPath(import.meta.url);
    const here = path.dirname(self);
    // .ts under tsx and jest, .js when built: the same extension as this module's.
    const ext = path.extname(self);
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (p.endsWith(ext) && !p.endsWith(`.d${ext}`)) files.push(p);
      }
    };
    await walk(path.join(here, MAKERS[0]!));
    for (const m of MAKERS.slice(1)) files.push(path.join(here, `${m}${ext}`));
    files.sort();
    let text = '';
    for (const f of files) text += `${path.relative(here, f)}\n${await readFile(f, 'utf8')}\n`;
    const { h64ToString } = await xxhash();
    return h64ToString(text);
  })().catch(() => undefined);
  return code;
}

/** What an origin is salted with for a district: the code's digest and its settings (credentials left out: they change no row). */
async function saltFor(settings: object): Promise<bigint | undefined> {
  const digest = await codeDigest();
  if (digest === undefined) return undefined;
  const { credentials: _left, ...rest } = settings as Record<string, unknown>;
  const { h64 } = await xxhash();
  return h64(`${digest}\n${JSON.stringify(rest)}`);
}

/** A fetch's view of the memo: the entries it loaded, the ones it used, and the ones it made. */
export class PageMemo {
  private readonly fresh = new Map<bigint, BigUint64Array>();
  private readonly used: bigint[] = [];

  constructor(private readonly salt: bigint, private readonly known: ReadonlyMap<bigint, BigUint64Array>) {}

  /** Batches whose rows were taken from the mirror by their origin. */
  get reused(): number {
    return this.used.length;
  }

  /** An origin's key in the memo: salted, so other code or settings never meet it. */
  key(origin: bigint): bigint {
    return mix64(origin ^ this.salt);
  }

  /** Marks the rows of the batch with this key seen in the mirror, when the memo knows them and the mirror holds every one. */
  reuse(key: bigint, mirror: HashSet): boolean {
    const hashes = this.known.get(key);
    if (!hashes || !mirror.markAll(hashes)) return false;
    this.used.push(key);
    return true;
  }

  /** What the batch with this key made, read record by record. */
  remember(key: bigint, hashes: BigUint64Array): void {
    this.fresh.set(key, hashes);
  }

  /** Whether this fetch leaves the memo as it found it (every entry used, none made). */
  get unchanged(): boolean {
    return this.fresh.size === 0 && new Set(this.used).size === this.known.size;
  }

  /** The entries this fetch made, as COPY text (district, key, hashes). */
  *copyText(districtId: string): Generator<string> {
    for (const [key, hashes] of this.fresh) {
      yield `${districtId}\t${BigInt.asIntN(64, key)}\t\\\\x${Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength).toString('hex')}\n`;
    }
  }

  /** The keys of the entries this fetch used, as Postgres bigints. */
  usedKeys(): string[] {
    return this.used.map((k) => BigInt.asIntN(64, k).toString());
  }
}

/** The district's memo for a complete fetch; undefined when the code that makes rows cannot be told (none is used or kept then). */
export async function loadPageMemo(db: Db, districtId: string, settings: object): Promise<PageMemo | undefined> {
  const salt = await saltFor(settings);
  if (salt === undefined) return undefined;
  const rows = await db.selectFrom('page_memo').select(['key', 'hashes']).where('district_id', '=', districtId).execute();
  const known = new Map<bigint, BigUint64Array>();
  for (const r of rows) {
    if (r.hashes.byteLength % 8 !== 0) continue;
    // A copy: a Buffer from pg need not start on an 8-byte boundary.
    const copy = new Uint8Array(r.hashes);
    known.set(BigInt.asUintN(64, BigInt(r.key)), new BigUint64Array(copy.buffer, 0, copy.byteLength / 8));
  }
  return new PageMemo(salt, known);
}

/**
 * Keeps what this complete fetch made of its pages as the district's memo:
 * the entries it used, and the ones it made; the rest (pages no longer sent,
 * or made by other code or settings) are dropped. Fenced by the attempt.
 */
export async function savePageMemo(db: Db, lease: RunLease, districtId: string, memo: PageMemo): Promise<void> {
  if (memo.unchanged) return;
  await inLeasedTransaction(db, lease, async (client) => {
    await client.query(`DELETE FROM page_memo WHERE district_id = $1 AND key NOT IN (SELECT unnest($2::bigint[]))`, [districtId, memo.usedKeys()]);
    // The entries made are never among those used (a batch is remade only when its entry could not be used), so none is left to clash.
    await pipeline(Readable.from(memo.copyText(districtId)), client.query(copyFrom('COPY page_memo (district_id, key, hashes) FROM STDIN')));
  });
}
