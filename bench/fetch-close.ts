// Why downloads do not use fetch: Node's bundled undici against a server that closes the
// connection right after a response body the client has not read yet (nodejs/undici#5360).
//
//   node bench/fetch-close.ts [runs=12]        # the pinned Node
//   /path/to/other/node bench/fetch-close.ts   # another one, for comparison
//
// Prints how many of the runs completed, failed with an error, and hit an uncaught exception
// (the undici parser's assertion, which no try/catch around fetch can see).
import net from 'node:net';

const runs = Number(process.argv[2] ?? 12);
const body = Buffer.alloc(256 * 1024, 0x61);
const server = net.createServer((socket) => {
  socket.on('error', () => undefined);
  socket.once('data', () => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    socket.write(body);
    socket.end();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
const uncaught: string[] = [];
process.on('uncaughtException', (err) => uncaught.push(err.message.split('\n').find((l) => l.includes('assert')) ?? err.message));
let completed = 0;
let failed = 0;
for (let i = 0; i < runs; i++) {
  try {
    const response = await fetch(url);
    // A consumer busy elsewhere (a disk write, another download) before it reads the body.
    await new Promise((resolve) => setTimeout(resolve, 50));
    // ...and pauses between chunks, as a download does while its disk write completes.
    for await (const chunk of response.body ?? []) await new Promise((resolve) => setTimeout(resolve, chunk.length > 0 ? 1 : 0));
    completed += 1;
  } catch {
    failed += 1;
  }
}
server.close();
console.log(`node ${process.version} (undici ${process.versions.undici}): ${runs} runs, ${completed} completed, ${failed} failed, ${uncaught.length} uncaught${uncaught.length > 0 ? ` (${uncaught[0]?.trim()})` : ''}`);
