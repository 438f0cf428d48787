// Memory-state part of the analysis model: what `AnalyzedRun.memory` and `AnalyzedRun.verdict`
// hold (model.ts types them as unknown so it does not depend on this file). Same conventions as
// model.ts: sizes in kB where the kernel prints kB (meminfo) and pages where it prints pages
// (buddyinfo, zoneinfo), named so; rates per hour; null = not known; snapshots by index.
// Additions only; a change of meaning bumps ANALYSIS_SCHEMA_VERSION in model.ts.
import type { KernelEventKind } from '../memstate/kmsg.js';

/** Names of the per-snapshot sample files (mem_<N>/<name>.txt). */
export const MEM_FILES = ['meminfo', 'vmstat', 'buddyinfo', 'zoneinfo', 'slabinfo', 'pagetypeinfo'] as const;
export type MemFileName = (typeof MEM_FILES)[number];

export interface MemoryAnalysis {
  kind: 'kml-memory';
  /** One entry per snapshot that had at least one memory file or kmsg file, ascending by snapshot. */
  samples: MemorySample[];
  /** Page size used to turn pages into kB (inferred from MemFree / nr_free_pages, else 4). */
  pageSizeKb: number;
  pageSizeSource: 'inferred' | 'assumed';
  /** Per-cache growth over the verdict's basis segment, ranked by bytes per hour (top 20). */
  slabGrowth: SlabCacheGrowth[];
  /** OOM / LMK / allocation-failure / kmemleak events from kmsg_<N>.txt, in log order. */
  events: MemoryEvent[];
  /** Per file name: samples that had it, lines not understood. */
  fileStats: Record<string, { samples: number; unparsedLines: number; unreadable: number }>;
  /** Up to 10 examples of lines not understood, with the file they came from. */
  unparsedSamples: Array<{ file: string; text: string }>;
  /** Snapshots that had no memory sample at all. */
  snapshotsWithoutSample: number;
}

/** Selected counters of one sample. Every field null when the file was missing or lacked it. */
export interface MemorySample {
  snapshot: number;
  seq: number | null;
  bootId: string | null;
  /** Time axis (AnalyzedRun.snapshots[i].t), epoch-like seconds, or null. */
  t: number | null;
  uptimeS: number | null;
  /** Which of MEM_FILES were present (and kmsg). */
  files: string[];
  meminfo: MeminfoSummary | null;
  vmstat: VmstatSummary | null;
  /** Per populated zone: zoneinfo watermarks and free pages, buddyinfo free blocks per order. */
  zones: ZoneSample[];
  pagetype: PagetypeSummary | null;
  /** Sum of active_objs × objsize over every slabinfo cache, kB; null without slabinfo. */
  slabActiveKb: number | null;
}

export interface MeminfoSummary {
  memTotalKb: number | null;
  memFreeKb: number | null;
  memAvailableKb: number | null;
  buffersKb: number | null;
  cachedKb: number | null;
  /** Active(file) + Inactive(file). */
  fileLruKb: number | null;
  /** Active(anon) + Inactive(anon). */
  anonLruKb: number | null;
  anonPagesKb: number | null;
  shmemKb: number | null;
  slabKb: number | null;
  sReclaimableKb: number | null;
  sUnreclaimKb: number | null;
  kernelStackKb: number | null;
  pageTablesKb: number | null;
  vmallocUsedKb: number | null;
  percpuKb: number | null;
  swapTotalKb: number | null;
  swapFreeKb: number | null;
  /** zone_reclaimable_pages() summed system-wide: file LRU, + anon LRU when swap is free. */
  reclaimableKb: number | null;
  /** MemTotal minus everything meminfo accounts for (Android "Lost RAM"): page-level allocations. */
  unaccountedKb: number | null;
}

export interface VmstatSummary {
  nrFreePages: number | null;
  nrSlabUnreclaimable: number | null;
  nrSlabReclaimable: number | null;
  /** oom_kill counter (4.13+): OOM kills since boot. */
  oomKill: number | null;
  /** Sum of allocstall_* (direct reclaim entries since boot). */
  allocStall: number | null;
  compactStall: number | null;
  compactFail: number | null;
}

