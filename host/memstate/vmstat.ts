// /proc/vmstat: one "name value" pair per line, in pages unless the name ends in _B.
// Repeated names keep the first value (lkp's proc-vmstat monitor does the same: awk '!x[$1]++').
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed, toInt } from './lines.js';

export interface Vmstat {
  counters: Record<string, number>;
  unparsed: Unparsed;
}

const LINE = /^([a-z0-9_]+)\s+(-?\d+)\s*$/;

export function parseVmstat(input: LineInput): Vmstat {
  const counters: Record<string, number> = Object.create(null);
  const unparsed = newUnparsed();
  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    const m = isSane(line) ? LINE.exec(line) : null;
    const value = m ? toInt(m[2]) : undefined;
    if (!m || value === undefined) {
      noteUnparsed(unparsed, line);
      continue;
    }
    if (!(m[1] in counters)) counters[m[1]] = value;
  }
  return { counters, unparsed };
}

/** Unreclaimable slab in pages; newer kernels keep _B internally but print pages under the old name. */
export function slabUnreclaimablePages(vs: Vmstat): number | undefined {
  return vs.counters['nr_slab_unreclaimable'] ?? vs.counters['nr_slab_unreclaimable_B'];
}
