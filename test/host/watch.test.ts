// watchDir on real directories under a temp root (chokidar on inotify): every change is seen,
// whether the directory was there at the start, appeared later, or was removed and made again.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import { createHost } from '../../src/host/host.ts';
import { watchDir, type DirWatch } from '../../src/host/watch.ts';
import { TempRoot } from '../helpers/host-root.ts';

const DEBOUNCE_MS = 20;
const open: { root: TempRoot; watch: DirWatch }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.watch.close();
    o.root.remove();
  }
});

/** A ready watch on ROOT/etc/kubenode/components and the number of onChange calls so far. */
async function watching(prepare: (dir: string) => void): Promise<{ dir: string; calls: () => number }> {
  const root = new TempRoot();
  const dir = path.join(root.dir, 'etc/kubenode/components');
  prepare(dir);
  let n = 0;
  const watch = watchDir(createHost({ root: root.dir }), '/etc/kubenode/components', DEBOUNCE_MS, () => (n += 1));
  open.push({ root, watch });
  await watch.ready;
  return { dir, calls: () => n };
}

/** Makes one change and waits for one more onChange call (10 s at most). */
async function seenAfter(calls: () => number, change: () => void): Promise<void> {
  const seen = calls();
  change();
  const deadline = Date.now() + 10_000;
  while (calls() === seen) {
    assert.ok(Date.now() < deadline, 'the change was never reported');
    await new Promise((r) => setTimeout(r, 20));
  }
  // The debounce has fired: what follows is a change of its own.
}

const write = (dir: string, name: string) => (): void => writeFileSync(path.join(dir, name), `${Date.now()}\n`);

test('a directory there from the start: a file written in it is reported', async () => {
  const w = await watching((dir) => mkdirSync(dir, { recursive: true }));
  await seenAfter(w.calls, write(w.dir, 'a.yaml'));
});

for (const [missing, parentToo] of [['the directory', false], ['the directory and its parent', true]] as const) {
  test(`${missing} missing at the start: its appearing is reported, and so is a file written in it after that`, async () => {
    const w = await watching((dir) => mkdirSync(parentToo ? path.dirname(path.dirname(dir)) : path.dirname(dir), { recursive: true }));
    await seenAfter(w.calls, () => mkdirSync(w.dir, { recursive: true }));
    await seenAfter(w.calls, write(w.dir, 'a.yaml'));
  });
}

test('a directory removed and made again: a file written in the new one is reported', async () => {
  const w = await watching((dir) => mkdirSync(dir, { recursive: true }));
  await seenAfter(w.calls, () => rmSync(w.dir, { recursive: true, force: true }));
  await seenAfter(w.calls, () => mkdirSync(w.dir, { recursive: true }));
  await seenAfter(w.calls, write(w.dir, 'b.yaml'));
});
