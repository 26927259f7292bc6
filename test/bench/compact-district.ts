// The bench's district at any size (issue #11: a million students): the very
// district fixtures/district.ts (RosterDistrict) generates for the same spec and
// seed (same PRNG, same draws in the same order, same ids, names and
// memberships), held compactly: a student is a few bytes in typed arrays and a
// membership is a number, instead of objects and id strings. A million students
// with six sections each are generated in about 3 s into about 280 MB of RSS
// (the process included), where RosterDistrict plus the fixture Clever server's
// rendered cache need gigabytes, and RosterDistrict.churn scans every section
// for each student it moves (35 s at 200,000 students, growing with the square).
//
// Two uses:
// - `CompactDistrict` (with memberships) behind the bench's fake Clever server
//   (clever-serve.ts), which renders each page from it on request, and applies
//   churn exactly as RosterDistrict.churn does;
// - `streamDistrict` (no memberships kept) for the raw COPY baseline
//   (copy-load.ts): the first sync's district, one student at a time.
// compact-district-check.ts compares every Clever page with fixtures/clever.
import { FIRST, KIND, LAST, generateHead, idMaker, type DistrictSpec, type GenCourse, type GenPerson, type GenSchool, type GenTerm } from '../../fixtures/district.js';
import { prng as mulberry32 } from '../../fixtures/prng.js';

// The generator's own tables and PRNG (fixtures/district.ts, fixtures/prng.ts): the same district, draw for draw.

export { mulberry32 };
const pickIndex = (rand: () => number, length: number) => Math.floor(rand() * length);

export interface CompactSection {
  index: number; id: string; schoolIndex: number; courseId: string; termId: string; name: string; grade: string;
  period: string; subject: string; sectionNumber: string; teacherIds: string[];
  /** Student numbers (see studentId) in the order RosterDistrict lists them; empty when memberships are not kept. */
  students: number[];
}

/** One generated student: numbers into the district's tables, and the sections chosen (in RosterDistrict's order). */
export interface StudentDraw { n: number; schoolIndex: number; gradeIndex: number; first: number; last: number; sections: readonly number[] }

/** The parts of a district that are small at any size, generated as RosterDistrict does. */
export class DistrictBase {
  readonly seedHex: string;
  readonly id: string;
  readonly name: string;
  readonly schools: GenSchool[];
  readonly terms: GenTerm[];
  readonly courses: GenCourse[];
  readonly sections: CompactSection[] = [];
  readonly teachers: GenPerson[];
  protected readonly rand: () => number;
  protected readonly nextId: (kind: string) => string;
  /** Sections by school, in section order (the order RosterDistrict filters them in). */
  protected readonly sectionsBySchool: number[][];
  /** RosterDistrict.sectionIndex: the sections a new student of a school and grade picks from. */
  private readonly options = new Map<string, number[]>();
  /** Students numbered so far (the student id counter). */
  studentsNumbered = 0;

  constructor(readonly spec: DistrictSpec) {
    this.rand = mulberry32(spec.seed);
    this.seedHex = (spec.seed >>> 0).toString(16).padStart(8, '0').slice(-6);
    this.nextId = idMaker(spec.seed);
    this.id = this.nextId(KIND.district);
    this.name = `Demo Unified School District ${spec.seed}`;
    // RosterDistrict's own start (fixtures/district.ts), then its sections loop without the objects.
    const { schools, terms, courses, teachers, teachersBySchool } = generateHead(spec, this.nextId, this.rand);
    this.schools = schools;
    this.terms = terms;
    this.courses = courses;
    this.teachers = teachers;
    this.sectionsBySchool = this.schools.map(() => []);
    for (let i = 0; i < spec.sections; i++) {
      const schoolIndex = i % this.schools.length;
      const school = this.schools[schoolIndex]!;
      const course = this.courses[i % this.courses.length]!;
      const grade = school.grades[Math.floor(i / this.schools.length) % school.grades.length]!;
      const candidates = teachersBySchool.get(school.id) ?? this.teachers.map((t) => t.id);
      const teacherId = candidates[pickIndex(this.rand, candidates.length)]!;
      this.sections.push({
        index: i, id: this.nextId(KIND.section), schoolIndex, courseId: course.id, termId: this.terms[i % this.terms.length]!.id,
        name: `${course.name} - Grade ${grade} - Period ${(i % 7) + 1}`, grade, period: String((i % 7) + 1),
        subject: course.subject, sectionNumber: `S${i + 1}`, teacherIds: [teacherId], students: [],
      });
      this.sectionsBySchool[schoolIndex]!.push(i);
    }
  }

