// Preloaded with --import by test/cli/lazy-load.test.ts: appends the URL of every module loaded
// from a file to $KUBENODE_LOADS, one per line, so a test can tell what a command loaded.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.KUBENODE_LOADS;
if (out === undefined) throw new Error('record-loads.ts needs KUBENODE_LOADS (the file to append to)');
registerHooks({
  load(url, context, next) {
    if (url.startsWith('file:')) appendFileSync(out, `${url}\n`);
    return next(url, context);
  },
});
