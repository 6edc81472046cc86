import type { Condition, ConditionStatus, ProblemEvent } from '../../types.ts';
import type { ParsedLogMonitor } from './config.ts';
import { requiredLiteral, type Re2Regex } from '../../util/re2.ts';
import { ReachFilter } from './reach-filter.ts';
import { detach } from '../../util/strings.ts';

export interface LogLine {
  /** Epoch ms. */
  timestamp: number;
  message: string;
}

export interface Recovery {
  /** Condition type → ms a True condition holds without a new match before it clears. */
  expiryMs: Record<string, number>;
  patterns: { condition: string; regex: Re2Regex }[];
}

interface CompiledRule {
  index: number;
  type: 'temporary' | 'permanent';
  condition: string | undefined;
  reason: string;
  suffix: string;
  regex: Re2Regex;
  /** Index into the literal table; -1 when the rule has no literal to prefilter on. */
  literal: number;
  /** For a pattern whose reach has no bound: whether a match can end at the newest line, fed every line. */
  reach: ReachFilter | undefined;
}

export interface LogRuleEngineOptions {
  /** false searches the whole buffer after every line for rules of unbounded reach, as before the filter: for the benchmark's "before". */
  reachFilter?: boolean;
}

/** NPD's condition-change event (pkg/util GenerateConditionChangeEvent): warn when the condition turns True, else info. */
export function conditionChangeEvent(type: string, status: ConditionStatus, reason: string, message: string, timestamp: number): ProblemEvent {
  return { severity: status === 'True' ? 'warn' : 'info', reason, message: `Node condition ${type} is now: ${status}, reason: ${reason}, message: ${JSON.stringify(message)}`, timestamp };
}

export function defaultConditions(declared: readonly { type: string; reason: string; message: string }[], now: number): Condition[] {
  return declared.map((c) => ({ type: c.type, status: 'False', reason: c.reason, message: c.message, transitionTime: now }));
}

/** The lines from the one holding character `offset` of their newline-joined text. */
function linesFrom(lines: readonly LogLine[], offset: number): LogLine[] {
  for (let i = 0, pos = 0; i < lines.length; i++) {
    const len = (lines[i] as LogLine).message.length + 1;
    if (offset < pos + len) return lines.slice(i);
    pos += len;
  }
  return lines.slice();
}

/**
 * NPD's system-log-monitor semantics (pkg/systemlogmonitor): each line is pushed into a
 * buffer of the last bufferSize lines; a rule matches when its pattern matches the joined
 * buffer up to its very end; the message is the matched lines. Temporary rules raise a
 * warning event; permanent rules set their condition True and raise an event when the
 * condition's status or reason changes.
 */
export class LogRuleEngine {
  readonly #rules: CompiledRule[];
  readonly #literals: string[];
  readonly #lastSeen: number[];
  readonly #bufferSize: number;
  readonly #buffer: LogLine[] = [];
  readonly #defaults: Map<string, { reason: string; message: string }>;
  readonly #recovery: Recovery;
  readonly #conditions: Map<string, Condition>;
  /** Condition type → timestamp of the last line that set it. */
  readonly #lastMatch = new Map<string, number>();
  #lineNo = 0;

