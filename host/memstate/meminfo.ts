// /proc/meminfo: "Name:   value kB" lines (fs/proc/meminfo.c). Values are kB except the
// HugePages_* counts, which have no unit. Unknown names are kept: kernels and vendors add fields.
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed, toInt } from './lines.js';

export interface Meminfo {
  /** Every field as printed: kB for "kB" lines, a plain count for unit-less ones (HugePages_*). */
  fields: Record<string, number>;
  unparsed: Unparsed;
}

const LINE = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+(kB))?\s*$/;

export function parseMeminfo(input: LineInput): Meminfo {
  const fields: Record<string, number> = Object.create(null);
  const unparsed = newUnparsed();
  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    const m = isSane(line) ? LINE.exec(line) : null;
    const value = m ? toInt(m[2]) : undefined;
    if (!m || value === undefined) {
      noteUnparsed(unparsed, line);
      continue;
    }
    if (!(m[1] in fields)) fields[m[1]] = value;
  }
  return { fields, unparsed };
}

/** Sum of the named fields, or undefined when none of them is present. */
export function sumFields(mi: Meminfo, names: readonly string[]): number | undefined {
  let total: number | undefined;
  for (const n of names) {
    const v = mi.fields[n];
    if (v !== undefined) total = (total ?? 0) + v;
  }
  return total;
}

/** File LRU in kB: Active(file) + Inactive(file). */
export function fileLruKb(mi: Meminfo): number | undefined {
  return sumFields(mi, ['Active(file)', 'Inactive(file)']);
}

/** Anon LRU in kB: Active(anon) + Inactive(anon). */
export function anonLruKb(mi: Meminfo): number | undefined {
  return sumFields(mi, ['Active(anon)', 'Inactive(anon)']);
}

/** get_nr_swap_pages() > 0 as userspace sees it: some swap is free. */
export function hasFreeSwap(mi: Meminfo): boolean {
  return (mi.fields['SwapFree'] ?? 0) > 0;
}

/**
 * System-wide reclaimable memory in kB, as zone_reclaimable_pages() counts it per zone
 * (mm/vmscan.c, and the seed note): file LRU, plus anon LRU only when swap pages are free.
 */
export function reclaimableKb(mi: Meminfo): number | undefined {
  const file = fileLruKb(mi);
  if (file === undefined) return undefined;
  return hasFreeSwap(mi) ? file + (anonLruKb(mi) ?? 0) : file;
}

/**
 * Memory no meminfo field accounts for (Android's "Lost RAM" idea): driver alloc_pages(),
 * DMA-BUF/ION/GPU buffers. Rising while slab and anon are flat points at a page-level leak.
 */
export function unaccountedKb(mi: Meminfo): number | undefined {
  const total = mi.fields['MemTotal'];
  const free = mi.fields['MemFree'];
  if (total === undefined || free === undefined) return undefined;
  const accounted = sumFields(mi, [
    'Buffers', 'Cached', 'SwapCached', 'AnonPages', 'Slab', 'KernelStack', 'PageTables',
    'SecPageTables', 'VmallocUsed', 'Percpu',
  ]) ?? 0;
  // Cached includes Shmem, and AnonPages does not: nothing is counted twice.
  const hugetlb = mi.fields['Hugetlb'] ?? 0;
  return total - free - accounted - hugetlb;
}
