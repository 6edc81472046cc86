// Run by test/host/archive.test.ts in a fresh process, so that its peak RSS is this call's alone:
//   node test/host/archive-rss.ts inspect|extract FILE MAX_UNPACKED_BYTES MAX_ENTRIES [DEST]
// Prints {"refused": bool, "message": string, "rssGrowthMB": number}.
import { extractTarball, inspectTarball } from '../../src/host/archive.ts';
import { createHost } from '../../src/host/host.ts';

const [op, file, maxUnpacked, maxEntries, dest] = process.argv.slice(2);
const host = createHost();
const limits = { strip: 0, maxUnpackedBytes: Number(maxUnpacked), maxEntries: Number(maxEntries) };
const before = process.resourceUsage().maxRSS;
let refused = false;
let message = '';
try {
  if (op === 'extract') await extractTarball(host, file as string, dest as string, limits);
  else await inspectTarball(host, file as string, limits);
} catch (err) {
  refused = true;
  message = err instanceof Error ? err.message : String(err);
}
console.log(JSON.stringify({ refused, message, rssGrowthMB: (process.resourceUsage().maxRSS - before) / 1024 }));
