import { Writable } from 'node:stream';
import { to as copyTo } from 'pg-copy-streams';

// Reading `COPY … TO STDOUT (FORMAT binary)` in the worker: the mirror's
// hashes (snapshot-mirror.ts) and the page memo (page-memo.ts), never a JS
// object per row. Format: https://www.postgresql.org/docs/current/sql-copy.html
// (Binary Format).

/**
 * A COPY TO stream that lets node-postgres clear its query_timeout timer.
 * pg arms that timer for every query and clears it from the query's callback,
 * which pg-copy-streams' COPY FROM calls and its COPY TO never does
 * (brianc/node-pg-copy-streams#156, open): the timer (here 11 minutes) then
 * outlives the copy and keeps a CLI process that ran the sync itself from
 * exiting. The workaround is the one given in that issue.
 */
export function copyToSettled(text: string): ReturnType<typeof copyTo> {
  const stream = copyTo(text) as ReturnType<typeof copyTo> & { callback?: (err?: Error) => void; handleError(e: Error): void; handleReadyForQuery(): void };
  stream.callback = () => undefined;
  const handleError = stream.handleError.bind(stream);
  const handleReadyForQuery = stream.handleReadyForQuery.bind(stream);
  stream.handleError = (e: Error) => { stream.callback?.(); handleError(e); };
  stream.handleReadyForQuery = () => { stream.callback?.(); handleReadyForQuery(); };
  return stream;
}

/**
 * A sink for a binary COPY: the 19-byte header (signature 11, flags 4,
 * header extension length 4, always 0) is skipped, and `read` is handed what
 * has arrived past it, a chunk at a time, with whatever the previous call
 * left unread in front. `read(buf, from)` reads tuples from `from` (and the
 * trailer, a field count of -1) and returns where it stopped: the start of a
 * tuple's head not yet whole. An error it throws fails the copy.
 */
export function binaryCopySink(read: (buf: Buffer, from: number) => number): Writable {
  let headerLeft = 19;
  let carry: Buffer = Buffer.alloc(0);
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const buf: Buffer = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const skip = Math.min(headerLeft, buf.length);
      headerLeft -= skip;
      let at: number;
      try {
        at = read(buf, skip);
      } catch (err) {
        done(err as Error);
        return;
      }
      // What is left is a few bytes of a tuple's head at most: copied, so the chunk is not held.
      carry = Buffer.from(buf.subarray(at));
      done();
    },
  });
}
