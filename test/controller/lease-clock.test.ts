// The agents' Lease staleness under a fake clock: renewals queue nothing, a Lease that goes stale
// is reported at the moment it expires (no periodic recheck), and the idle wakeups of the whole
// fleet do not grow with the number of nodes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaseClock } from '../../src/controller/rollout/lease-clock.ts';
import { agentLeaseName } from '../../src/report/kube/lease.ts';
import type { LeaseObject } from '../../src/controller/rollout/reconciler.ts';
import type { InformerEvent } from '../../src/watch/informer.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const lease = (machine: string, renewMs: number, durationS = 40, namespace = 'kube-node-lease'): LeaseObject => ({
  metadata: { name: `kubenode-agent-${machine}`, namespace },
  spec: { renewTime: new Date(renewMs).toISOString(), leaseDurationSeconds: durationS },
});

function fleet(clock: FakeClock) {
  const changes: { machine: string; at: number }[] = [];
  const lc = new LeaseClock({ clock, changed: (machine) => changes.push({ machine, at: clock.now() }) });
  const current = new Map<string, LeaseObject>();
  const put = (l: LeaseObject): void => {
    const key = l.metadata.name;
    const old = current.get(key);
    current.set(key, l);
    lc.observe((old === undefined ? { type: 'add', object: l } : { type: 'update', object: l, old }) as InformerEvent<LeaseObject>);
  };
  const del = (machine: string): void => {
    const l = current.get(`kubenode-agent-${machine}`) as LeaseObject;
    current.delete(l.metadata.name);
    lc.observe({ type: 'delete', object: l } as InformerEvent<LeaseObject>);
  };
  return { lc, changes, put, del };
}

/** `seconds` of agents renewing every 10 s, spread over the interval; `skip` stop renewing. */
async function renewFor(clock: FakeClock, f: ReturnType<typeof fleet>, nodes: number, seconds: number, skip = new Set<string>()): Promise<void> {
  for (let s = 0; s < seconds; s++) {
    for (let n = 0; n < nodes; n++) {
      const m = `n-${n}`;
      if (!skip.has(m) && (s + n) % 10 === 0) f.put(lease(m, clock.now()));
    }
    await clock.advance(1000);
  }
}

describe('agent Lease staleness', () => {
  it('renewals queue nothing, and the fleet’s idle wakeups do not grow with its size', async () => {
    const wakeups: number[] = [];
    for (const nodes of [10, 1000]) {
      const clock = new FakeClock();
      const f = fleet(clock);
      for (let n = 0; n < nodes; n++) f.put(lease(`n-${n}`, clock.now()));
      assert.equal(f.changes.length, nodes, 'each Lease seen for the first time, fresh, is a change');
      f.changes.length = 0;
      await renewFor(clock, f, nodes, 600);
      assert.deepEqual(f.changes, [], 'renewals of fresh Leases queue nothing');
      assert.equal(f.lc.watching, nodes);
      wakeups.push(f.lc.wakeups);
      f.lc.stop();
    }
    // 600 s with Leases of 40 s renewed every 10 s: the timer stands at the oldest renewal's expiry,
    // at least 30 s ahead, so at most one firing per 30 s whatever the fleet's size.
    assert.equal(wakeups[0], wakeups[1], `wakeups for 10 and 1000 nodes: ${wakeups.join(', ')}`);
    assert.ok((wakeups[1] as number) <= 600 / 30 + 1, `${wakeups[1]} wakeups in 600 s`);
  });

  it('a Lease that stops renewing is reported the moment it goes stale, and again when it renews', async () => {
    const clock = new FakeClock();
    const f = fleet(clock);
    for (let n = 0; n < 50; n++) f.put(lease(`n-${n}`, clock.now()));
    f.changes.length = 0;
    await renewFor(clock, f, 50, 30);
    const last = lastRenewal(clock, 7, 30);
    await renewFor(clock, f, 50, 60, new Set(['n-7']));
    assert.deepEqual(f.changes.map((c) => c.machine), ['n-7']);
    const at = (f.changes[0] as { at: number }).at;
    assert.ok(at > last + 40_000 && at <= last + 41_000, `reported ${at - last} ms after its last renewal`);
    f.changes.length = 0;
    f.put(lease('n-7', clock.now()));
    assert.deepEqual(f.changes.map((c) => c.machine), ['n-7'], 'fresh again');
    f.lc.stop();
  });

  it('stale Leases come out in the order they expire; a deleted fresh Lease is a change; other Leases are ignored', async () => {
    const clock = new FakeClock();
    const f = fleet(clock);
    const durations = Array.from({ length: 200 }, (_, i) => 5 + ((i * 7919) % 97));
    durations.forEach((d, i) => f.put(lease(`r-${i}`, clock.now(), d)));
    f.put(lease('other', clock.now(), 5, 'default'));
    f.changes.length = 0;
    f.del('r-3');
    assert.deepEqual(f.changes.map((c) => c.machine), ['r-3']);
    f.changes.length = 0;
    const start = clock.now();
    for (let s = 0; s < 110; s++) await clock.advance(1000);
    const want = durations.map((d, i) => ({ m: `r-${i}`, d })).filter((x) => x.m !== 'r-3');
    assert.equal(f.changes.length, want.length);
    for (const c of f.changes) {
      const d = (want.find((x) => x.m === c.machine) as { d: number }).d * 1000;
      assert.ok(c.at - start > d && c.at - start <= d + 1000, `${c.machine} (${d} ms) reported after ${c.at - start} ms`);
    }
    const order = f.changes.map((c) => c.at);
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
    assert.equal(f.lc.watching, 0);
    f.lc.stop();
  });
});

