// Imported first by main: from the entry module's first statement, a SIGHUP to `run` (systemd's
// reload) is noted instead of Node's default of ending the process, until run's own listener takes over.
let noted = false;
const note = (): void => {
  noted = true;
};
if (process.argv.slice(2).includes('run')) process.on('SIGHUP', note);

/** Stops noting; says whether a SIGHUP arrived before. Call once run's own listener is registered. */
export function takeEarlySighup(): boolean {
  process.off('SIGHUP', note);
  return noted;
}
