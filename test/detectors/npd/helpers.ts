import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSystemLogMonitor, type ParsedLogMonitor } from '../../../src/detectors/npd/config.ts';
import type { LogLine } from '../../../src/detectors/npd/log-rules.ts';

export const NPD_CONFIG_DIR = fileURLToPath(new URL('../../fixtures/npd/config/', import.meta.url));

export function referenceMonitor(name: string): ParsedLogMonitor {
  const file = `${NPD_CONFIG_DIR}${name}`;
  return parseSystemLogMonitor(file, readFileSync(file, 'utf8'));
}

export function inlineMonitor(doc: object): ParsedLogMonitor {
  return parseSystemLogMonitor('inline.json', JSON.stringify(doc));
}

export interface CapturedLine {
  reason: string | null;
  near?: string;
  kernel: string;
  source: string;
  message: string;
}

export const capturedKernelLines: CapturedLine[] = (
  JSON.parse(readFileSync(new URL('../../fixtures/npd/kernel-lines.json', import.meta.url), 'utf8')) as { lines: CapturedLine[] }
).lines;

export const at = (timestamp: number, message: string): LogLine => ({ timestamp, message });
