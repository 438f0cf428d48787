// /proc/pagetypeinfo (mm/vmstat.c; root-only since late 2019): free blocks per order per
// migrate type, then pageblock counts per type. Free counts are capped: the kernel prints
// ">100000" (seq_printf "%s%6lu ", overflow ? ">" : "") once a list is that long, so a count is
// a lower bound when capped[k] is true. The order columns come from the header row.
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed } from './lines.js';

export interface PagetypeFree {
  node: number;
  zone: string;
  type: string;
  /** counts[k] = free blocks of order orders[k] (a lower bound when capped[k]). */
  counts: number[];
  capped: boolean[];
}

export interface PagetypeBlocks {
  node: number;
  zone: string;
  /** Pageblocks per migrate type, keyed by the header's type names. */
  blocks: Record<string, number>;
}

export interface Pagetypeinfo {
  pageBlockOrder?: number;
  pagesPerBlock?: number;
  orders: number[];
  free: PagetypeFree[];
  blockTypes: string[];
  blocks: PagetypeBlocks[];
  /** "Number of mixed blocks" (CONFIG_PAGE_OWNER): pageblocks holding pages of another type. */
  mixedBlocks: PagetypeBlocks[];
  /** True when any free count was printed as ">N". */
  anyCapped: boolean;
  unparsed: Unparsed;
}

const BLOCK_ORDER = /^Page block order:\s*(\d+)\s*$/;
const PER_BLOCK = /^Pages per block:\s*(\d+)\s*$/;
const FREE_HEADER = /^Free pages count per migrate type at order((?:\s+\d+)+)\s*$/;
const FREE_ROW = /^Node\s+(\d+),\s*zone\s+(\S+),\s*type\s+(\S+)((?:\s+>?\d+)+)\s*$/;
const BLOCKS_HEADER = /^Number of (mixed )?blocks(?: type)?((?:\s+\S+)+)\s*$/;
const BLOCKS_ROW = /^Node\s+(\d+),\s*zone\s+(\S+)((?:\s+\d+)+)\s*$/;

export function parsePagetypeinfo(input: LineInput): Pagetypeinfo {
  const out: Pagetypeinfo = {
    orders: [], free: [], blockTypes: [], blocks: [], mixedBlocks: [], anyCapped: false, unparsed: newUnparsed(),
  };
  let blockTarget: PagetypeBlocks[] | undefined;
  let blockTypes: string[] = [];
  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    if (!isSane(line)) { noteUnparsed(out.unparsed, line); continue; }
    let m: RegExpExecArray | null;
    if ((m = BLOCK_ORDER.exec(line))) { out.pageBlockOrder = Number(m[1]); continue; }
    if ((m = PER_BLOCK.exec(line))) { out.pagesPerBlock = Number(m[1]); continue; }
    if ((m = FREE_HEADER.exec(line))) {
      out.orders = m[1].trim().split(/\s+/).map(Number);
      blockTarget = undefined;
      continue;
    }
    if ((m = FREE_ROW.exec(line))) {
      const cells = m[4].trim().split(/\s+/);
      const capped = cells.map((c) => c.startsWith('>'));
      const counts = cells.map((c) => Number(c.replace('>', '')));
      if (!counts.every(Number.isSafeInteger)) { noteUnparsed(out.unparsed, line); continue; }
      if (capped.some(Boolean)) out.anyCapped = true;
      out.free.push({ node: Number(m[1]), zone: m[2], type: m[3], counts, capped });
      continue;
    }
    if ((m = BLOCKS_HEADER.exec(line))) {
      blockTypes = m[2].trim().split(/\s+/);
      if (m[1]) blockTarget = out.mixedBlocks;
      else { blockTarget = out.blocks; out.blockTypes = blockTypes; }
      continue;
    }
    if (blockTarget && (m = BLOCKS_ROW.exec(line))) {
      const nums = m[3].trim().split(/\s+/).map(Number);
      const blocks: Record<string, number> = Object.create(null);
      blockTypes.forEach((t, i) => { if (i < nums.length) blocks[t] = nums[i]; });
      blockTarget.push({ node: Number(m[1]), zone: m[2], blocks });
      continue;
    }
    noteUnparsed(out.unparsed, line);
  }
  return out;
}
