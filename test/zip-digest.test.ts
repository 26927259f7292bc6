import { strToU8, zipSync } from 'fflate';
import { zipContentDigest } from '../connectors/canvas/zip-digest.js';

// The digest a Canvas provisioning report's batches are tagged with
// (connectors/canvas/zip-digest.ts): equal for two zips of the same files made
// at different times, different when any file's data differs, and absent (the
// report is then read record by record) for a zip it cannot read.

const files = { 'users.csv': 'canvas_user_id,full_name\n1,Ada Lovelace\n2,Alan Turing\n', 'enrollments.csv': 'canvas_user_id,canvas_section_id\n1,10\n2,10\n' };
const zipAt = (when: string, content: Record<string, string> = files) =>
  zipSync(Object.fromEntries(Object.entries(content).map(([name, text]) => [name, strToU8(text)])), { mtime: new Date(when) });

test('two zips of the same files made at different times have one digest', async () => {
  const [morning, evening] = [zipAt('2026-11-25T08:00:00Z'), zipAt('2026-11-25T20:30:00Z')];
  expect(Buffer.from(morning).equals(Buffer.from(evening))).toBe(false);
  const digest = await zipContentDigest(morning);
  expect(digest).toEqual(expect.any(BigInt));
  expect(await zipContentDigest(evening)).toBe(digest);
});

test('a file whose data differs, though its size does not, changes the digest; so does a renamed file', async () => {
  const digest = await zipContentDigest(zipAt('2026-11-25T08:00:00Z'));
  const edited = { ...files, 'users.csv': files['users.csv'].replace('Alan Turing', 'Alan Turinh') };
  expect(edited['users.csv'].length).toBe(files['users.csv'].length);
  expect(await zipContentDigest(zipAt('2026-11-25T08:00:00Z', edited))).not.toBe(digest);
  const renamed = { 'users.csv': files['users.csv'], 'sections.csv': files['enrollments.csv'] };
  expect(await zipContentDigest(zipAt('2026-11-25T08:00:00Z', renamed))).not.toBe(digest);
});

test('a zip it cannot read has no digest: cut short, its directory pointing past the end, a local header disagreeing with it, or not a zip at all', async () => {
  const zip = zipAt('2026-11-25T08:00:00Z');
  expect(await zipContentDigest(zip.subarray(0, zip.length - 30))).toBeUndefined();
  const pastTheEnd = zip.slice();
  // The end record's offset of the central directory (APPNOTE 4.3.16), pointed beyond the file.
  new DataView(pastTheEnd.buffer).setUint32(pastTheEnd.length - 22 + 16, pastTheEnd.length + 100, true);
  expect(await zipContentDigest(pastTheEnd)).toBeUndefined();
  expect(await zipContentDigest(strToU8('canvas_user_id,full_name\n1,Ada\n'))).toBeUndefined();
  // A local header naming another file than its directory entry (the report is read through the local headers).
  const otherName = zip.slice();
  expect(String.fromCharCode(otherName[30]!)).toBe('u');
  otherName[30] = 'x'.charCodeAt(0);
  expect(await zipContentDigest(otherName)).toBeUndefined();
});
