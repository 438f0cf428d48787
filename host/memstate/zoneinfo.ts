// /proc/zoneinfo (mm/vmstat.c zoneinfo_show_print): per zone "pages free", the min/low/high
// watermarks, spanned/present/managed, then per-zone counters; the node's first populated zone
// also carries a "per-node stats" block. Before 4.8 the LRU counters were per zone and named
// nr_active_file etc.; since 4.8 the zone copies are nr_zone_active_file etc.
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed, toInt } from './lines.js';

export interface Zone {
  node: number;
  zone: string;
  free?: number;
  boost?: number;
  min?: number;
  low?: number;
  high?: number;
  promo?: number;
  spanned?: number;
  present?: number;
  managed?: number;
  cma?: number;
  protection?: number[];
  /** Per-zone counters (nr_free_pages, nr_zone_active_file, ...), in pages. */
  counters: Record<string, number>;
  nodeUnreclaimable?: number;
  startPfn?: number;
}

export interface Zoneinfo {
  zones: Zone[];
  /** Per-node stats blocks, by node number. */
  nodeStats: Record<number, Record<string, number>>;
  unparsed: Unparsed;
}

const ZONE = /^Node\s+(\d+),\s*zone\s+(\S+)\s*$/;
const FIELD = /^\s+(?:pages\s+)?(free|boost|min|low|high|promo|spanned|present|managed|cma|scanned)\s+(\d+)\s*$/;
const PROTECTION = /^\s+protection:\s*\(([-\d,\s]*)\)\s*$/;
const COUNTER = /^\s+([a-z][a-z0-9_]*)\s+(-?\d+)\s*$/;
const TRAILER = /^\s+(node_unreclaimable|start_pfn|all_unreclaimable|inactive_ratio):\s+(\d+)\s*$/;
// Per-cpu pageset dump: recognised so it is not reported as unparsed, but not kept.
const PAGESET = /^\s+(?:pagesets|cpu:\s*\d+|count:\s*-?\d+|high:\s*\d+|batch:\s*\d+|high_min:\s*\d+|high_max:\s*\d+|vm stats threshold:\s*\d+)\s*$/;

type Section = 'none' | 'node' | 'zone' | 'pagesets';

export function parseZoneinfo(input: LineInput): Zoneinfo {
  const zones: Zone[] = [];
  const nodeStats: Record<number, Record<string, number>> = Object.create(null);
  const unparsed = newUnparsed();
  let zone: Zone | undefined;
  let section: Section = 'none';

  for (const line of linesOf(input)) {
    if (line.trim() === '') continue;
    if (!isSane(line)) {
      noteUnparsed(unparsed, line);
      continue;
    }
    let m = ZONE.exec(line);
    if (m) {
      zone = { node: Number(m[1]), zone: m[2], counters: Object.create(null) };
      zones.push(zone);
      section = 'zone';
      continue;
    }
    if (!zone) {
      noteUnparsed(unparsed, line);
      continue;
    }
    if (/^\s+per-node stats\s*$/.test(line)) {
      section = 'node';
      nodeStats[zone.node] ??= Object.create(null);
      continue;
    }
    if ((m = FIELD.exec(line))) {
      const v = toInt(m[2]);
      if (v === undefined) { noteUnparsed(unparsed, line); continue; }
      // "pages free" ends the per-node block; the watermark lines that follow belong to the zone.
      section = 'zone';
      const key = m[1] as 'free' | 'boost' | 'min' | 'low' | 'high' | 'promo' | 'spanned' | 'present' | 'managed' | 'cma' | 'scanned';
      if (key !== 'scanned') zone[key] = v;
      continue;
    }
    if ((m = PROTECTION.exec(line))) {
      zone.protection = m[1].split(',').map((s) => Number(s.trim())).filter(Number.isFinite);
      continue;
    }
    if (PAGESET.test(line)) {
      section = 'pagesets';
      continue;
    }
    if ((m = TRAILER.exec(line))) {
      if (m[1] === 'start_pfn') zone.startPfn = Number(m[2]);
      else if (m[1] !== 'inactive_ratio') zone.nodeUnreclaimable = Number(m[2]);
      continue;
    }
    if ((m = COUNTER.exec(line)) && section !== 'pagesets') {
      const v = toInt(m[2]);
      if (v === undefined) { noteUnparsed(unparsed, line); continue; }
      const target = section === 'node' ? nodeStats[zone.node] : zone.counters;
      if (!(m[1] in target)) target[m[1]] = v;
      continue;
    }
    noteUnparsed(unparsed, line);
  }
  return { zones, nodeStats, unparsed };
}

function counter(z: Zone, modern: string, legacy: string): number | undefined {
  return z.counters[modern] ?? z.counters[legacy];
}

/**
 * zone_reclaimable_pages() from userspace: file LRU of the zone, plus its anon LRU when swap
 * pages are free (the seed's formula; mm/vmscan.c). undefined when the zone prints no LRU counters.
 */
export function zoneReclaimablePages(z: Zone, swapFree: boolean): number | undefined {
  const af = counter(z, 'nr_zone_active_file', 'nr_active_file');
  const inf = counter(z, 'nr_zone_inactive_file', 'nr_inactive_file');
  if (af === undefined && inf === undefined) return undefined;
  let nr = (af ?? 0) + (inf ?? 0);
  if (swapFree) {
    nr += (counter(z, 'nr_zone_active_anon', 'nr_active_anon') ?? 0) + (counter(z, 'nr_zone_inactive_anon', 'nr_inactive_anon') ?? 0);
  }
  return nr;
}

/** Zones that hold memory: managed > 0 (Movable/Device zones on most devices are empty). */
export function populatedZones(zi: Zoneinfo): Zone[] {
  return zi.zones.filter((z) => (z.managed ?? z.present ?? 0) > 0);
}
