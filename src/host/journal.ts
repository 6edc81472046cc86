import { fstatSync } from 'node:fs';

/** systemd sets JOURNAL_STREAM to the device:inode of the stream it connected to stdout/stderr. */
export function connectedToJournal(fd: number): boolean {
  const stream = process.env.JOURNAL_STREAM;
  if (stream === undefined) return false;
  try {
    const st = fstatSync(fd);
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}