  /** RosterDistrict.addStudent's draws, without the objects: school, grade, name, then the sections. */
  protected drawStudent(): StudentDraw {
    const { rand } = this;
    const schoolIndex = pickIndex(rand, this.schools.length);
    const school = this.schools[schoolIndex]!;
    const gradeIndex = pickIndex(rand, school.grades.length);
    this.studentsNumbered += 1;
    const n = this.studentsNumbered;
    const first = pickIndex(rand, FIRST.length);
    const last = pickIndex(rand, LAST.length);
    const key = `${schoolIndex}|${gradeIndex}`;
    let options = this.options.get(key);
    if (!options) {
      const inSchool = this.sectionsBySchool[schoolIndex]!;
      const inGrade = inSchool.filter((s) => this.sections[s]!.grade === school.grades[gradeIndex]);
      this.options.set(key, (options = inGrade.length >= this.spec.enrollmentsPerStudent ? inGrade : inSchool));
    }
    const want = Math.min(this.spec.enrollmentsPerStudent, options.length);
    // Set insertion order: the order RosterDistrict pushes the student onto the sections.
    const chosen = new Set<number>();
    while (chosen.size < want) chosen.add(options[pickIndex(rand, options.length)]!);
    return { n, schoolIndex, gradeIndex, first, last, sections: [...chosen] };
  }

  studentId(n: number): string {
    return `${KIND.student}${this.seedHex}${n.toString(16).padStart(16, '0')}`;
  }

  /** Student `n` as RosterDistrict holds it (GenPerson), from its compact fields. */
  studentPerson(n: number, schoolIndex: number, gradeIndex: number, first: number, last: number): GenPerson {
    const id = this.studentId(n);
    const school = this.schools[schoolIndex]!;
    const f = FIRST[first]!;
    const l = LAST[last]!;
    const username = `${f}.${l}.${id.slice(-6)}`.toLowerCase();
    return { id, schoolIds: [school.id], grade: school.grades[gradeIndex]!, first: f, last: l, email: `${username}@students.demo-usd.example`, username, sisId: `S${id.slice(-8)}` };
  }
}

/**
 * The district's first state (what a first sync reads), one student at a time:
 * nothing per student is kept, so memory does not grow with the district.
 */
export function streamDistrict(spec: DistrictSpec): { district: DistrictBase; students(): Generator<StudentDraw> } {
  // Each walk regenerates from the seed: the small parts are drawn first, the students after them.
  const make = () => new (class extends DistrictBase {
    *walk(): Generator<StudentDraw> {
      for (let i = 0; i < spec.students; i++) yield this.drawStudent();
    }
  })(spec);
  return { district: make(), students: () => make().walk() };
}

/**
 * The whole district with its memberships, compactly, and changeable the way
 * the bench changes it (churn). Students are numbered from 1 in creation order,
 * which is also their ids' order.
 */
export class CompactDistrict extends DistrictBase {
  private capacity = 0;
  private school = new Uint16Array(0);
  private grade = new Uint8Array(0);
  private first = new Uint8Array(0);
  private last = new Uint8Array(0);
  private alive = new Uint8Array(0);
  /** enrollmentsPerStudent slots per student: section indexes, -1 when empty. */
  private slots = new Int32Array(0);
  private readonly per: number;
  aliveCount = 0;
  /** Bumped on every change (as RosterDistrict.version). */
  version = 0;
  private aliveIndex?: { version: number; numbers: Int32Array };

  constructor(spec: DistrictSpec) {
    super(spec);
    this.per = Math.max(1, spec.enrollmentsPerStudent);
    this.grow(spec.students);
    for (let i = 0; i < spec.students; i++) this.addStudent();
  }

