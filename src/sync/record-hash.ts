import { xxhashApi } from '../../connectors/http/page-origin.js';
import { STAGE_KINDS, type StageKind } from './stage-tables.js';

// A record's content hash: 64-bit xxHash (xxhash-wasm) of its COPY line, i.e.
// of every column the stage stores, seeded by its kind (the seed, not a
// prefix: no second string per record for the collector). Measured on this machine:
// about 0.5 µs a record, against 2 µs for a one-shot MD5 from node:crypto, so
// hashing a million-student district (7.4M records) costs about 4 s of the
// worker's time rather than 15. 64 bits: a changed record is taken for an
// unchanged one only if its new hash equals one of the mirror's, a chance of
// about 7.4M / 2^64 ≈ 4e-13 per changed record.

/** A seed per kind of record: the same line under two kinds hashes as two unrelated inputs. */
const KIND_SEEDS: ReadonlyMap<string, bigint> = new Map(STAGE_KINDS.map((k, i) => [k, BigInt(i + 1)]));

/** The hash function, once its WebAssembly module is loaded (once per process). */
export async function recordHasher(): Promise<(kind: StageKind, line: string) => bigint> {
  const { h64 } = await xxhashApi();
  return (kind, line) => h64(line, KIND_SEEDS.get(kind)!);
}

/** As Postgres' bigint (signed) in COPY text. */
export const hashText = (h: bigint): string => BigInt.asIntN(64, h).toString();

/** 64-bit hashes appended off the JS heap, the array doubled as it fills. */
export class HashList {
  private items = new BigUint64Array(1024);
  private n = 0;

  push(h: bigint): void {
    if (this.n === this.items.length) {
      const grown = new BigUint64Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.n++] = h;
  }

  /** The hashes pushed, in order (a view of the list's memory). */
  view(): BigUint64Array {
    return this.items.subarray(0, this.n);
  }
}

const BUCKET_BITS = 20;

/**
 * The mirror's hashes, in the worker: a sorted BigUint64Array with a bucket
 * index on the top 20 bits, and a flag per hash for "seen in this fetch".
 * 8 bytes a record plus 4 MB, off the JS heap: 60 MB for a million-student
 * district, where a Set of BigInts would take ten times that on the heap.
 */
export class HashSet {
  private readonly keys: BigUint64Array;
  /** The same memory as 32-bit words (little-endian: low word first), compared without BigInt arithmetic. */
  private readonly words: Uint32Array;
  private readonly start = new Uint32Array((1 << BUCKET_BITS) + 1);
  private readonly seen: Uint8Array;
  private seenCount = 0;
  /** Records of this fetch looked up, and of them found in the set (a record sent twice counts twice). */
  checked = 0;
  matched = 0;

  constructor(hashes: BigUint64Array) {
    // Distinct: a hash listed twice would be marked seen once and reported unseen
    // once, and the rebuild would then drop a record this fetch did bring back.
    hashes.sort();
    let n = 0;
    for (let i = 0; i < hashes.length; i += 1) if (i === 0 || hashes[i] !== hashes[n - 1]) hashes[n++] = hashes[i]!;
    this.keys = hashes.subarray(0, n);
    this.words = new Uint32Array(this.keys.buffer, this.keys.byteOffset, this.keys.length * 2);
    this.seen = new Uint8Array(this.keys.length);
    const shift = 32 - BUCKET_BITS;
    // start[b] = first index whose top bits are >= b.
    let i = 0;
    for (let b = 0; b <= 1 << BUCKET_BITS; b += 1) {
      while (i < this.keys.length && this.words[2 * i + 1]! >>> shift < b) i += 1;
      this.start[b] = i;
    }
  }

  get size(): number {
    return this.keys.length;
  }

  get seenSize(): number {
    return this.seenCount;
  }

  /** Whether the set holds `h`; if so, it is marked seen. */
  mark(h: bigint): boolean {
    this.checked += 1;
    const i = this.indexOf(Number(h >> 32n), Number(h & 0xffffffffn));
    if (i < 0) return false;
    this.markAt(i);
    this.matched += 1;
    return true;
  }

  /**
   * Whether the set holds every one of `hs`; only if so, all are marked seen
   * (and counted as looked up and found). Read as 32-bit words: no BigInt per
   * hash (a million-student no-op passes 7M here).
   */
  markAll(hs: BigUint64Array): boolean {
    const w = new Uint32Array(hs.buffer, hs.byteOffset, hs.length * 2);
    const at = new Int32Array(hs.length);
    for (let k = 0; k < hs.length; k += 1) if ((at[k] = this.indexOf(w[2 * k + 1]!, w[2 * k]!)) < 0) return false;
    for (const i of at) this.markAt(i);
    this.checked += hs.length;
    this.matched += hs.length;
    return true;
  }

  private markAt(i: number): void {
    if (this.seen[i] === 0) { this.seen[i] = 1; this.seenCount += 1; }
  }

  /** Where the hash of these high and low words is in the sorted keys, or -1. */
  private indexOf(hi: number, lo: number): number {
    const b = hi >>> (32 - BUCKET_BITS);
    for (let i = this.start[b]!, end = this.start[b + 1]!; i < end; i += 1) {
      const whi = this.words[2 * i + 1]!;
      if (whi > hi) return -1;
      if (whi === hi) {
        const wlo = this.words[2 * i]!;
        if (wlo === lo) return i;
        if (wlo > lo) return -1;
      }
    }
    return -1;
  }

  /** The hashes not seen (the mirror's records this fetch did not bring back, or brought back changed). */
  *unseen(): Generator<bigint> {
    for (let i = 0; i < this.keys.length; i += 1) if (this.seen[i] === 0) yield this.keys[i]!;
  }
}

const LOG_BUCKET_BITS = 4;
const LOG_BUCKET_SHIFT = BigInt(64 - LOG_BUCKET_BITS);

/**
 * The hashes of the keys a fetch staged (a record's sourcedId; a
 * membership's user and class), to tell at the end whether the provider sent
 * any key twice. When none was, merging copies in Postgres (a grouping of the
 * whole stage: about 14 s at a million students) has nothing to find and is
 * skipped. Equal hashes of two different keys only mean the merge runs: a
 * copy is never missed. 8 bytes a record, off the JS heap, in 16 buckets by
 * the top bits, so growing one never copies more than a sixteenth.
 */
export class KeyHashLog {
  private readonly buckets = Array.from({ length: 1 << LOG_BUCKET_BITS }, () => new HashList());

  add(h: bigint): void {
    this.buckets[Number(h >> LOG_BUCKET_SHIFT)]!.push(h);
  }

  /** Whether every hash added was added once. */
  allDistinct(): boolean {
    for (const b of this.buckets) {
      const items = b.view().sort();
      for (let i = 1; i < items.length; i += 1) if (items[i] === items[i - 1]) return false;
    }
    return true;
  }
}
