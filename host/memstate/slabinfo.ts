// /proc/slabinfo, format 2.1 (mm/slab_common.c): per cache
//   name active_objs num_objs objsize objperslab pagesperslab : tunables l b s : slabdata as ns sa
// The same name may appear twice (module reload leaves a zero-object duplicate), so caches are a list.
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed } from './lines.js';

export interface SlabCache {
  name: string;
  activeObjs: number;
  numObjs: number;
  objSize: number;
  objPerSlab: number;
  pagesPerSlab: number;
  activeSlabs: number;
  numSlabs: number;
}

export interface Slabinfo {
  /** "2.1" on every kernel since 2.6; undefined when the header is missing. */
  version?: string;
  caches: SlabCache[];
  unparsed: Unparsed;
}

const VERSION = /^slabinfo - version:\s*(\S+)\s*$/;
const CACHE = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*:\s*tunables\s+\d+\s+\d+\s+\d+\s*:\s*slabdata\s+(\d+)\s+(\d+)\s+\d+\s*$/;

export function parseSlabinfo(input: LineInput): Slabinfo {
  const caches: SlabCache[] = [];
  const unparsed = newUnparsed();
  let version: string | undefined;
  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    if (!isSane(line)) { noteUnparsed(unparsed, line); continue; }
    if (line.startsWith('#')) continue; // column header
    let m = VERSION.exec(line);
    if (m) { version = m[1]; continue; }
    m = CACHE.exec(line);
    if (!m) { noteUnparsed(unparsed, line); continue; }
    const nums = m.slice(2, 9).map(Number);
    if (!nums.every(Number.isSafeInteger)) { noteUnparsed(unparsed, line); continue; }
    const [activeObjs, numObjs, objSize, objPerSlab, pagesPerSlab, activeSlabs, numSlabs] = nums;
    caches.push({ name: m[1], activeObjs, numObjs, objSize, objPerSlab, pagesPerSlab, activeSlabs, numSlabs });
  }
  return { version, caches, unparsed };
}

/** Bytes in live objects: active_objs × objsize. */
export function activeBytes(c: SlabCache): number {
  return c.activeObjs * c.objSize;
}

/** Bytes the cache holds in slabs: num_slabs × pagesperslab × page size. */
export function slabBytes(c: SlabCache, pageSize: number): number {
  return c.numSlabs * c.pagesPerSlab * pageSize;
}
