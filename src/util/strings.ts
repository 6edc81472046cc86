/**
 * An unshared copy of a string. V8 keeps a substring of 13 characters or more as a view into the
 * string it was cut from, so a log line split out of a 256 KiB read chunk (src/host/log-follow.ts)
 * holds the whole chunk for as long as the line lives. What outlives its batch (an event's or a
 * condition's message, a victim's name) is copied once, when it is kept; lines that are only
 * matched stay views.
 */
export function detach(s: string): string {
  return Buffer.from(s, 'utf16le').toString('utf16le');
}
