import xxhash from 'xxhash-wasm';

// What a batch was made from, as 64 bits: the page's URL and bytes, and
// whatever else of the fetch its mapping read (a OneRoster class names a
// department that rolls up to a school known only from the orgs pages). Two
// batches of equal origin hold the same records, so a resync that meets an
// origin it has already staged, and whose records the district's mirror
// still holds, can take them from the mirror without preparing the page again
// (src/sync/page-memo.ts). A connector tags a batch only when that holds; an
// untagged batch is always read record by record.

let api: ReturnType<typeof xxhash> | undefined;

/** xxhash-wasm, its WebAssembly module loaded once per process (pages, records and the memo's salt share it). */
export function xxhashApi(): ReturnType<typeof xxhash> {
  api ??= xxhash();
  return api;
}

/** The digest of a page: 64-bit xxHash of its body, seeded by the hash of the URL it answers. */
export async function pageDigester(): Promise<(url: string, body: string) => bigint> {
  const { h64 } = await xxhashApi();
  return (url, body) => h64(body, h64(url));
}

const M64 = (1n << 64n) - 1n;

/** SplitMix64's finalizer: every input bit moves about half the output bits (Steele, Lea, Flood 2014). */
export function mix64(x: bigint): bigint {
  let z = x & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** Folds a digest into a running one, in order (the orgs pages of a fetch, say). */
export const foldDigest = (acc: bigint, digest: bigint): bigint => mix64(acc ^ mix64(digest));

/** foldDigest where either side may be missing (a page without a digest): the result is missing too, and what it would tag goes untagged. */
export const foldKnown = (acc: bigint | undefined, digest: bigint | undefined): bigint | undefined =>
  (acc === undefined || digest === undefined ? undefined : foldDigest(acc, digest));

/** A number or a date as something to fold in. */
export const digestOfText = (s: string): bigint => {
  let acc = 0n;
  for (let i = 0; i < s.length; i += 1) acc = foldDigest(acc, BigInt(s.charCodeAt(i)));
  return acc;
};

/**
 * The origin of the `part`-th batch made from a page (records, then what was
 * quarantined): the page's digest with `context`, the digest of whatever else
 * the mapping read (0n when nothing). Undefined when the page has no digest.
 */
export function batchOrigin(pageDigest: bigint | undefined, context: bigint, part: number): bigint | undefined {
  if (pageDigest === undefined) return undefined;
  return mix64(pageDigest ^ mix64(context + BigInt(part + 1)));
}
