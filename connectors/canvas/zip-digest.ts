import { digestOfText, foldDigest, xxhashApi } from '../http/page-origin.js';

// The digest of what a provisioning report says, for tagging its batches
// (connectors/http/page-origin.ts). Canvas builds a new zip every run, and a
// zip's headers carry each file's modification time (and, from rubyzip,
// extended-timestamp extra fields), so two zips of the same rows differ as
// bytes. What they share is each file's name, method, size and compressed
// data: the digest covers exactly those. Equal compressed data inflate to equal
// rows, so equal digests mean equal reports; the converse need not hold (a
// different deflate level gives different data for the same rows), which only
// costs the memo a miss.
//
// Layout (PKWARE APPNOTE.TXT 4.3.7 local file header, 4.3.12 central
// directory header, 4.3.16 end of central directory record).

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** The end record is 22 bytes plus a comment of at most 65,535. */
const EOCD_SEARCH = 22 + 0xffff;
/** A 32-bit size or offset of all ones means the real one is in a zip64 extra field: not read here. */
const ZIP64 = 0xffffffff;

/** One file of a zip, as its central directory and local header describe it. */
export interface ZipEntry {
  name: string;
  method: number;
  /** Its bytes inflated, as the directory records it. */
  inflated: number;
  /** Where its central directory header and its local header start. */
  centralAt: number;
  localAt: number;
  /** Its compressed bytes. */
  data: Uint8Array;
}

/**
 * The files of a zip, in the central directory's order, or undefined when the
 * zip is not one this reads (zip64, a truncated or inconsistent directory, a
 * local header that names another file or method than its directory entry).
 */
export function zipEntries(zip: Uint8Array): ZipEntry[] | undefined {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const inside = (at: number, length: number) => at >= 0 && length >= 0 && at + length <= zip.length;

  let end = -1;
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - EOCD_SEARCH); at -= 1) {
    if (u32(at) === EOCD) { end = at; break; }
  }
  if (end < 0) return undefined;
  const count = u16(end + 10);
  const directoryAt = u32(end + 16);
  if (directoryAt === ZIP64 || count === 0xffff) return undefined;

  const decoder = new TextDecoder();
  const entries: ZipEntry[] = [];
  let at = directoryAt;
  for (let i = 0; i < count; i += 1) {
    if (!inside(at, 46) || u32(at) !== CENTRAL) return undefined;
    const method = u16(at + 10);
    const compressed = u32(at + 20);
    const inflated = u32(at + 24);
    const nameLength = u16(at + 28);
    const localAt = u32(at + 42);
    if (compressed === ZIP64 || inflated === ZIP64 || localAt === ZIP64 || !inside(at + 46, nameLength)) return undefined;
    const name = decoder.decode(zip.subarray(at + 46, at + 46 + nameLength));
    // The data starts after the local header's own name and extra field, whose lengths may differ from the directory's.
    if (!inside(localAt, 30) || u32(localAt) !== LOCAL) return undefined;
    // The report is read through the local headers (fflate's streaming Unzip): one that names another file or
    // method than its directory entry could parse otherwise than the directory says, so such a zip is not read here.
    const localName = u16(localAt + 26);
    if (u16(localAt + 8) !== method || !inside(localAt + 30, localName) || decoder.decode(zip.subarray(localAt + 30, localAt + 30 + localName)) !== name) return undefined;
    const dataAt = localAt + 30 + localName + u16(localAt + 28);
    if (!inside(dataAt, compressed)) return undefined;
    entries.push({ name, method, inflated, centralAt: at, localAt, data: zip.subarray(dataAt, dataAt + compressed) });
    at += 46 + nameLength + u16(at + 30) + u16(at + 32);
  }
  return entries;
}

/**
 * The digest of a zip's entries (name, method, inflated size, compressed
 * bytes, in the central directory's order), or undefined when zipEntries
 * cannot read it: the report's batches then go untagged and are read record
 * by record, as before.
 */
export async function zipContentDigest(zip: Uint8Array): Promise<bigint | undefined> {
  const entries = zipEntries(zip);
  if (!entries) return undefined;
  const { h64Raw } = await xxhashApi();
  let digest = digestOfText('zip');
  for (const e of entries) {
    digest = foldDigest(digest, digestOfText(e.name));
    digest = foldDigest(digest, BigInt(e.method));
    digest = foldDigest(digest, BigInt(e.inflated));
    digest = foldDigest(digest, h64Raw(e.data));
  }
  return digest;
}