export interface ZoneSample {
  node: number;
  zone: string;
  /** zoneinfo "pages free", else buddyinfo Σ nr_free·2^k. */
  freePages: number | null;
  minPages: number | null;
  lowPages: number | null;
  highPages: number | null;
  managedPages: number | null;
  /** zone_reclaimable_pages(): file LRU (+ anon with free swap), pages. */
  reclaimablePages: number | null;
  /** buddyinfo free blocks per order (free_area[k].nr_free), or null without buddyinfo. */
  freeBlocks: number[] | null;
}

export interface PagetypeSummary {
  /** Pageblocks per migrate type summed over zones. */
  blocks: Record<string, number>;
  /** Some free counts were printed as ">100000" (lower bounds). */
  capped: boolean;
}

export interface SlabCacheGrowth {
  name: string;
  objSize: number;
  /** active_objs × objsize at the first and last sample of the basis segment, bytes. */
  firstBytes: number;
  lastBytes: number;
  deltaBytes: number;
  /** Least-squares slope of active bytes, per hour; null with <2 timed samples. */
  bytesPerHour: number | null;
  firstObjects: number;
  lastObjects: number;
  /** Active bytes per sample of the segment (null where the cache was absent). */
  series: Array<number | null>;
}

export interface MemoryEvent {
  kind: KernelEventKind;
  /** Snapshot whose kmsg_<N>.txt held the line. */
  snapshot: number;
  bootId: string | null;
  /** Uptime printed in the log prefix, or null. */
  uptimeS: number | null;
  /** Time on the analysis axis: sample time shifted by (event uptime − sample uptime), else sample time. */
  t: number | null;
  text: string;
  pid?: number;
  comm?: string;
  order?: number;
  adj?: number;
  freedKb?: number;
  memcg?: boolean;
  source?: 'kernel' | 'lmkd';
  reason?: string;
  count?: number;
  caches?: Array<{ name: string; usedKb: number }>;
}

// ---------------------------------------------------------------------------------------------
// Verdict (AnalyzedRun.verdict)

export type VerdictId = 'kernel-slab-leak' | 'page-level-leak' | 'userspace-overuse' | 'fragmentation' | 'no-leak-evident';

/** yes = the numbers show it; possible = part of the evidence; no = ruled out; no-data = cannot tell. */
export type Finding = 'yes' | 'possible' | 'no' | 'no-data';

export interface Verdict {
  kind: 'kml-verdict';
  /** The row that best describes the run, or 'insufficient-data'. */
  conclusion: VerdictId | 'insufficient-data';
  /** Strength of the conclusion: 'yes' (the numbers show it) or 'possible'; 'no-data' for insufficient-data. */
  finding: Finding;
  /** One sentence with the numbers behind the conclusion. */
  summary: string;
  /** Which samples the verdict used: the boot with most memory samples (slopes never span a reboot). */
  basis: {
    bootId: string | null;
    samples: number;
    firstSnapshot: number | null;
    lastSnapshot: number | null;
    hours: number | null;
    /** Other boots in the run (their samples were not used for slopes). */
    otherBoots: number;
  };
  /** Always the five rows, in VerdictId order. */
  rows: VerdictRow[];
  /** Thresholds the rules used, so a reader can judge the calls. */
  thresholds: VerdictThresholds;
  /** Things assumed (time axis, page size, missing files). */
  notes: string[];
}

export interface VerdictRow {
  id: VerdictId;
  label: string;
  finding: Finding;
  /** One or two sentences with the numbers. */
  explanation: string;
  /** The numbers that led to the finding. */
  evidence: Evidence[];
}

export interface Evidence {
  name: string;
  value: number | null;
  /** kB, kB/h, pages, %, count, h, B/h ... */
  unit: string;
}

export interface VerdictThresholds {
  /** A counter "rises" when its fitted change over the basis is at least max(minRiseKb, minRisePct % of its first value) ... */
  minRiseKb: number;
  minRisePct: number;
  /** ... and the least-squares fit explains at least this much of the variance (R²). */
  minR2: number;
  /** Available memory (MemFree + file LRU) "falls" when it drops by at least this share of MemTotal. */
  minFallPctOfTotal: number;
  /** Anon "dominates" when it is at least this share of used memory (MemTotal − MemFree − file LRU). */
  anonDominantPct: number;
  /** Lowest order counted as "high order" (PAGE_ALLOC_COSTLY_ORDER + 1). */
  highOrder: number;
  /** High orders are "empty" when they hold less than this share of a zone's free pages. */
  highOrderEmptyPct: number;
  /** Fewest samples needed for a slope. */
  minSamples: number;
}
