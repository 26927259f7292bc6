import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { poolOf, type Db } from '../../db/connection.js';
import { mix64, xxhashApi } from '../../connectors/http/page-origin.js';
import { hashText, type HashSet } from './record-hash.js';
import type { RunLease } from './runs.js';
import { inLeasedTransaction } from './stage.js';
import { binaryCopySink, copyToSettled } from './copy-binary.js';

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
// with both (a digest of the connectors' and the stage's source files and
// the locked dependencies, taken when the module loads, and the settings
// without credentials). An entry is used when the mirror holds every row it
// names: checked against the mirror's hashes before use, or, for an entry
// the quiet mirror's own fetch made or used ("backed"), as soon as they have
// loaded (a failed check forgets the memo and fetches again). The rows are
// then copied from the mirror exactly as if the page had been read
// (snapshot-mirror.ts). A fetch that meets every backed entry of a fetch
// that tagged every batch, and nothing else, is the mirror's snapshot row
// for row: it needs no check (tookEveryBacked). An entry from a lost
// mirror, an older one or a bad write is never used unchecked.

/**
 * The source the rows of a page are made by, relative to this module: the
 * connectors, record preparation, the stage's columns, the staging of a
 * batch, the hash and the model; and the locked dependency versions (zod
 * reads every record).
 */
const MAKERS = ['../../connectors', 'record-prep', 'stage-tables', 'stage', 'record-hash', '../domain/model'];

/**
 * A digest of the code that turns pages into rows, read when this module is
 * loaded, so it is the code this process runs even if a deploy rewrites the
 * files later; undefined when it cannot be read (the memo is then not used).
 */
const CODE_DIGEST: string | undefined = (() => {
  try {
    const self = fileURLToPath(import.meta.url);
    const here = path.dirname(self);
    // .ts under tsx and jest, .js when built: the same extension as this module's.
    const ext = path.extname(self);
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(ext) && !p.endsWith(`.d${ext}`)) files.push(p);
      }
    };
    walk(path.join(here, MAKERS[0]!));
    for (const m of MAKERS.slice(1)) files.push(path.join(here, `${m}${ext}`));
    // The package root: the nearest directory up with a package.json (dist/ has none).
    let root = here;
    while (!existsSync(path.join(root, 'package.json')) && path.dirname(root) !== root) root = path.dirname(root);
    const lock = path.join(root, 'package-lock.json');
    files.sort();
    if (existsSync(lock)) files.push(lock);
    const digest = createHash('sha256');
    for (const f of files) digest.update(`${path.relative(here, f)}\n`).update(readFileSync(f)).update('\n');
    return digest.digest('hex');
  } catch {
    return undefined;
  }
})();

/** What an origin is salted with for a district: the code's digest and its settings (credentials left out: they change no row). */
async function saltFor(settings: object): Promise<bigint | undefined> {
  const digest = CODE_DIGEST;
  if (digest === undefined) return undefined;
  const { credentials: _left, ...rest } = settings as Record<string, unknown>;
  const { h64 } = await xxhashApi();
  return h64(`${digest}\n${JSON.stringify(rest)}`);
}

/**
 * A batch's rows as one number, equal for the same rows in the same order:
 * how a fetch tells two batches of one origin apart. A cheap check, not a
 * digest: when it misses a difference, the entry is written as it was before
 * this check existed.
 */
function fingerprint(hashes: BigUint64Array): number {
  const words = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
  let print = hashes.length | 0;
  for (let i = 0; i < words.length; i += 1) print = (Math.imul(print, 0x01000193) ^ words[i]!) | 0;
  return print;
}

/** What a fetch makes is written once this much has gathered: the worker never holds a district's worth (56 MB at a million students). */
const WRITE_BYTES = 4 << 20;

/** A fetch's view of the memo: the entries it loaded, the ones it used, and the ones it made (written as they gather). */
export class PageMemo {
  private readonly used: bigint[] = [];
  private readonly made = new Set<bigint>();
  /** Backed entries taken before the mirror's hashes had loaded: marked seen (and checked) once they have. */
  private readonly deferred: bigint[] = [];
  /** Made and not yet written, by key: an origin met twice in one fetch (a list the provider repeated) is written once. */
  private pending = new Map<bigint, BigUint64Array>();
  private pendingBytes = 0;
  /** A batch of this fetch had no origin: its entries do not name its whole snapshot. */
  private untagged = false;
  /** Every key this fetch met (taken, reused or made), with its rows' fingerprint once known. */
  private readonly met = new Map<bigint, number | undefined>();
  /**
   * Keys this fetch met for two different batches: a connector folded too
   * little into their origin. Such an entry would hand one batch's rows to
   * the other, so it is never written, and dropped if it was.
   */
  private readonly conflicted = new Set<bigint>();
  private writing: Promise<void> = Promise.resolve();
  private writeError: unknown;

