// /proc/buddyinfo: the live free_area[order].nr_free of every zone (mm/vmstat.c frag_show_print).
// "Node 0, zone   Normal   1117   1301 ..." — column k = free blocks of 2^k pages. The number of
// columns is MAX_ORDER (+1), which varies by architecture and config, so it is not assumed.
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed } from './lines.js';

export interface BuddyZone {
  node: number;
  zone: string;
  /** freeBlocks[k] = number of free blocks of order k (2^k pages each). */
  freeBlocks: number[];
}

export interface Buddyinfo {
  zones: BuddyZone[];
  unparsed: Unparsed;
}

const LINE = /^Node\s+(\d+),\s*zone\s+(\S+)((?:\s+\d+)+)\s*$/;

export function parseBuddyinfo(input: LineInput): Buddyinfo {
  const zones: BuddyZone[] = [];
  const unparsed = newUnparsed();
  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    const m = isSane(line) ? LINE.exec(line) : null;
    if (!m) {
      noteUnparsed(unparsed, line);
      continue;
    }
    const freeBlocks = m[3].trim().split(/\s+/).map(Number);
    if (!freeBlocks.every(Number.isSafeInteger)) {
      noteUnparsed(unparsed, line);
      continue;
    }
    zones.push({ node: Number(m[1]), zone: m[2], freeBlocks });
  }
  return { zones, unparsed };
}

/** Free pages in a zone: Σ nr_free[k]·2^k. */
export function freePagesOf(freeBlocks: readonly number[]): number {
  let pages = 0;
  for (let k = 0; k < freeBlocks.length; k++) pages += freeBlocks[k] * 2 ** k;
  return pages;
}

/** Free pages held in blocks of order ≥ minOrder (what a high-order allocation can use). */
export function freePagesAtOrAbove(freeBlocks: readonly number[], minOrder: number): number {
  let pages = 0;
  for (let k = minOrder; k < freeBlocks.length; k++) pages += freeBlocks[k] * 2 ** k;
  return pages;
}

/** Highest order with at least one free block, or -1 when the zone has none. */
export function highestFreeOrder(freeBlocks: readonly number[]): number {
  for (let k = freeBlocks.length - 1; k >= 0; k--) if (freeBlocks[k] > 0) return k;
  return -1;
}
