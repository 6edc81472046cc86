// A secret a command must read by file name (ipmitool -f), on the machine this process runs on
// (not re-rooted under --root): in a fresh directory only this user can enter, removed after use.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function withPrivateFile<T>(content: string, use: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kubenode-secret-'));
  try {
    const file = join(dir, 'secret');
    await writeFile(file, content, { mode: 0o600, flag: 'wx' });
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
