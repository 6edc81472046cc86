import { readdir, readFile } from 'node:fs/promises';

/** Lists a directory the operator named on the command line (not re-rooted under --root). */
export function readLocalDir(dir: string): Promise<string[]> {
  return readdir(dir);
}

export function readLocalFile(file: string): Promise<string> {
  return readFile(file, 'utf8');
}
