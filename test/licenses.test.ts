import { departureReason, inScope, settleSeats, type ClassView, type StudentView } from '../src/licenses/rules.js';
import { enrol, pool, student } from './helpers/roster.js';

const classes = new Map<string, ClassView>([
  ['c-math', { schoolSourcedId: 'sch1', courseSourcedId: 'crs-math', courseCode: 'MATH', grades: ['5'] }],
  ['c-art', { schoolSourcedId: 'sch2', courseSourcedId: 'crs-art', courseCode: 'ART', grades: ['6'] }],
]);
const view = (sid: string, over: Partial<StudentView> = {}): StudentView => ({ sourcedId: sid, active: true, grades: ['5'], schools: ['sch1'], classes: [], ...over });

describe('pool scope', () => {
  test('a whole-district pool covers every active student, enrolled or not', () => {
    expect(inScope(pool('P', 1), view('s1'), classes)).toBe(true);
    expect(inScope(pool('P', 1), view('s1', { active: false }), classes)).toBe(false);
  });

  test('a course scope needs an active class of that course (by code or sourcedId)', () => {
    expect(inScope(pool('P', 1, { courses: ['MATH'] }), view('s1', { classes: ['c-math'] }), classes)).toBe(true);
    expect(inScope(pool('P', 1, { courses: ['crs-math'] }), view('s1', { classes: ['c-math'] }), classes)).toBe(true);
    expect(inScope(pool('P', 1, { courses: ['MATH'] }), view('s1', { classes: ['c-art'] }), classes)).toBe(false);
    expect(inScope(pool('P', 1, { courses: ['MATH'] }), view('s1'), classes)).toBe(false);
  });

  test("school and grade scopes match the student's own school and grade, or a class's", () => {
    expect(inScope(pool('P', 1, { schools: ['sch2'] }), view('s1'), classes)).toBe(false);
    expect(inScope(pool('P', 1, { schools: ['sch2'] }), view('s1', { classes: ['c-art'] }), classes)).toBe(true);
    expect(inScope(pool('P', 1, { grades: ['6'] }), view('s1'), classes)).toBe(false);
    expect(inScope(pool('P', 1, { grades: ['6'] }), view('s1', { classes: ['c-art'] }), classes)).toBe(true);
    expect(inScope(pool('P', 1, { schools: ['sch1'], grades: ['5'] }), view('s1'), classes)).toBe(true);
  });
});

describe('departure', () => {
  const asOf = '2026-11-22';
  test('absent from a complete snapshot, tobedeleted, disabled, or every enrollment ended', () => {
    expect(departureReason(undefined, undefined, true, asOf)).toBe('absent');
    expect(departureReason(undefined, undefined, false, asOf)).toBeNull();
    expect(departureReason(student('s', { status: 'tobedeleted' }), [], true, asOf)).toBe('tobedeleted');
    expect(departureReason(student('s', { enabled: false }), [], false, asOf)).toBe('disabled');
    expect(departureReason(student('s'), [enrol('s', 'c', { endDate: '2026-06-01' }), enrol('s', 'd', { status: 'tobedeleted' })], true, asOf)).toBe('enrollments-ended');
  });

  test('a student with one current enrollment, or none at all, stays', () => {
    expect(departureReason(student('s'), [enrol('s', 'c', { endDate: '2026-06-01' }), enrol('s', 'd', { endDate: '2027-06-01' })], true, asOf)).toBeNull();
    expect(departureReason(student('s'), [], true, asOf)).toBeNull();
  });
});

describe('settleSeats', () => {
  const students = (ids: string[], over: Partial<StudentView> = {}) => new Map(ids.map((id) => [id, view(id, over)]));
  const none = new Map<string, Map<string, number>>();

  test('assigns up to the seat count and wait-lists the rest in a stable order', () => {
    const changes = settleSeats({ pools: [pool('P', 2)], students: students(['c', 'a', 'b']), classes, seats: none, waitlist: none, departures: new Map() });
    expect(changes.assign.map((a) => a.userSourcedId)).toEqual(['a', 'b']);
    expect(changes.waitlistAdd.map((a) => a.userSourcedId)).toEqual(['c']);
    expect(changes.release).toEqual([]);
  });

  test('a freed seat goes to the longest-waiting student first, not to a newcomer', () => {
    const changes = settleSeats({
      pools: [pool('P', 2)],
      students: new Map([...students(['a', 'w1', 'w2', 'new']), ['gone', view('gone', { active: false })]]),
      classes,
      seats: new Map([['P', new Map([['a', 1], ['gone', 2]])]]),
      waitlist: new Map([['P', new Map([['w2', 20], ['w1', 10]])]]),
      departures: new Map([['gone', 'absent']]),
    });
    expect(changes.release).toEqual([{ product: 'P', userSourcedId: 'gone', reason: 'absent' }]);
    expect(changes.assign).toEqual([{ product: 'P', userSourcedId: 'w1' }]);
    expect(changes.waitlistRemove).toEqual([{ product: 'P', userSourcedId: 'w1' }]);
    expect(changes.waitlistAdd).toEqual([{ product: 'P', userSourcedId: 'new' }]);
  });

  test('a shrunk pool gives back its most recent seats and wait-lists those students', () => {
    const changes = settleSeats({
      pools: [pool('P', 1)], students: students(['old', 'recent']), classes,
      seats: new Map([['P', new Map([['old', 1], ['recent', 5]])]]), waitlist: none, departures: new Map(),
    });
    expect(changes.release).toEqual([{ product: 'P', userSourcedId: 'recent', reason: 'pool-reduced' }]);
    expect(changes.waitlistAdd).toEqual([{ product: 'P', userSourcedId: 'recent' }]);
    expect(changes.assign).toEqual([]);
  });

  test('a wait-listed student who leaves scope leaves the wait-list', () => {
    const changes = settleSeats({
      pools: [pool('P', 0)], students: students(['a'], { active: false }), classes,
      seats: none, waitlist: new Map([['P', new Map([['a', 1]])]]), departures: new Map(),
    });
    expect(changes.waitlistRemove).toEqual([{ product: 'P', userSourcedId: 'a' }]);
  });
});
