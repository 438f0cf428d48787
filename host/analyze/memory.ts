// Memory-state series: turn the sample files beside each snapshot (mem_<N>/*.txt, kmsg_<N>.txt)
// into per-sample counters, per-cache slab growth and a kernel-event timeline. Pure: the caller
// (memory-source.ts) reads the files; nothing here touches the disk.
import {
  parseMeminfo, fileLruKb, anonLruKb, reclaimableKb, unaccountedKb, hasFreeSwap, type Meminfo,
  parseVmstat, slabUnreclaimablePages,
  parseBuddyinfo, freePagesOf,
  parseZoneinfo, zoneReclaimablePages,
  parseSlabinfo,
  parsePagetypeinfo,
  parseKernelLog,
  type Unparsed,
} from '../memstate/index.js';
import {
  MEM_FILES, type MemFileName, type MemoryAnalysis, type MemorySample, type MeminfoSummary, type VmstatSummary,
  type ZoneSample, type PagetypeSummary, type SlabCacheGrowth, type MemoryEvent,
} from './memory-model.js';

/** Texts of one snapshot's sample files, as read by the caller. */
export interface SampleInput {
  snapshot: number;
  seq: number | null;
  bootId: string | null;
  t: number | null;
  uptimeS: number | null;
  texts: Partial<Record<MemFileName | 'kmsg', string>>;
  /** File names that exist but could not be read. */
  unreadable?: string[];
}

const TOP_SLAB_CACHES = 20;
const MAX_UNPARSED_SAMPLES = 10;

// ---------------------------------------------------------------------------------------------
// Small numeric helpers shared with verdict.ts

export interface LineFit {
  /** Change per hour. */
  slopePerHour: number;
  /** Fitted value at the first and last x. */
  fittedFirst: number;
  fittedLast: number;
  /** Coefficient of determination (1 = a straight line; 0 when the values are constant). */
  r2: number;
  hours: number;
  n: number;
}

