// Checks that the bench's compact Clever server serves the very district the
// fixture's does: every page of every listing, byte for byte, before and after
// churn (and that the churn reports the same counts); and that the stream the
// raw COPY baseline reads (streamDistrict) is the same first district.
//   npx tsx test/bench/compact-district-check.ts [--students 3000 --sections 120 --per-student 6 --schools 25 --seed 42]
import { isDeepStrictEqual } from 'node:util';
import { FakeCleverServer } from '../../fixtures/clever/server.js';
import { RosterDistrict } from '../../fixtures/district.js';
import { parseServeArgs } from '../../fixtures/serve-args.js';
import { CompactCleverServer } from './compact-clever-server.js';
import { CompactDistrict, streamDistrict } from './compact-district.js';

const { spec } = parseServeArgs({});
const fixture = new FakeCleverServer(new RosterDistrict(spec), 'T');
const compact = new CompactCleverServer(new CompactDistrict(spec), 'T');
const [a, b] = [await fixture.start(), await compact.start()];
let pages = 0;
let failures = 0;

async function get(base: string, path: string): Promise<string> {
  const res = await fetch(`${base}${path}`, { headers: { Authorization: 'Bearer T' } });
  return `${res.status} ${await res.text()}`;
}

async function compareAll(label: string): Promise<void> {
  const paths = ['districts', 'schools', 'terms', 'courses', 'sections', 'users', 'users?role=student', 'users?role=teacher', 'users?role=district_admin', 'users?role=staff', 'users?role=bogus'];
  for (const limit of [1, 7, 1000, 10001]) {
    for (const p of paths) {
      let next: string | undefined = `/v3.0/${p}${p.includes('?') ? '&' : '?'}limit=${limit}`;
      while (next) {
        const x: string = await get(a, next);
        const y: string = await get(b, next);
        pages += 1;
        if (x !== y) {
          failures += 1;
          process.stdout.write(`DIFF ${label} ${next}\n  fixture: ${x.slice(0, 300)}\n  compact: ${y.slice(0, 300)}\n`);
          break;
        }
        next = x.startsWith('200') ? (JSON.parse(x.slice(4)) as { links: { rel: string; uri: string }[] }).links.find((l) => l.rel === 'next')?.uri : undefined;
        // Small pages over the big listings: enough to cross every boundary, not every page.
        if (limit < 1000 && pages % 50 === 0) break;
      }
    }
  }
  // A cursor that is not a live id.
  for (const after of ['a1', 'a1zzzz', 'b1', '0', 'zz']) {
    const path = `/v3.0/users?limit=5&starting_after=${after}`;
    if (await get(a, path) !== await get(b, path)) { failures += 1; process.stdout.write(`DIFF ${label} ${path}\n`); }
  }
}

await compareAll('generated');
for (const [pct, seed] of [[1, 7], [3, 11]] as const) {
  const [x, y] = [await fetch(`${a}/__control/churn`, { method: 'POST', body: JSON.stringify({ pct, seed }) }).then((r) => r.text()),
    await fetch(`${b}/__control/churn`, { method: 'POST', body: JSON.stringify({ pct, seed }) }).then((r) => r.text())];
  if (x !== y) { failures += 1; process.stdout.write(`DIFF churn ${pct}%: fixture ${x}, compact ${y}\n`); }
  await compareAll(`after ${pct}% churn`);
}
await fixture.stop();
await compact.stop();

// The stream: the same students, with the same sections, as the fixture generated first.
const first = new RosterDistrict(spec);
const { district, students } = streamDistrict(spec);
let streamed = 0;
const members = new Map<string, string[]>();
for (const s of students()) {
  const p = district.studentPerson(s.n, s.schoolIndex, s.gradeIndex, s.first, s.last);
  const want = first.students.get(p.id);
  if (!isDeepStrictEqual(p, want)) { failures += 1; if (failures < 10) process.stdout.write(`DIFF stream student ${p.id}\n`); }
  for (const k of s.sections) members.set(district.sections[k]!.id, [...(members.get(district.sections[k]!.id) ?? []), p.id]);
  streamed += 1;
}
for (const s of first.sections.values()) {
  if (!isDeepStrictEqual(s.studentIds, members.get(s.id) ?? [])) { failures += 1; if (failures < 10) process.stdout.write(`DIFF stream section ${s.id}\n`); }
}
if (streamed !== first.students.size || district.sections.length !== first.sections.size || district.teachers.length !== first.teachers.size) failures += 1;

process.stdout.write(`${failures === 0 ? 'SAME' : 'DIFFERENT'}: ${pages} pages compared, ${streamed} students streamed (${JSON.stringify(spec)})\n`);
process.exitCode = failures === 0 ? 0 : 1;
