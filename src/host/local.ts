import { readFile } from 'node:fs/promises';

/**
 * Reads a file the operator named on the command line (--config, --config.system-log-monitor):
 * those are paths on the machine the agent runs on, never re-rooted under --root.
 */
export function readLocalText(file: string): Promise<string> {
  return readFile(file, 'utf8');
}
