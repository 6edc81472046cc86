import { watch } from 'chokidar';
import type { Host } from './host.ts';

export interface DirWatch {
  close(): Promise<void>;
}

/**
 * Calls onChange (debounced) when anything in a host directory is added, changed or removed.
 * Editors that save by writing a temp file and renaming it over the original produce several
 * events; the debounce turns them into one call after the directory has been quiet for debounceMs.
 */
export function watchDir(host: Host, dirHostPath: string, debounceMs: number, onChange: () => void): DirWatch {
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(host.path(dirHostPath), { ignoreInitial: true, atomic: true, depth: 0, persistent: true });
  watcher.on('all', () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  watcher.on('error', () => {
    // A vanished directory is noticed by the periodic reconcile; nothing to do here.
  });
  return {
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
