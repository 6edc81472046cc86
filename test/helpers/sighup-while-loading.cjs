// Preloaded with `node --require` before the agent's bundle: sends the process a SIGHUP at the
// first require() the bundle makes after its banner's, that is while its modules are still being
// evaluated, long before `run` has parsed its arguments. Without a handler by then, SIGHUP's
// default action ends the process.
const Module = require('node:module');
const original = Module.prototype.require;
let sent = false;
Module.prototype.require = function require(id) {
  if (!sent && id !== 'node:url' && typeof this.filename === 'string' && this.filename.endsWith('kubenode-agent.cjs')) {
    sent = true;
    process.kill(process.pid, 'SIGHUP');
    process.stderr.write('sighup-while-loading: sent\n');
  }
  return original.apply(this, arguments);
};