  constructor(
    private readonly db: Db, private readonly lease: RunLease, private readonly districtId: string, private readonly salt: bigint,
    private readonly known: ReadonlyMap<bigint, { hashes: BigUint64Array; backed: boolean; covering: boolean }>,
  ) {}

  /** Batches whose rows were taken from the mirror by their origin. */
  get reused(): number {
    return this.used.length + this.deferred.length;
  }

  /** An origin's key in the memo: salted, so other code or settings never meet it. */
  key(origin: bigint): bigint {
    return mix64(origin ^ this.salt);
  }

  /**
   * Takes the batch with this key without the mirror's hashes when its entry
   * is backed (last made or used by the fetch of the district's quiet
   * mirror, so its rows are in it): checked by `settle` once they have loaded.
   */
  takeBacked(key: bigint): boolean {
    if (this.met.has(key) || !this.known.get(key)?.backed) return false;
    this.met.set(key, undefined);
    this.deferred.push(key);
    return true;
  }

  /** Marks the rows of the batch with this key seen in the mirror, when the memo knows them and the mirror holds every one. */
  reuse(key: bigint, mirror: HashSet): boolean {
    const entry = this.known.get(key);
    if (this.met.has(key) || !entry || !mirror.markAll(entry.hashes)) return false;
    this.met.set(key, undefined);
    this.used.push(key);
    return true;
  }

  /** A batch without an origin came (its rows are in no entry). */
  noteUntagged(): void {
    this.untagged = true;
  }

  /** Whether any entry is backed (a fetch may then never need the mirror's hashes). */
  get hasBacked(): boolean {
    for (const e of this.known.values()) if (e.backed) return true;
    return false;
  }

  /**
   * Whether the batches taken by takeBacked are every backed entry: with no
   * other batch, the snapshot is then the quiet mirror's own, row for row
   * (its fetch made or used exactly these entries, and tagged every batch
   * it made: `covering`), and needs no hashes to be known unchanged.
   */
  tookEveryBacked(): boolean {
    const taken = new Set(this.deferred);
    let backed = 0;
    for (const [key, e] of this.known) if (e.backed) { backed += 1; if (!taken.has(key) || !e.covering) return false; }
    return taken.size === backed;
  }

  /** The rows of the batches taken by takeBacked. */
  get takenRows(): number {
    let n = 0;
    for (const key of this.deferred) n += this.known.get(key)!.hashes.length;
    return n;
  }

  /** Counts the batches taken by takeBacked as used, unchecked (tookEveryBacked says why they need no check). */
  acceptTaken(): void {
    for (const key of this.deferred.splice(0)) this.used.push(key);
  }

  /** Marks the rows of the batches taken by takeBacked seen in the mirror; false when it lacks one (their pages must be read again). */
  settle(mirror: HashSet): boolean {
    for (const key of this.deferred) if (!mirror.markAll(this.known.get(key)!.hashes)) return false;
    this.acceptTaken();
    return true;
  }

  /**
   * What the batch with this key made, read record by record. Written to the
   * memo once enough has gathered, one write in flight (the next waits for
   * it), fenced by the attempt. Entries are right whatever becomes of the
   * run (a batch's rows are a function of its origin), so they are kept if
   * it fails; only dropping the others waits for a fetch to end (savePageMemo).
   */
  async remember(key: bigint, hashes: BigUint64Array): Promise<void> {
    if (this.conflicted.has(key)) return;
    const print = fingerprint(hashes);
    const known = this.known.get(key);
    // Met before: as made then, or as the entry taken from the memo.
    const before = this.met.has(key) ? this.met.get(key) ?? (known ? fingerprint(known.hashes) : undefined) : undefined;
    if (before !== undefined && before !== print) {
      // A key met twice is never taken or reused the second time (takeBacked,
      // reuse), so its second batch comes here. If the first was taken from
      // the memo, the rows it was given may be the other batch's: the fetch
      // starts again without the memo, which then only makes entries.
      const wasTaken = this.deferred.includes(key) || this.used.includes(key);
      this.conflicted.add(key);
      this.made.delete(key);
      const used = this.used.indexOf(key);
      if (used >= 0) this.used.splice(used, 1);
      const pending = this.pending.get(key);
      if (pending) { this.pendingBytes -= pending.byteLength; this.pending.delete(key); }
      if (wasTaken) throw new MemoMismatchError('two different batches of this fetch share an origin, and one was taken from the page memo');
      return;
    }
    this.met.set(key, print);
    this.made.add(key);
    if (!this.pending.has(key)) this.pendingBytes += hashes.byteLength;
    this.pending.set(key, hashes);
    if (this.pendingBytes >= WRITE_BYTES) await this.write();
  }

