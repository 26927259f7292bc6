import { sql, type RawBuilder } from 'kysely';
import type { AcademicSession, Course, Enrollment, Org, QuarantinedRecord, RecordKind, RosterClass, User } from '../domain/model.js';

// A run's staged snapshot lives in typed, unlogged tables of its own, one per
// kind of record (schema "stage"; db/migrations/006_typed_stage.ts). A table per
// run rather than one shared table: a district's stage is dropped in an instant
// however large, where deleting millions of rows would cost as much as writing
// them, and two districts' stages never share an index.
// Columns hold canonical records as connectors map them; dates stay text
// (YYYY-MM-DD as the provider sent them) so the reconciler compares them
// exactly as the license rules in src/licenses/rules.ts do.

export type StageKind = RecordKind | 'quarantine';
export const STAGE_KINDS: StageKind[] = ['orgs', 'academicSessions', 'courses', 'classes', 'users', 'enrollments', 'quarantine'];

type Cell = string | boolean | string[] | null;
interface Column<R> { name: string; type: string; of: (r: R) => Cell }
const col = <R>(name: string, type: string, of: (r: R) => Cell): Column<R> => ({ name, type, of });

/** What each kind's table holds, in COPY order (after the batch's seq). */
export const STAGE_COLUMNS: { [K in StageKind]: Column<K extends RecordKind ? import('../domain/model.js').RecordKinds[K] : QuarantinedRecord>[] } = {
  orgs: [
    col<Org>('sourced_id', 'text', (r) => r.sourcedId), col<Org>('name', 'text', (r) => r.name), col<Org>('type', 'text', (r) => r.type),
    col<Org>('identifier', 'text', (r) => r.identifier), col<Org>('status', 'text', (r) => r.status),
  ],
  academicSessions: [
    col<AcademicSession>('sourced_id', 'text', (r) => r.sourcedId), col<AcademicSession>('title', 'text', (r) => r.title),
    col<AcademicSession>('start_date', 'text', (r) => r.startDate), col<AcademicSession>('end_date', 'text', (r) => r.endDate),
    col<AcademicSession>('status', 'text', (r) => r.status),
  ],
  courses: [
    col<Course>('sourced_id', 'text', (r) => r.sourcedId), col<Course>('title', 'text', (r) => r.title),
    col<Course>('course_code', 'text', (r) => r.courseCode), col<Course>('status', 'text', (r) => r.status),
  ],
  classes: [
    col<RosterClass>('sourced_id', 'text', (r) => r.sourcedId), col<RosterClass>('title', 'text', (r) => r.title),
    col<RosterClass>('class_code', 'text', (r) => r.classCode), col<RosterClass>('course_sourced_id', 'text', (r) => r.courseSourcedId),
    col<RosterClass>('school_sourced_id', 'text', (r) => r.schoolSourcedId), col<RosterClass>('term_sourced_ids', 'text[]', (r) => r.termSourcedIds),
    col<RosterClass>('grades', 'text[]', (r) => r.grades), col<RosterClass>('status', 'text', (r) => r.status),
  ],
  users: [
    col<User>('sourced_id', 'text', (r) => r.sourcedId), col<User>('role', 'text', (r) => r.role),
    col<User>('given_name', 'text', (r) => r.givenName), col<User>('family_name', 'text', (r) => r.familyName),
    col<User>('email', 'text', (r) => r.email), col<User>('username', 'text', (r) => r.username), col<User>('sis_id', 'text', (r) => r.sisId),
    col<User>('grades', 'text[]', (r) => r.grades), col<User>('school_sourced_ids', 'text[]', (r) => r.orgSourcedIds),
    col<User>('enabled', 'boolean', (r) => r.enabled), col<User>('status', 'text', (r) => r.status),
  ],
  enrollments: [
    col<Enrollment>('user_sid', 'text', (r) => r.userSourcedId), col<Enrollment>('class_sid', 'text', (r) => r.classSourcedId),
    col<Enrollment>('role', 'text', (r) => r.role), col<Enrollment>('begin_date', 'text', (r) => r.beginDate),
    col<Enrollment>('end_date', 'text', (r) => r.endDate), col<Enrollment>('status', 'text', (r) => r.status),
  ],
  quarantine: [
    col<QuarantinedRecord>('kind', 'text', (r) => r.kind), col<QuarantinedRecord>('sourced_id', 'text', (r) => r.sourcedId),
    col<QuarantinedRecord>('reason', 'text', (r) => r.reason),
    col<QuarantinedRecord>('ref_users', 'text[]', (r) => r.refs?.users ?? []), col<QuarantinedRecord>('ref_classes', 'text[]', (r) => r.refs?.classes ?? []),
    col<QuarantinedRecord>('conflict', 'boolean', (r) => r.conflict ?? false),
  ],
} as never;

