import { watch, type FSWatcher } from 'chokidar';
import type { Host } from './host.ts';

export interface DirWatch {
  /** Settles once changes are being watched (chokidar's first scan is done). */
  ready: Promise<void>;
  close(): Promise<void>;
}

interface Armed {
  watcher: FSWatcher;
  ready: Promise<void>;
}

/**
 * Calls onChange (debounced) when anything in a host directory is added, changed or removed.
 * Editors that save by writing a temp file and renaming it over the original produce several
 * events; the debounce turns them into one call after the directory has been quiet for debounceMs.
 * The directory need not exist yet: its appearing is a change too.
 */
export function watchDir(host: Host, dirHostPath: string, debounceMs: number, onChange: () => void): DirWatch {
  const dir = host.path(dirHostPath);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const arm = (): Armed => {
    const watcher = watch(dir, { ignoreInitial: true, atomic: true, depth: 0, persistent: true });
    const ready = new Promise<void>((resolve) => watcher.once('ready', resolve));
    watcher.on('all', (event, changed) => {
      if (closed) return;
      // chokidar sees a missing directory (or a missing parent) appear, but then watches nothing
      // inside it (paulmillr/chokidar#1422): a watch started afresh on what now exists does.
      if (event === 'addDir' && (changed === dir || dir.startsWith(`${changed}/`))) {
        void watcher.close();
        current = arm();
      }
      // Called once the watch is armed, so that what the call finds changed after it is reported again.
      const armed = current.ready;
      clearTimeout(timer);
      timer = setTimeout(() => void armed.then(() => closed || onChange()), debounceMs);
    });
    watcher.on('error', () => {
      // A vanished directory is noticed by the periodic reconcile; nothing to do here.
    });
    return { watcher, ready };
  };
  let current = arm();
  return {
    ready: current.ready,
    async close() {
      closed = true;
      clearTimeout(timer);
      await current.watcher.close();
    },
  };
}