  /** Starts writing what has gathered, once the previous write is done. */
  private async write(): Promise<void> {
    await this.writing;
    if (this.writeError !== undefined) throw this.writeError;
    const entries = [...this.pending];
    this.pending = new Map();
    this.pendingBytes = 0;
    if (entries.length === 0) return;
    const keys = entries.map(([key]) => hashText(key));
    const hashes = entries.map(([, h]) => Buffer.from(h.buffer, h.byteOffset, h.byteLength));
    // An entry remade (its rows had left the mirror) replaces the one loaded.
    this.writing = inLeasedTransaction(this.db, this.lease, async (client) => {
      await client.query(`
        INSERT INTO page_memo (district_id, key, run_id, hashes)
        SELECT $1, k, $2, h FROM unnest($3::bigint[], $4::bytea[]) AS t(k, h)
        ON CONFLICT (district_id, key) DO UPDATE SET run_id = excluded.run_id, hashes = excluded.hashes`, [this.districtId, this.lease.runId, keys, hashes]);
    }).then(() => undefined, (err: unknown) => { this.writeError = err; });
  }

  /** Writes what is left and waits for it. */
  async written(): Promise<void> {
    await this.write();
    await this.writing;
    if (this.writeError !== undefined) throw this.writeError;
  }

  /** Whether every entry loaded was used or made again by this fetch, and none was found shared (none is left to drop). */
  get allKept(): boolean {
    if (this.conflicted.size) return false;
    const kept = new Set([...this.used, ...this.made]);
    return [...this.known.keys()].every((k) => kept.has(k));
  }

  /** Whether every batch of this fetch had an origin. */
  get covering(): boolean {
    return !this.untagged;
  }

  /** The keys of the entries this fetch used, and of those it made, as Postgres bigints. */
  keys(): { used: string[]; made: string[] } {
    const text = (ks: Iterable<bigint>) => [...new Set(ks)].filter((k) => !this.conflicted.has(k)).map(hashText);
    return { used: text(this.used), made: text(this.made) };
  }

  /** Keys found shared by two different batches in this fetch (never written). */
  get shared(): number {
    return this.conflicted.size;
  }

  /** Backed entries taken and not yet checked against the mirror. */
  get unsettled(): number {
    return this.deferred.length;
  }
}

/** The memo named rows its district's mirror lacks: the pages taken by it must be read again, without it. */
export class MemoMismatchError extends Error {}

/**
 * The district's memo for a complete fetch by the attempt holding `lease`;
 * undefined when the code that makes rows cannot be told (none is used or
 * kept then). Entries are read only with a mirror to use them against; an
 * entry is backed when it was last made or used by the fetch of
 * `quietMirror` (the district's mirror, when quiet). Read with one binary
 * COPY into one array sized beforehand (8 bytes a row: 56 MB at a million
 * students, never twice that while it loads), in one snapshot of the table.
 */
export async function loadPageMemo(db: Db, lease: RunLease, districtId: string, settings: object, mirror?: { quietMirror?: string }): Promise<PageMemo | undefined> {
  const salt = await saltFor(settings);
  if (salt === undefined) return undefined;
  // Without a mirror no entry can be used: none is read, the fetch only makes them.
  if (!mirror) return new PageMemo(db, lease, districtId, salt, new Map());
  const { quietMirror } = mirror;
  const client = await poolOf(db).connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows: [size] } = await client.query<{ bytes: string }>(
      `SELECT COALESCE(sum(octet_length(hashes)), 0)::bigint AS bytes FROM page_memo WHERE district_id = $1 AND octet_length(hashes) % 8 = 0`, [districtId]);
    const all = new BigUint64Array(Number(size?.bytes ?? 0) / 8);
    const known = new Map<bigint, { hashes: BigUint64Array; backed: boolean; covering: boolean }>();
    const backed = quietMirror === undefined ? 'false' : `run_id = ${escapeLiteral(quietMirror)}::uuid`;
    await pipeline(client.query(copyToSettled(
      `COPY (SELECT key, ${backed}, covering, hashes FROM page_memo WHERE district_id = ${escapeLiteral(districtId)} AND octet_length(hashes) % 8 = 0) TO STDOUT (FORMAT binary)`)),
      memoReader(all, known));
    await client.query('COMMIT');
    return new PageMemo(db, lease, districtId, salt, known);
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}

const escapeLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * Parses a binary COPY of (key bigint, backed boolean, covering boolean, hashes bytea) rows,
 * copying each row's hashes straight into `all` (in order) and naming them
 * by key.
 * Format: https://www.postgresql.org/docs/current/sql-copy.html (Binary Format).
 */
function memoReader(all: BigUint64Array, known: Map<bigint, { hashes: BigUint64Array; backed: boolean; covering: boolean }>): Writable {
  const bytes = new Uint8Array(all.buffer);
  let at = 0;
  let payloadLeft = 0;
  let ended = false;
  return binaryCopySink((buf, from) => {
    let i = from;
    while (!ended) {
      if (payloadLeft > 0) {
        const take = Math.min(payloadLeft, buf.length - i);
        bytes.set(buf.subarray(i, i + take), at);
        at += take;
        i += take;
        payloadLeft -= take;
        if (payloadLeft > 0) break;
        continue;
      }
      if (buf.length - i < 2) break;
      if (buf.readInt16BE(i) === -1) { ended = true; break; }
      // Field count (int16 = 4), key length (int32 = 8), key, backed length (int32 = 1), backed,
      // covering length (int32 = 1), covering, hashes length (int32).
      if (buf.length - i < 28) break;
      const key = buf.readBigUInt64BE(i + 6);
      const backed = buf[i + 18] === 1;
      const covering = buf[i + 23] === 1;
      const length = buf.readInt32BE(i + 24);
      i += 28;
      if (at + length > bytes.length) throw new Error('page memo changed while it was read');
      known.set(key, { hashes: all.subarray(at / 8, (at + length) / 8), backed, covering });
      payloadLeft = length;
    }
    return ended ? buf.length : i;
  });
}

/**
 * Ends a complete fetch's use of the memo: what it made is written, the
 * entries it used are marked as its own (they are in its snapshot, which may
 * become the mirror), and the entries it neither used nor made (pages no
 * longer sent, or made by other code or settings) are dropped. Fenced by the
 * attempt.
 */
export async function savePageMemo(db: Db, lease: RunLease, districtId: string, memo: PageMemo): Promise<void> {
  await memo.written();
  const { used, made } = memo.keys();
  const stale = !memo.allKept;
  await inLeasedTransaction(db, lease, async (client) => {
    if (stale) {
      await client.query(`DELETE FROM page_memo WHERE district_id = $1 AND key NOT IN (SELECT unnest($2::bigint[]) UNION ALL SELECT unnest($3::bigint[]))`, [districtId, used, made]);
    }
    // Even when nothing else changed: this run may apply and become the mirror (a no-op hands them back: adoptIntoMirror).
    await client.query(`UPDATE page_memo SET run_id = $2, covering = $5 WHERE district_id = $1 AND (run_id <> $2 OR covering <> $5)
      AND key IN (SELECT unnest($3::bigint[]) UNION ALL SELECT unnest($4::bigint[]))`, [districtId, lease.runId, used, made, memo.covering]);
  });
}

/** Forgets a district's memo (its entries named rows the mirror lacks: they are made again by the next fetch). */
export async function forgetPageMemo(db: Db, districtId: string): Promise<void> {
  await db.deleteFrom('page_memo').where('district_id', '=', districtId).execute();
}

/**
 * After a no-op: the entries this run's fetch made or used are the mirror's
 * (every row it met was in the mirror and it staged none), so they are backed
 * by it for the next fetch.
 */
export async function adoptIntoMirror(db: Db, districtId: string, runId: string, mirrorRunId: string): Promise<void> {
  await db.updateTable('page_memo').set({ run_id: mirrorRunId }).where('district_id', '=', districtId).where('run_id', '=', runId).execute();
}
