import type { RE2JS } from 're2js';
import type { Re2Regex } from '../../util/re2.ts';

// A log rule whose pattern can span any number of lines is searched in the whole buffer (up to
// bufferSize lines) after every line: O(bufferSize) per line, a core spun on a busy log. This
// filter runs the pattern's program over the log as a stream instead, each character once, and
// after each line says whether a match can end there and start inside the buffer; only then does
// the engine run its exact search. Work per line: line length × program size, whatever bufferSize.

/** One instruction of re2js's program, as far as the filter reads it. */
interface Inst {
  op: number;
  out: number;
  arg: number;
  matchRune(rune: number): boolean;
}

// re2js's opcodes (src/Inst.js).
const ALT = 1;
const ALT_MATCH = 2;
const CAPTURE = 3;
const EMPTY_WIDTH = 4;
const FAIL = 5;
const MATCH = 6;
const NOP = 7;
const RUNE = 8;
const RUNE1 = 9;
const RUNE_ANY = 10;
const RUNE_ANY_NOT_NL = 11;
const LB_WRITE = 12;
const LB_CHECK = 13;

/**
 * re2js's compiled program for a pattern: its instructions and the one an unanchored search
 * starts every position at. re2js does not document it (RE2JS#re2() returns its RE2, whose `prog`
 * is a Prog of Inst): this reads the internals of the version package-lock pins, and throws when
 * an upgrade changed their shape, which test/detectors/npd/reach-filter.test.ts checks.
 */
export function programOf(compiled: RE2JS): { inst: Inst[]; start: number } {
  const prog = (compiled.re2() as { prog?: { inst?: unknown; start?: unknown } }).prog;
  const inst = prog?.inst;
  const start = prog?.start;
  const shaped = (i: unknown): i is Inst => {
    const { op, out, arg, matchRune } = (i ?? {}) as Partial<Inst>;
    return Number.isInteger(op) && (op as number) >= ALT && (op as number) <= LB_CHECK && Number.isInteger(out) && Number.isInteger(arg) && typeof matchRune === 'function';
  };
  if (!Array.isArray(inst) || typeof start !== 'number' || !Number.isInteger(start) || start < 0 || start >= inst.length || !inst.every(shaped)) {
    throw new Error(`re2js's compiled program changed shape (pattern ${JSON.stringify(compiled.pattern())}): src/detectors/npd/reach-filter.ts reads its internals`);
  }
  return { inst, start };
}

/**
 * The pattern's program run as a Pike VM over every line fed to it, joined by "\n", with a thread
 * started at every position. Each state keeps only the latest line a thread in it started at: a
 * state's future does not depend on where its threads started, and the latest start is the one
 * that stays inside the window longest. The state list is kept in order of falling start (the new
 * thread at each position goes first), so the first thread to reach a state has its latest start.
 *
 * It may say "maybe" where there is no match, never the reverse: zero-width assertions (^ $ \A \z
 * \b \B) and lookbehinds count as always true, and the exact search decides. That serves rules
 * anchored at the buffer's start too: their match starts at the window's first line, inside the
 * window. Their exact search is not cheap, as it spans the whole buffer (`^(?s).*x` reads all of
 * it, and patterns only re2js runs are taken as anchored for want of their shape), so they are
 * filtered like the rest.
 */
export class ReachFilter {
  readonly #inst: Inst[];
  readonly #op: Uint8Array;
  readonly #out: Int32Array;
  readonly #arg: Int32Array;
  readonly #start: number;
  readonly #bufferSize: number;
  #pcs: Int32Array;
  #starts: Float64Array;
  #size = 0;
  #nextPcs: Int32Array;
  #nextStarts: Float64Array;
  #nextSize = 0;
  /** The position each instruction was last added at: membership of the list being built. */
  readonly #addedAt: Float64Array;
  readonly #stack: Int32Array;
  #position = 0;
  /** The latest start among threads that reached MATCH at the current position. */
  #matchStart = Number.NEGATIVE_INFINITY;
  #line = -1;
  /** Instructions visited and runes tested so far: the filter's work, for tests. */
  steps = 0;

