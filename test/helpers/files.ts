import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under dir, at any depth, whose name ends with suffix (e.g. '.yaml'), as full paths. */
export function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name), suffix) : e.name.endsWith(suffix) ? [join(dir, e.name)] : [],
  );
}
