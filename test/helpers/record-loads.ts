// Preloaded with --import by test/cli/lazy-load.test.ts: writes the URL of every module loaded
// from a file to stderr, one `kubenode-loaded: URL` line each, so a test can tell what a command loaded.
import { writeSync } from 'node:fs';
import { registerHooks } from 'node:module';

registerHooks({
  load(url, context, next) {
    if (url.startsWith('file:')) writeSync(2, `kubenode-loaded: ${url}\n`);
    return next(url, context);
  },
});