/** The per-run table name (unquoted): "r<run id without dashes>_<kind>", well under Postgres' 63 characters. */
export function stageTableName(runId: string, kind: StageKind): string {
  return `${runPrefix(runId)}_${kind.toLowerCase()}`;
}

function runPrefix(runId: string): string {
  if (!/^[0-9a-f-]{36}$/i.test(runId)) throw new Error(`internal: not a run id: ${runId}`);
  return `r${runId.replace(/-/g, '').toLowerCase()}`;
}

export const stageTable = (runId: string, kind: StageKind): RawBuilder<unknown> => sql.table(`stage.${stageTableName(runId, kind)}`);

/**
 * A table kept beside a run's stage ("gone": the keys of the mirror's records
 * its fetch did not bring back unchanged). Named like the stage's own, so it
 * is dropped with them (stage.drop_run), but not one of STAGE_KINDS.
 */
export const stageSideTableName = (runId: string, name: 'gone'): string => `stage.${runPrefix(runId)}_${name}`;

/**
 * DDL creating one run's stage tables (unlogged: a stage is rebuilt from the
 * provider, never recovered). `h` is the record's content hash
 * (src/sync/record-hash.ts), which lets the next run skip what did not change;
 * null on rows Postgres adds itself (a conflict found when merging copies).
 */
export function createStageTablesSql(runId: string): RawBuilder<unknown>[] {
  return STAGE_KINDS.map((kind) => {
    const cols = (STAGE_COLUMNS[kind] as Column<never>[]).map((c) => `${c.name} ${c.type}`).join(', ');
    return sql`CREATE UNLOGGED TABLE ${stageTable(runId, kind)} (seq integer NOT NULL, h bigint, ${sql.raw(cols)})`;
  });
}

/** A kind's record columns, comma-separated, in COPY order. */
export const stageColumnList = (kind: StageKind): string => (STAGE_COLUMNS[kind] as Column<never>[]).map((c) => c.name).join(', ');

export function dropStageTablesSql(runId: string): RawBuilder<unknown> {
  return sql`DROP TABLE IF EXISTS ${sql.join(STAGE_KINDS.map((k) => stageTable(runId, k)))}`;
}

// COPY's text format: a row per line, tab-separated, \N for null; backslash,
// tab, newline and carriage return escaped. Records reach here cleaned of
// control characters (src/sync/record-prep.ts), so no NUL can occur.
const COPY_SPECIAL = /[\\\t\n\r]/;
const escapeCopy = (s: string) => (COPY_SPECIAL.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r')) : s);
const arrayLiteral = (items: readonly string[]) => `{${items.map((x) => `"${x.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;

function cell(v: Cell): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'boolean') return v ? 't' : 'f';
  if (Array.isArray(v)) return escapeCopy(arrayLiteral(v));
  return escapeCopy(v);
}

/** One record's columns as a COPY text line (no seq, hash or newline): also what its content hash is taken of. */
export function copyRow(kind: StageKind, record: unknown): string {
  const cols = STAGE_COLUMNS[kind] as Column<unknown>[];
  let out = cell(cols[0]!.of(record));
  for (let i = 1; i < cols.length; i += 1) out += `\t${cell(cols[i]!.of(record))}`;
  return out;
}

/** Rows as COPY text, each led by the batch's seq and the row's hash (COPY text of a signed bigint). */
export function copyText(seq: number, rows: readonly { h: string; line: string }[]): string {
  let out = '';
  for (const r of rows) out += `${seq}\t${r.h}\t${r.line}\n`;
  return out;
}

export function copyStatement(runId: string, kind: StageKind): string {
  return `COPY stage.${stageTableName(runId, kind)} (seq, h, ${stageColumnList(kind)}) FROM STDIN`;
}
