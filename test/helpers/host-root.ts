import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A scratch host root for one test; files are host paths written under it. */
export class TempRoot {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'kubenode-root-'));

  write(hostPath: string, content: string, mode = 0o644): string {
    const file = path.join(this.dir, hostPath);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
    chmodSync(file, mode);
    return file;
  }

  /** An executable shell script at a host path. */
  script(hostPath: string, body: string): string {
    return this.write(hostPath, `#!/bin/sh\n${body}\n`, 0o755);
  }

  path(hostPath: string): string {
    return path.join(this.dir, hostPath);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
