// Helpers for tests of probed detectors (storage, pressure, clock, network, systemd).
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TObject } from '@sinclair/typebox';
import pino from 'pino';
import type { Detector, DetectorDefinition, Mode } from '../../src/detectors/engine/types.ts';
import type { Clock } from '../../src/host/clock.ts';
import { createHost } from '../../src/host/host.ts';
import type { Condition, DetectorResult } from '../../src/types.ts';
import { FIXTURES } from '../helpers/cli.ts';
import { decodeSection } from '../../src/config/decode.ts';

export const HOSTS = path.join(FIXTURES, 'hosts');

/** A detector built from its definition with the schema defaults plus `overrides`, on a host rooted at `root`; `silenced` is ctx.silenced (detection.silencedReasons). */
export function makeDetector<S extends TObject>(
  def: DetectorDefinition<S>,
  root: string,
  options: { mode?: Mode; config?: Record<string, unknown>; clock?: Clock; previous?: Condition[]; silenced?: string[] } = {},
): Detector {
  const config = decodeSection('test', def.configSchema, options.config ?? {}) as never;
  const host = createHost({ root, ...(options.clock === undefined ? {} : { clock: options.clock }) });
  return def.create(config, { host, log: pino({ level: 'silent' }), nodeName: 'test-node', mode: options.mode ?? 'check', previous: options.previous ?? [], silenced: new Set(options.silenced ?? []) });
}

/** A private copy of a fixture host, removed by the returned cleanup. */
export function copyHost(name: string): { root: string; cleanup: () => void } {
  const root = mkdtempSync(path.join(os.tmpdir(), `kubenode-${name}-`));
  cpSync(path.join(HOSTS, name), root, { recursive: true });
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function condition(result: DetectorResult, type: string): Condition {
  const c = result.conditions.find((x) => x.type === type);
  if (c === undefined) throw new Error(`no ${type} condition in ${JSON.stringify(result.conditions)}`);
  return c;
}

export const signal = (): AbortSignal => new AbortController().signal;