  constructor(regex: Re2Regex, bufferSize: number) {
    const { inst, start } = programOf(regex.re2js);
    const n = inst.length;
    this.#inst = inst;
    this.#op = Uint8Array.from(inst, (i) => i.op);
    this.#out = Int32Array.from(inst, (i) => i.out);
    this.#arg = Int32Array.from(inst, (i) => i.arg);
    this.#start = start;
    this.#bufferSize = bufferSize;
    this.#pcs = new Int32Array(n);
    this.#starts = new Float64Array(n);
    this.#nextPcs = new Int32Array(n);
    this.#nextStarts = new Float64Array(n);
    this.#addedAt = new Float64Array(n).fill(-1);
    // An instruction is pushed only when first added at a position, so n entries suffice.
    this.#stack = new Int32Array(n);
    this.#add(start, 0);
    this.#swap();
  }

  /** Feeds the next line; true when a match may end at its end and start within the last bufferSize lines. */
  pushLine(message: string): boolean {
    const line = ++this.#line;
    // Threads started at or before this line are out of the window, now and for every later line.
    const floor = line - this.#bufferSize;
    if (line > 0) this.#step(0x0a, line, floor);
    for (let i = 0; i < message.length; ) {
      const rune = message.codePointAt(i) as number;
      i += rune > 0xffff ? 2 : 1;
      this.#step(rune, line, floor);
    }
    return this.#matchStart > floor;
  }

  /** Consumes one rune: the position after it lies in `line`. */
  #step(rune: number, line: number, floor: number): void {
    this.#position += 1;
    this.#nextSize = 0;
    this.#matchStart = Number.NEGATIVE_INFINITY;
    this.#add(this.#start, line);
    const op = this.#op;
    for (let k = 0; k < this.#size; k++) {
      const start = this.#starts[k] as number;
      if (start <= floor) break;
      const pc = this.#pcs[k] as number;
      const code = op[pc] as number;
      this.steps += 1;
      const takes = code === RUNE_ANY || (code === RUNE_ANY_NOT_NL ? rune !== 0x0a : (this.#inst[pc] as Inst).matchRune(rune));
      if (takes) this.#add(this.#out[pc] as number, start);
    }
    this.#swap();
  }

  /** Adds the instructions reachable from pc without consuming a rune, for a thread started at `start`. */
  #add(pc: number, start: number): void {
    const addedAt = this.#addedAt;
    const position = this.#position;
    if (addedAt[pc] === position) return;
    addedAt[pc] = position;
    const stack = this.#stack;
    let top = 0;
    stack[top++] = pc;
    while (top > 0) {
      const at = stack[--top] as number;
      this.steps += 1;
      let next = -1;
      let other = -1;
      switch (this.#op[at]) {
        case ALT:
        case ALT_MATCH:
          next = this.#out[at] as number;
          other = this.#arg[at] as number;
          break;
        case CAPTURE:
        case EMPTY_WIDTH:
        case NOP:
        case LB_WRITE:
        case LB_CHECK:
          next = this.#out[at] as number;
          break;
        case MATCH:
          if (start > this.#matchStart) this.#matchStart = start;
          break;
        case RUNE:
        case RUNE1:
        case RUNE_ANY:
        case RUNE_ANY_NOT_NL:
          this.#nextPcs[this.#nextSize] = at;
          this.#nextStarts[this.#nextSize] = start;
          this.#nextSize += 1;
          break;
        case FAIL:
          break;
      }
      if (other >= 0 && addedAt[other] !== position) {
        addedAt[other] = position;
        stack[top++] = other;
      }
      if (next >= 0 && addedAt[next] !== position) {
        addedAt[next] = position;
        stack[top++] = next;
      }
    }
  }

  #swap(): void {
    const pcs = this.#pcs;
    const starts = this.#starts;
    this.#pcs = this.#nextPcs;
    this.#starts = this.#nextStarts;
    this.#size = this.#nextSize;
    this.#nextPcs = pcs;
    this.#nextStarts = starts;
  }
}