  constructor(monitor: ParsedLogMonitor, recovery: Recovery, previous: readonly Condition[], now: number, options: LogRuleEngineOptions = {}) {
    this.#bufferSize = monitor.bufferSize;
    this.#recovery = recovery;
    const literals = new Map<string, number>();
    this.#rules = monitor.config.rules.map((rule, index) => {
      const literal = requiredLiteral(rule.pattern);
      if (literal !== undefined && !literals.has(literal)) literals.set(literal, literals.size);
      const literalIndex = literal === undefined ? -1 : (literals.get(literal) as number);
      const regex = monitor.patterns[index] as Re2Regex;
      return {
        index,
        type: rule.type,
        condition: rule.condition,
        reason: rule.reason,
        suffix: rule.patternGeneratedMessageSuffix ?? '',
        regex,
        literal: literalIndex,
        reach: options.reachFilter !== false && regex.maxLineBreaks === Infinity ? new ReachFilter(regex, monitor.bufferSize) : undefined,
      };
    });
    this.#literals = [...literals.keys()];
    this.#lastSeen = this.#literals.map(() => Number.NEGATIVE_INFINITY);
    const declared = monitor.config.conditions ?? [];
    this.#defaults = new Map(declared.map((c) => [c.type, { reason: c.reason, message: c.message }]));
    this.#conditions = new Map(defaultConditions(declared, now).map((c) => [c.type, c]));
    for (const prev of previous) {
      if (this.#conditions.has(prev.type)) {
        this.#conditions.set(prev.type, { ...prev });
        if (prev.status === 'True') this.#lastMatch.set(prev.type, prev.transitionTime);
      }
    }
  }

  get conditions(): Condition[] {
    return [...this.#conditions.values()].map((c) => ({ ...c }));
  }

  process(lines: readonly LogLine[]): ProblemEvent[] {
    const events: ProblemEvent[] = [];
    for (const line of lines) this.#processLine(line, events);
    return events;
  }

  /** When the next True condition expires without a new match (epoch ms), or undefined when none will. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const [type, ms] of Object.entries(this.#recovery.expiryMs)) {
      const last = this.#lastMatch.get(type);
      if (this.#conditions.get(type)?.status === 'True' && last !== undefined && ms > 0) next = Math.min(next ?? Infinity, last + ms);
    }
    return next;
  }

  /** Clears True conditions whose expiry has passed; returns the change events. */
  expire(now: number): ProblemEvent[] {
    const events: ProblemEvent[] = [];
    for (const [type, ms] of Object.entries(this.#recovery.expiryMs)) {
      const cond = this.#conditions.get(type);
      const last = this.#lastMatch.get(type);
      if (cond?.status === 'True' && last !== undefined && ms > 0 && now - last >= ms) {
        this.#reset(type, now, `no new match for ${Math.round(ms / 1000)}s`, events);
      }
    }
    return events;
  }

  #processLine(line: LogLine, events: ProblemEvent[]): void {
    const lineNo = this.#lineNo++;
    this.#buffer.push(line);
    if (this.#buffer.length > this.#bufferSize) this.#buffer.shift();
    for (let i = 0; i < this.#literals.length; i++) {
      if (line.message.includes(this.#literals[i] as string)) this.#lastSeen[i] = lineNo;
    }
    const joined = new Map<number, string>();
    for (const rule of this.#rules) {
      // A match ends at the end of the buffer, so one with at most k newlines lies in the last
      // k+1 lines, and only they are searched: the work per line then grows with the pattern's
      // reach, not with bufferSize. One anchored at the buffer's start must span the whole buffer.
      // A reach without bound spans the whole buffer: such a rule's filter, fed each line once,
      // lets the search run only after a line where a match can end and start inside the buffer.
      if (rule.reach !== undefined && !rule.reach.pushLine(line.message)) continue;
      const { maxLineBreaks, anchoredStart } = rule.regex;
      if (anchoredStart && this.#buffer.length > maxLineBreaks + 1) continue;
      const span = anchoredStart ? this.#buffer.length : Math.min(this.#buffer.length, maxLineBreaks + 1);
      if (rule.literal >= 0 && lineNo - (this.#lastSeen[rule.literal] as number) >= span) continue;
      let matched: LogLine[];
      if (span === 1) {
        if (rule.regex.exec(line.message) === null) continue;
        matched = [line];
      } else {
        const window = this.#buffer.slice(-span);
        let text = joined.get(span);
        if (text === undefined) joined.set(span, (text = window.map((l) => l.message).join('\n')));
        const m = rule.regex.exec(text);
        if (m === null) continue;
        matched = linesFrom(window, m.index);
      }
      const message = detach(matched.map((l) => l.message).join(' ') + rule.suffix);
      const timestamp = (matched[0] as LogLine).timestamp;
      if (rule.type === 'temporary') {
        events.push({ severity: 'warn', reason: rule.reason, message, timestamp });
      } else {
        this.#setTrue(rule, message, timestamp, events);
      }
    }
    for (const { condition, regex } of this.#recovery.patterns) {
      if (this.#conditions.get(condition)?.status === 'True' && regex.test(line.message)) {
        this.#reset(condition, line.timestamp, detach(line.message), events);
      }
    }
  }

  #setTrue(rule: CompiledRule, message: string, timestamp: number, events: ProblemEvent[]): void {
    const cond = this.#conditions.get(rule.condition as string);
    if (cond === undefined) return;
    this.#lastMatch.set(cond.type, timestamp);
    if (cond.status !== 'True' || cond.reason !== rule.reason) {
      cond.transitionTime = timestamp;
      cond.message = message;
      events.push(conditionChangeEvent(cond.type, 'True', rule.reason, message, timestamp));
    }
    cond.status = 'True';
    cond.reason = rule.reason;
  }

  #reset(type: string, timestamp: number, why: string, events: ProblemEvent[]): void {
    const def = this.#defaults.get(type);
    if (def === undefined) return;
    this.#conditions.set(type, { type, status: 'False', reason: def.reason, message: def.message, transitionTime: timestamp });
    this.#lastMatch.delete(type);
    events.push(conditionChangeEvent(type, 'False', def.reason, `${def.message} (recovered: ${why})`, timestamp));
  }
}