  private grow(atLeast: number): void {
    if (atLeast <= this.capacity) return;
    const capacity = Math.max(atLeast, Math.ceil(this.capacity * 1.25), 1024);
    const widen = <T extends Uint8Array | Uint16Array | Int32Array>(old: T, make: (n: number) => T, per = 1): T => {
      const next = make((capacity + 1) * per);
      next.set(old);
      return next;
    };
    this.school = widen(this.school, (n) => new Uint16Array(n));
    this.grade = widen(this.grade, (n) => new Uint8Array(n));
    this.first = widen(this.first, (n) => new Uint8Array(n));
    this.last = widen(this.last, (n) => new Uint8Array(n));
    this.alive = widen(this.alive, (n) => new Uint8Array(n));
    const slots = new Int32Array((capacity + 1) * this.per).fill(-1);
    slots.set(this.slots);
    this.slots = slots;
    this.capacity = capacity;
  }

  /** RosterDistrict.addStudent() (a random school). */
  addStudent(): number {
    const d = this.drawStudent();
    this.grow(d.n);
    this.school[d.n] = d.schoolIndex;
    this.grade[d.n] = d.gradeIndex;
    this.first[d.n] = d.first;
    this.last[d.n] = d.last;
    this.alive[d.n] = 1;
    d.sections.forEach((s, k) => {
      this.slots[d.n * this.per + k] = s;
      this.sections[s]!.students.push(d.n);
    });
    this.aliveCount += 1;
    this.version += 1;
    return d.n;
  }

  isAlive(n: number): boolean {
    return n >= 1 && n <= this.studentsNumbered && this.alive[n] === 1;
  }

  student(n: number): GenPerson {
    return this.studentPerson(n, this.school[n]!, this.grade[n]!, this.first[n]!, this.last[n]!);
  }

  /** The student's sections in section order (RosterDistrict.sectionsOf for a student). */
  sectionsOf(n: number): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.per; k++) {
      const s = this.slots[n * this.per + k]!;
      if (s >= 0) out.push(s);
    }
    return out.sort((a, b) => a - b);
  }

  /** Living students' numbers, ascending: the Clever users listing's order, and RosterDistrict's Map order (no student ever returns here). */
  aliveNumbers(): Int32Array {
    if (this.aliveIndex?.version !== this.version) {
      const numbers = new Int32Array(this.aliveCount);
      let j = 0;
      for (let n = 1; n <= this.studentsNumbered; n++) if (this.alive[n] === 1) numbers[j++] = n;
      this.aliveIndex = { version: this.version, numbers };
    }
    return this.aliveIndex.numbers;
  }

  removeStudent(n: number): void {
    if (!this.isAlive(n)) throw new Error(`no student ${n}`);
    for (const s of this.sectionsOf(n)) {
      const section = this.sections[s]!;
      section.students = section.students.filter((x) => x !== n);
    }
    this.slots.fill(-1, n * this.per, (n + 1) * this.per);
    this.alive[n] = 0;
    this.aliveCount -= 1;
    this.version += 1;
  }

  moveStudent(n: number, from: number, to: number): void {
    const a = this.sections[from]!;
    const b = this.sections[to]!;
    a.students = a.students.filter((x) => x !== n);
    if (!b.students.includes(n)) b.students.push(n);
    const k = this.slots.subarray(n * this.per, (n + 1) * this.per).indexOf(from);
    this.slots[n * this.per + k] = to;
    this.version += 1;
  }

  /** RosterDistrict.churn, draw for draw: a third leave, a third join, a third change a section. */
  churn(pct: number, seed: number): { left: number; joined: number; moved: number } {
    const rand = mulberry32(seed);
    const each = Math.max(1, Math.round((this.aliveCount * pct) / 100 / 3));
    const ids = this.aliveNumbers().slice();
    const victims = new Set<number>();
    while (victims.size < Math.min(each * 2, ids.length)) victims.add(ids[pickIndex(rand, ids.length)]!);
    const [leavers, movers] = [[...victims].slice(0, each), [...victims].slice(each)];
    for (const n of leavers) this.removeStudent(n);
    for (let i = 0; i < each; i++) this.addStudent();
    let moved = 0;
    for (const n of movers) {
      const current = this.sectionsOf(n);
      const from = current[0];
      const options = this.sectionsBySchool[this.school[n]!]!.filter((s) => !current.includes(s));
      if (from !== undefined && options.length) {
        this.moveStudent(n, from, options[pickIndex(rand, options.length)]!);
        moved += 1;
      }
    }
    return { left: leavers.length, joined: each, moved };
  }
}