describe('agent Lease staleness for node names too long for kubenode-agent-<node>', () => {
  // 253 characters, the same first 250: shortened Lease names that differ only by the hash.
  const long = (tail: string): string => `${'gpu-node.rack-07.example.'.repeat(11).slice(0, 250)}${tail}`;
  const held = (machine: string, renewMs: number, holder = machine): LeaseObject => ({
    metadata: { name: agentLeaseName(machine), namespace: 'kube-node-lease' },
    spec: { holderIdentity: holder, renewTime: new Date(renewMs).toISOString(), leaseDurationSeconds: 40 },
  });

  it('a shortened name is read back to its machine through holderIdentity', async () => {
    const clock = new FakeClock();
    const f = fleet(clock);
    const [a, b] = [long('aaa'), long('bbb')];
    assert.ok(agentLeaseName(a).length <= 253 && agentLeaseName(a) !== agentLeaseName(b));
    f.put(held(a, clock.now()));
    f.put(held(b, clock.now() + 5000));
    f.put(lease('short', clock.now() + 2000));
    assert.deepEqual(f.changes.map((c) => c.machine), [a, b, 'short']);
    f.changes.length = 0;
    await clock.advance(46_000);
    assert.deepEqual(f.changes.map((c) => c.machine), [a, 'short', b], 'each reported stale under its own name');
    f.lc.stop();
  });

  it('a Lease whose holderIdentity stops naming its node: it went for that node and came for the one its name says', async () => {
    const clock = new FakeClock();
    const f = fleet(clock);
    const a = long('aaa');
    f.put(held(a, clock.now()));
    f.changes.length = 0;
    // Someone wrote another holder: the name less the prefix is all that is left to go by.
    f.put(held(a, clock.now(), 'someone'));
    const fallback = agentLeaseName(a).slice('kubenode-agent-'.length);
    assert.deepEqual(f.changes.map((c) => c.machine), [a, fallback]);
    assert.equal(f.lc.watching, 1, 'no entry left behind for the machine it stopped naming');
    f.changes.length = 0;
    await clock.advance(41_000);
    assert.deepEqual(f.changes.map((c) => c.machine), [fallback]);
    f.lc.stop();
  });
});

/** When renewFor last renewed node n (it renews n when (s + n) % 10 === 0), having run `seconds` from the clock's start. */
function lastRenewal(clock: FakeClock, n: number, seconds: number): number {
  const start = clock.now() - seconds * 1000;
  let s = seconds - 1;
  while ((s + n) % 10 !== 0) s--;
  return start + s * 1000;
}
