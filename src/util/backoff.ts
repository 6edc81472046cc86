/**
 * The delay before retry number `attempt` (0 for the first): baseMs doubled per attempt, capped at
 * maxMs, then jittered to between half and all of it so that agents failing together do not
 * come back together. Callers wait it out on the Host clock, so a test's fake clock drives it.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.round(d / 2 + random() * (d / 2));
}