/** Least-squares line through (t seconds, value); null with fewer than 2 distinct times. */
export function fitLine(points: ReadonlyArray<{ t: number; v: number }>): LineFit | null {
  const n = points.length;
  if (n < 2) return null;
  const t0 = points[0].t;
  let sx = 0, sy = 0;
  for (const p of points) { sx += (p.t - t0) / 3600; sy += p.v; }
  const mx = sx / n, my = sy / n;
  let sxx = 0, sxy = 0, syy = 0;
  for (const p of points) {
    const dx = (p.t - t0) / 3600 - mx, dy = p.v - my;
    sxx += dx * dx; sxy += dx * dy; syy += dy * dy;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  const x0 = 0, x1 = (points[n - 1].t - t0) / 3600;
  const r2 = syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return { slopePerHour: slope, fittedFirst: my + slope * (x0 - mx), fittedLast: my + slope * (x1 - mx), r2, hours: x1 - x0, n };
}

// ---------------------------------------------------------------------------------------------
// Per-sample summaries

function summarizeMeminfo(mi: Meminfo): MeminfoSummary {
  const f = (k: string) => mi.fields[k] ?? null;
  return {
    memTotalKb: f('MemTotal'), memFreeKb: f('MemFree'), memAvailableKb: f('MemAvailable'),
    buffersKb: f('Buffers'), cachedKb: f('Cached'),
    fileLruKb: fileLruKb(mi) ?? null, anonLruKb: anonLruKb(mi) ?? null, anonPagesKb: f('AnonPages'),
    shmemKb: f('Shmem'), slabKb: f('Slab'), sReclaimableKb: f('SReclaimable'), sUnreclaimKb: f('SUnreclaim'),
    kernelStackKb: f('KernelStack'), pageTablesKb: f('PageTables'), vmallocUsedKb: f('VmallocUsed'), percpuKb: f('Percpu'),
    swapTotalKb: f('SwapTotal'), swapFreeKb: f('SwapFree'),
    reclaimableKb: reclaimableKb(mi) ?? null, unaccountedKb: unaccountedKb(mi) ?? null,
  };
}

function summarizeVmstat(counters: Record<string, number>, unreclaimable: number | undefined): VmstatSummary {
  let allocStall: number | null = null;
  for (const [k, v] of Object.entries(counters)) if (k === 'allocstall' || k.startsWith('allocstall_')) allocStall = (allocStall ?? 0) + v;
  return {
    nrFreePages: counters['nr_free_pages'] ?? null,
    nrSlabUnreclaimable: unreclaimable ?? null,
    nrSlabReclaimable: counters['nr_slab_reclaimable'] ?? null,
    oomKill: counters['oom_kill'] ?? null,
    allocStall,
    compactStall: counters['compact_stall'] ?? null,
    compactFail: counters['compact_fail'] ?? null,
  };
}

/** Page size in kB from MemFree (kB) / nr_free_pages, snapped to 4, 16 or 64. */
export function inferPageSizeKb(memFreeKb: number | null | undefined, nrFreePages: number | null | undefined): number | null {
  if (!memFreeKb || !nrFreePages) return null;
  const ratio = memFreeKb / nrFreePages;
  for (const size of [4, 16, 64]) if (Math.abs(ratio - size) / size < 0.1) return size;
  return null;
}

interface CacheAt { bytes: number; objects: number; objSize: number }

interface Stats {
  fileStats: MemoryAnalysis['fileStats'];
  unparsedSamples: MemoryAnalysis['unparsedSamples'];
}

function noteStats(stats: Stats, file: string, u: Unparsed): void {
  const fs = (stats.fileStats[file] ??= { samples: 0, unparsedLines: 0, unreadable: 0 });
  fs.samples++;
  fs.unparsedLines += u.count;
  for (const s of u.samples) if (stats.unparsedSamples.length < MAX_UNPARSED_SAMPLES) stats.unparsedSamples.push({ file, text: s });
}

interface ParsedSample {
  sample: MemorySample;
  caches: Map<string, CacheAt> | null;
  events: MemoryEvent[];
}

function parseSample(input: SampleInput, stats: Stats): ParsedSample {
  const { texts } = input;
  const files: string[] = [];
  let meminfo: Meminfo | undefined;
  let swapFree = false;
  const sample: MemorySample = {
    snapshot: input.snapshot, seq: input.seq, bootId: input.bootId, t: input.t, uptimeS: input.uptimeS,
    files, meminfo: null, vmstat: null, zones: [], pagetype: null, slabActiveKb: null,
  };
  for (const name of input.unreadable ?? []) {
    (stats.fileStats[name] ??= { samples: 0, unparsedLines: 0, unreadable: 0 }).unreadable++;
  }
  if (texts.meminfo !== undefined) {
    files.push('meminfo');
    meminfo = parseMeminfo(texts.meminfo);
    noteStats(stats, 'meminfo', meminfo.unparsed);
    if (Object.keys(meminfo.fields).length) {
      sample.meminfo = summarizeMeminfo(meminfo);
      swapFree = hasFreeSwap(meminfo);
    }
  }
  if (texts.vmstat !== undefined) {
    files.push('vmstat');
    const vs = parseVmstat(texts.vmstat);
    noteStats(stats, 'vmstat', vs.unparsed);
    if (Object.keys(vs.counters).length) sample.vmstat = summarizeVmstat(vs.counters, slabUnreclaimablePages(vs));
  }
  const zoneMap = new Map<string, ZoneSample>();
  const zoneOf = (node: number, zone: string): ZoneSample => {
    const key = `${node}/${zone}`;
    let z = zoneMap.get(key);
    if (!z) {
      z = { node, zone, freePages: null, minPages: null, lowPages: null, highPages: null, managedPages: null, reclaimablePages: null, freeBlocks: null };
      zoneMap.set(key, z);
    }
    return z;
  };
  if (texts.zoneinfo !== undefined) {
    files.push('zoneinfo');
    const zi = parseZoneinfo(texts.zoneinfo);
    noteStats(stats, 'zoneinfo', zi.unparsed);
    for (const z of zi.zones) {
      if ((z.managed ?? z.present ?? 0) <= 0) continue;
      const zs = zoneOf(z.node, z.zone);
      zs.freePages = z.free ?? z.counters['nr_free_pages'] ?? null;
      zs.minPages = z.min ?? null; zs.lowPages = z.low ?? null; zs.highPages = z.high ?? null;
      zs.managedPages = z.managed ?? null;
      zs.reclaimablePages = zoneReclaimablePages(z, swapFree) ?? null;
    }
  }
  if (texts.buddyinfo !== undefined) {
    files.push('buddyinfo');
    const bi = parseBuddyinfo(texts.buddyinfo);
    noteStats(stats, 'buddyinfo', bi.unparsed);
    for (const b of bi.zones) {
      const zs = zoneOf(b.node, b.zone);
      zs.freeBlocks = b.freeBlocks;
      zs.freePages ??= freePagesOf(b.freeBlocks);
    }
  }
  sample.zones = [...zoneMap.values()];

  let caches: Map<string, CacheAt> | null = null;
  if (texts.slabinfo !== undefined) {
    files.push('slabinfo');
    const si = parseSlabinfo(texts.slabinfo);
    noteStats(stats, 'slabinfo', si.unparsed);
    if (si.caches.length) {
      caches = new Map();
      let total = 0;
      for (const c of si.caches) {
        const bytes = c.activeObjs * c.objSize;
        total += bytes;
        // A duplicate name (module reload) is the same cache for growth purposes: add them up.
        const prev = caches.get(c.name);
        if (prev) { prev.bytes += bytes; prev.objects += c.activeObjs; }
        else caches.set(c.name, { bytes, objects: c.activeObjs, objSize: c.objSize });
      }
      sample.slabActiveKb = Math.round(total / 1024);
    }
  }
  if (texts.pagetypeinfo !== undefined) {
    files.push('pagetypeinfo');
    const pt = parsePagetypeinfo(texts.pagetypeinfo);
    noteStats(stats, 'pagetypeinfo', pt.unparsed);
    if (pt.blocks.length || pt.free.length) {
      const blocks: Record<string, number> = {};
      for (const row of pt.blocks) for (const [type, n] of Object.entries(row.blocks)) blocks[type] = (blocks[type] ?? 0) + n;
      const summary: PagetypeSummary = { blocks, capped: pt.anyCapped };
      sample.pagetype = summary;
    }
  }
  const events: MemoryEvent[] = [];
  if (texts.kmsg !== undefined) {
    files.push('kmsg');
    const log = parseKernelLog(texts.kmsg);
    noteStats(stats, 'kmsg', log.unparsed);
    for (const e of log.events) {
      const { kind, uptimeS, text, line: _line, gfpMask: _g, anonRssKb: _a, constraint: _c, ...rest } = e;
      let t = input.t;
      if (t !== null && uptimeS !== undefined && input.uptimeS !== null && uptimeS <= input.uptimeS + 1) {
        t = input.t! - (input.uptimeS - uptimeS);
      }
      events.push({ kind, snapshot: input.snapshot, bootId: input.bootId, uptimeS: uptimeS ?? null, t, text, ...rest });
    }
  }
  return { sample, caches, events };
}

// ---------------------------------------------------------------------------------------------
// Basis segment: slopes never span a reboot, so the verdict uses the boot with the most samples.

export interface Basis {
  bootId: string | null;
  /** Indexes into samples[] (ascending). */
  indexes: number[];
  otherBoots: number;
}

/** Samples that carry counters (meminfo, vmstat, zones or slab), grouped by boot; the largest group wins, ties → the latest. */
export function chooseBasis(samples: readonly MemorySample[]): Basis {
  const byBoot = new Map<string, number[]>();
  samples.forEach((s, i) => {
    if (!s.meminfo && !s.vmstat && !s.zones.length && s.slabActiveKb === null) return;
    const key = s.bootId ?? '';
    const list = byBoot.get(key) ?? [];
    list.push(i);
    byBoot.set(key, list);
  });
  let best: [string, number[]] | undefined;
  for (const entry of byBoot) if (!best || entry[1].length >= best[1].length) best = entry;
  if (!best) return { bootId: null, indexes: [], otherBoots: 0 };
  return { bootId: best[0] === '' ? null : best[0], indexes: best[1], otherBoots: byBoot.size - 1 };
}

function slabGrowthOf(samples: readonly MemorySample[], caches: ReadonlyArray<Map<string, CacheAt> | null>, basis: Basis): SlabCacheGrowth[] {
  const idx = basis.indexes.filter((i) => caches[i] !== null);
  if (idx.length < 2) return [];
  const names = new Set<string>();
  for (const i of idx) for (const name of caches[i]!.keys()) names.add(name);
  const out: SlabCacheGrowth[] = [];
  for (const name of names) {
    const series = idx.map((i) => caches[i]!.get(name)?.bytes ?? null);
    const first = caches[idx[0]]!.get(name);
    const last = caches[idx[idx.length - 1]]!.get(name);
    const any = first ?? last ?? idx.map((i) => caches[i]!.get(name)).find(Boolean)!;
    const pts = idx.flatMap((i) => {
      const t = samples[i].t;
      return t === null ? [] : [{ t, v: caches[i]!.get(name)?.bytes ?? 0 }];
    });
    const fit = fitLine(pts);
    const firstBytes = first?.bytes ?? 0, lastBytes = last?.bytes ?? 0;
    out.push({
      name, objSize: any.objSize, firstBytes, lastBytes, deltaBytes: lastBytes - firstBytes,
      bytesPerHour: fit ? Math.round(fit.slopePerHour) : null,
      firstObjects: first?.objects ?? 0, lastObjects: last?.objects ?? 0, series,
    });
  }
  out.sort((a, b) => (b.bytesPerHour ?? b.deltaBytes) - (a.bytesPerHour ?? a.deltaBytes) || b.deltaBytes - a.deltaBytes || a.name.localeCompare(b.name));
  return out.slice(0, TOP_SLAB_CACHES);
}

/**
 * Build the memory analysis from the sample texts of every snapshot (ascending by snapshot).
 * Texts are parsed one sample at a time and only summaries are kept.
 */
export function analyzeMemory(inputs: Iterable<SampleInput>, snapshotCount: number): MemoryAnalysis {
  const stats: Stats = { fileStats: {}, unparsedSamples: [] };
  const samples: MemorySample[] = [];
  const caches: Array<Map<string, CacheAt> | null> = [];
  const events: MemoryEvent[] = [];
  let pageSizeKb: number | null = null;
  for (const input of inputs) {
    const hasAny = MEM_FILES.some((f) => input.texts[f] !== undefined) || input.texts.kmsg !== undefined;
    if (!hasAny && !(input.unreadable?.length)) continue;
    const parsed = parseSample(input, stats);
    samples.push(parsed.sample);
    caches.push(parsed.caches);
    events.push(...parsed.events);
    pageSizeKb ??= inferPageSizeKb(parsed.sample.meminfo?.memFreeKb, parsed.sample.vmstat?.nrFreePages);
  }
  const basis = chooseBasis(samples);
  return {
    kind: 'kml-memory',
    samples,
    pageSizeKb: pageSizeKb ?? 4,
    pageSizeSource: pageSizeKb ? 'inferred' : 'assumed',
    slabGrowth: slabGrowthOf(samples, caches, basis),
    events,
    fileStats: stats.fileStats,
    unparsedSamples: stats.unparsedSamples,
    snapshotsWithoutSample: Math.max(0, snapshotCount - samples.length),
  };
}

/** Type guard for AnalyzedRun.memory (typed unknown in model.ts). */
export function isMemoryAnalysis(x: unknown): x is MemoryAnalysis {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'kml-memory' && Array.isArray((x as MemoryAnalysis).samples);
}
