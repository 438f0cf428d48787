// The memory verdict: is the device's memory trouble a kernel leak, and which kind?
// Rules follow the research table (landscape.md §2.14) and the seed's method:
//   kernel slab leak    SUnreclaim / nr_slab_unreclaimable rises AND kmemleak groups grow;
//   page-level leak     MemFree + file LRU fall, slab flat, anon does not explain it, and memory no
//                       meminfo field accounts for rises (driver alloc_pages, DMA-BUF: kmemleak is blind);
//   user-space overuse  anon dominates used memory and it recovers after LMK/OOM kills;
//   fragmentation       total free is fine but the high orders of the buddy allocator are empty;
//   no leak evident     none of the above.
// Every row carries the numbers it was decided on. Slopes use one boot only (chooseBasis).
import type { AnalyzedRun } from './model.js';
import {
  type MemoryAnalysis, type MemorySample, type Verdict, type VerdictRow, type VerdictThresholds, type VerdictId,
  type Finding, type Evidence, type MemoryEvent,
} from './memory-model.js';
import { chooseBasis, fitLine, type LineFit } from './memory.js';
import { freePagesAtOrAbove, freePagesOf, highestFreeOrder } from '../memstate/buddyinfo.js';
import { humanBytes, humanHours, humanKb, pct, signedKb } from './memory-format.js';

export const DEFAULT_THRESHOLDS: VerdictThresholds = {
  minRiseKb: 1024,
  minRisePct: 2,
  minR2: 0.5,
  minFallPctOfTotal: 2,
  anonDominantPct: 50,
  highOrder: 4, // PAGE_ALLOC_COSTLY_ORDER is 3: orders above it are what compaction must provide
  highOrderEmptyPct: 1,
  minSamples: 3,
};

/** What the kmemleak side says, reduced to what the verdict needs. */
export interface KmemleakGrowth {
  /** Snapshots analysed (kmemleak reads). */
  snapshots: number;
  groups: number;
  /** Unsuppressed groups with status growing or new. */
  growingGroups: number;
  /** Σ bytesPerHour of those groups (B/h, ≥ 0). */
  bytesPerHour: number;
  /** False when none of those groups has a rate (snapshot times unknown): bytesPerHour is then 0. */
  ratesKnown: boolean;
  bytes: number;
  topTitle: string | null;
}

export function kmemleakGrowthOf(run: Pick<AnalyzedRun, 'groups' | 'snapshots'>): KmemleakGrowth {
  const growing = run.groups.filter((g) => g.status === 'growing' || g.status === 'new');
  const top = [...growing].sort((a, b) => (b.bytesPerHour ?? 0) - (a.bytesPerHour ?? 0) || b.bytes - a.bytes)[0];
  // Files copied off a phone together (adb pull) all get the copy time as mtime: rates from such
  // times are meaningless (GB/h), so they are treated as unknown.
  const ts = run.snapshots.map((s) => s.t).filter((t): t is number => t !== null);
  const copiedTogether = run.snapshots.length > 1 && run.snapshots.every((s) => s.wallTimeSource === 'mtime' || s.wallTimeSource === 'none') &&
    (ts.length < 2 || ts[ts.length - 1] - ts[0] < run.snapshots.length - 1);
  return {
    snapshots: run.snapshots.length,
    groups: run.groups.length,
    growingGroups: growing.length,
    bytesPerHour: copiedTogether ? 0 : growing.reduce((s, g) => s + Math.max(0, g.bytesPerHour ?? 0), 0),
    ratesKnown: !copiedTogether && growing.some((g) => g.bytesPerHour !== null),
    bytes: run.groups.reduce((s, g) => s + g.bytes, 0),
    topTitle: top?.title ?? null,
  };
}

const LABELS: Record<VerdictId, string> = {
  'kernel-slab-leak': 'Kernel slab leak',
  'page-level-leak': 'Page-level leak (kmemleak cannot see it)',
  'userspace-overuse': 'User-space overuse',
  'fragmentation': 'Fragmentation',
  'no-leak-evident': 'No leak evident',
};

interface Trend {
  first: number;
  last: number;
  fit: LineFit | null;
  /** Fitted change over the basis. */
  delta: number | null;
}

const ASSUMED_INTERVAL_S = 600; // the seed's `sleep 600`

export function computeVerdict(memory: MemoryAnalysis | null, leaks: KmemleakGrowth, overrides: Partial<VerdictThresholds> = {}): Verdict {
  const th: VerdictThresholds = { ...DEFAULT_THRESHOLDS, ...overrides };
  const notes: string[] = [];
  const samples = memory?.samples ?? [];
  const basis = chooseBasis(samples);
  const seg = basis.indexes.map((i) => samples[i]);
  const pageKb = memory?.pageSizeKb ?? 4;
  if (memory && memory.samples.length && memory.pageSizeSource === 'assumed') notes.push('page size not inferable (no MemFree + nr_free_pages pair): assumed 4 kB');
  if (basis.otherBoots > 0) notes.push(`${basis.otherBoots + 1} boots in the run: slopes use boot ${basis.bootId ?? '(unknown)'} (${seg.length} samples) only`);

  // Time axis: snapshot time, else an assumed interval (plain folders without times).
  let timeOf = (s: MemorySample, k: number): number => s.t ?? k * ASSUMED_INTERVAL_S;
  if (seg.some((s) => s.t === null)) {
    notes.push(`sample times unknown: assumed ${ASSUMED_INTERVAL_S} s between samples`);
    timeOf = (_s, k) => k * ASSUMED_INTERVAL_S;
  }
  const hours = seg.length >= 2 ? (timeOf(seg[seg.length - 1], seg.length - 1) - timeOf(seg[0], 0)) / 3600 : null;

  const trend = (get: (s: MemorySample) => number | null | undefined): Trend | null => {
    const pts: Array<{ t: number; v: number }> = [];
    seg.forEach((s, k) => {
      const v = get(s);
      if (v !== null && v !== undefined && Number.isFinite(v)) pts.push({ t: timeOf(s, k), v });
    });
    if (pts.length === 0) return null;
    const fit = pts.length >= th.minSamples ? fitLine(pts) : null;
    return { first: pts[0].v, last: pts[pts.length - 1].v, fit, delta: fit ? fit.fittedLast - fit.fittedFirst : null };
  };
  const rises = (tr: Trend | null, minKb: number): boolean =>
    !!tr?.fit && tr.delta !== null && tr.delta >= Math.max(minKb, (th.minRisePct / 100) * Math.abs(tr.first)) && tr.fit.r2 >= th.minR2;

  const memTotal = lastOf(seg, (s) => s.meminfo?.memTotalKb) ?? null;
  const slab = trend((s) => s.meminfo?.sUnreclaimKb ?? (s.vmstat?.nrSlabUnreclaimable != null ? s.vmstat.nrSlabUnreclaimable * pageKb : null));
  const slabRising = rises(slab, th.minRiseKb);

  const rows: VerdictRow[] = [];

  // 1. Kernel slab leak -----------------------------------------------------------------------
  {
    const ev: Evidence[] = [
      { name: 'SUnreclaim first', value: slab?.first ?? null, unit: 'kB' },
      { name: 'SUnreclaim last', value: slab?.last ?? null, unit: 'kB' },
      { name: 'SUnreclaim slope', value: round(slab?.fit?.slopePerHour), unit: 'kB/h' },
      { name: 'SUnreclaim fit R²', value: round(slab?.fit?.r2, 3), unit: '' },
      { name: 'kmemleak growing groups', value: leaks.growingGroups, unit: 'count' },
      { name: 'kmemleak growth', value: Math.round(leaks.bytesPerHour), unit: 'B/h' },
    ];
    const top = memory?.slabGrowth[0];
    if (top && (top.bytesPerHour ?? 0) > 0) ev.push({ name: `top slab cache ${top.name}`, value: top.bytesPerHour, unit: 'B/h' });
    // A growing group counts even without a rate (a plain folder with no times has none).
    const kmemGrowing = leaks.growingGroups > 0 && (leaks.bytesPerHour > 0 || !leaks.ratesKnown);
    const slabText = slab?.fit ? `SUnreclaim ${signedKb(slab.delta)} over ${humanHours(hours)} (${signedKb(slab.fit.slopePerHour)}/h, R² ${round(slab.fit.r2, 2)})` : null;
    const kmemText = `kmemleak: ${leaks.growingGroups} growing group${leaks.growingGroups === 1 ? '' : 's'} (${leaks.ratesKnown || !leaks.growingGroups ? `${humanBytes(leaks.bytesPerHour)}/h` : 'rate unknown: no snapshot times'})`;
    let finding: Finding;
    let text: string;
    if (slabRising && kmemGrowing) {
      finding = 'yes';
      const share = slab!.fit!.slopePerHour > 0 ? (100 * leaks.bytesPerHour / 1024) / slab!.fit!.slopePerHour : null;
      if (share !== null) ev.push({ name: 'slab growth kmemleak explains', value: round(share, 1), unit: '%' });
      text = `${slabText} and ${kmemText}${leaks.topTitle ? `, led by "${leaks.topTitle}"` : ''}: both signals agree.`;
    } else if (slabRising) {
      finding = 'possible';
      text = `${slabText}, but kmemleak reports no growing group: the objects are still referenced (an unbounded list or cache)${top ? `; fastest-growing cache: ${top.name} (${humanBytes(top.bytesPerHour)}/h)` : ''}.`;
    } else if (kmemGrowing) {
      finding = 'possible';
      text = slab?.fit
        ? `${kmemText}, but ${slabText}: too small to move the slab total, or false positives.`
        : `${kmemText}; no SUnreclaim samples to corroborate it.`;
    } else if (!slab?.fit && leaks.snapshots < 2) {
      finding = 'no-data';
      text = `Fewer than ${th.minSamples} memory samples and ${leaks.snapshots} kmemleak snapshot(s): cannot tell.`;
    } else {
      finding = 'no';
      text = slab?.fit ? `${slabText}; ${kmemText}.` : `${kmemText}; no SUnreclaim samples.`;
    }
    rows.push(row('kernel-slab-leak', finding, text, ev));
  }

  // 2. Page-level leak --------------------------------------------------------------------------
  const avail = trend((s) => sum(s.meminfo?.memFreeKb, s.meminfo?.fileLruKb));
  const anon = trend((s) => s.meminfo?.anonLruKb ?? s.meminfo?.anonPagesKb);
  const unacc = trend((s) => s.meminfo?.unaccountedKb);
  const vmalloc = trend((s) => s.meminfo?.vmallocUsedKb);
  {
    const fallMin = Math.max(th.minRiseKb, memTotal ? (th.minFallPctOfTotal / 100) * memTotal : 0);
    const availFalling = !!avail?.fit && avail.delta !== null && -avail.delta >= fallMin && avail.fit.r2 >= th.minR2;
    const unaccRising = rises(unacc, Math.max(th.minRiseKb, memTotal ? 0.01 * memTotal : 0));
    const drop = avail?.delta !== null && avail?.delta !== undefined ? -avail.delta : 0;
    const anonExplains = !!anon?.delta && drop > 0 && anon.delta >= 0.5 * drop;
    const ev: Evidence[] = [
      { name: 'MemFree + file LRU first', value: avail?.first ?? null, unit: 'kB' },
      { name: 'MemFree + file LRU last', value: avail?.last ?? null, unit: 'kB' },
      { name: 'MemFree + file LRU slope', value: round(avail?.fit?.slopePerHour), unit: 'kB/h' },
      { name: 'unaccounted (Lost RAM) first', value: unacc?.first ?? null, unit: 'kB' },
      { name: 'unaccounted (Lost RAM) last', value: unacc?.last ?? null, unit: 'kB' },
      { name: 'unaccounted slope', value: round(unacc?.fit?.slopePerHour), unit: 'kB/h' },
      { name: 'SUnreclaim slope', value: round(slab?.fit?.slopePerHour), unit: 'kB/h' },
      { name: 'anon LRU change', value: round(anon?.delta), unit: 'kB' },
      { name: 'VmallocUsed change', value: round(vmalloc?.delta), unit: 'kB' },
    ];
    let finding: Finding;
    let text: string;
    if (!avail?.fit) {
      finding = 'no-data';
      text = `Needs at least ${th.minSamples} meminfo samples from one boot.`;
    } else {
      const availText = `MemFree + file LRU ${signedKb(avail.delta)} over ${humanHours(hours)}`;
      const unaccText = unacc?.fit ? `unaccounted memory ${signedKb(unacc.delta)}` : 'unaccounted memory unknown';
      if (availFalling && unaccRising && !slabRising && !anonExplains) {
        finding = 'yes';
        text = `${availText} while ${unaccText}, slab ${signedKb(slab?.delta ?? null)} and anon ${signedKb(anon?.delta ?? null)}: pages are going to allocations meminfo does not attribute (driver alloc_pages, DMA-BUF/ION/GPU) — use page_owner or dmabuf_dump.`;
      } else if ((availFalling && !slabRising && !anonExplains) || (unaccRising && !slabRising)) {
        finding = 'possible';
        text = `${availText}, ${unaccText}; slab ${slabRising ? 'rising' : 'flat'}, anon ${anonExplains ? 'explains the drop' : 'does not explain it'}.`;
      } else {
        finding = 'no';
        text = availFalling
          ? `${availText}, explained by ${slabRising ? 'slab growth' : 'anon growth'}; ${unaccText}.`
          : `${availText} (a fall counts from ${humanKb(fallMin)})${slabRising && (avail.delta ?? 0) < 0 ? ', and slab growth accounts for it' : ''}; ${unaccText}.`;
      }
    }
    rows.push(row('page-level-leak', finding, text, ev));
  }

  // 3. User-space overuse -----------------------------------------------------------------------
  {
    const events = (memory?.events ?? []).filter((e) => basis.bootId === null || e.bootId === basis.bootId || e.bootId === null);
    const kills = events.filter((e) => e.kind === 'lmk-kill' || (e.kind === 'oom-kill' && !e.memcg));
    const memcgKills = events.filter((e) => e.kind === 'oom-kill' && e.memcg).length;
    // The sample with the least available memory is where the question matters.
    const worst = minBy(seg, (s) => sum(s.meminfo?.memFreeKb, s.meminfo?.fileLruKb));
    const anonOf = (s: MemorySample) => s.meminfo?.anonLruKb ?? s.meminfo?.anonPagesKb ?? null;
    let share: number | null = null;
    if (worst?.meminfo?.memTotalKb && worst.meminfo.memFreeKb !== null) {
      const used = worst.meminfo.memTotalKb - worst.meminfo.memFreeKb - (worst.meminfo.fileLruKb ?? 0);
      const a = anonOf(worst);
      if (used > 0 && a !== null) share = (100 * a) / used;
    }
    const { recoveries, killSamples } = recoveriesAfterKills(seg, kills, anonOf, th);
    const dominates = share !== null && share >= th.anonDominantPct;
    const ev: Evidence[] = [
      { name: 'anon share of used memory (at lowest free)', value: round(share, 1), unit: '%' },
      { name: 'anon first', value: anon?.first ?? null, unit: 'kB' },
      { name: 'anon last', value: anon?.last ?? null, unit: 'kB' },
      { name: 'anon slope', value: round(anon?.fit?.slopePerHour), unit: 'kB/h' },
      { name: 'LMK / OOM kills', value: kills.length, unit: 'count' },
      { name: 'samples after a kill where anon dropped', value: recoveries, unit: 'count' },
      { name: 'memory-cgroup OOM kills (not counted)', value: memcgKills, unit: 'count' },
    ];
    let finding: Finding;
    let text: string;
    if (share === null) {
      finding = 'no-data';
      text = 'Needs meminfo samples (MemTotal, MemFree, anon LRU).';
    } else if (dominates && killSamples > 0 && recoveries > 0) {
      finding = 'yes';
      text = `Anon is ${pct(share)} of used memory and it dropped after kills in ${recoveries} of ${killSamples} sample(s) with ${kills.length} LMK/OOM kill(s): apps use the memory and give it back when killed.`;
    } else if (dominates && (rises(anon, th.minRiseKb) || kills.length > 0)) {
      finding = 'possible';
      text = `Anon is ${pct(share)} of used memory${rises(anon, th.minRiseKb) ? ` and rising (${signedKb(anon?.fit?.slopePerHour)}/h)` : ''}; ${kills.length} kill(s), ${recoveries} recovery(ies) seen.`;
    } else {
      finding = 'no';
      text = `Anon is ${pct(share)} of used memory (threshold ${th.anonDominantPct}%)${kills.length ? `; ${kills.length} kill(s)` : ''}.`;
    }
    rows.push(row('userspace-overuse', finding, text, ev));
  }

  // 4. Fragmentation ----------------------------------------------------------------------------
  {
    const last = [...seg].reverse().find((s) => s.zones.some((z) => z.freeBlocks));
    const failures = (memory?.events ?? []).filter((e) => e.kind === 'alloc-failure' && (e.order ?? 0) > 0);
    const maxFailOrder = failures.reduce((m, e) => Math.max(m, e.order ?? 0), 0);
    let finding: Finding;
    let text: string;
    const ev: Evidence[] = [];
    if (!last) {
      finding = failures.length ? 'possible' : 'no-data';
      text = failures.length
        ? `${failures.length} page allocation failure(s) of order up to ${maxFailOrder}, but no buddyinfo samples to check the free lists.`
        : 'Needs buddyinfo samples (free blocks per order).';
      ev.push({ name: 'allocation failures order>0', value: failures.length, unit: 'count' });
    } else {
      const zones = last.zones.filter((z) => z.freeBlocks);
      const totalFree = zones.reduce((s, z) => s + (z.freePages ?? freePagesOf(z.freeBlocks!)), 0);
      const highWm = zones.every((z) => z.highPages !== null) ? zones.reduce((s, z) => s + (z.highPages ?? 0), 0) : null;
      const main = maxBy(zones, (z) => z.freePages ?? freePagesOf(z.freeBlocks!))!;
      const mainFree = freePagesOf(main.freeBlocks!);
      const mainHigh = freePagesAtOrAbove(main.freeBlocks!, th.highOrder);
      const highShare = mainFree > 0 ? (100 * mainHigh) / mainFree : 0;
      const memTotalPages = memTotal ? memTotal / pageKb : null;
      const freeFine = highWm !== null ? totalFree > highWm * 2 : memTotalPages ? totalFree >= 0.05 * memTotalPages : totalFree > 0;
      ev.push(
        { name: 'free pages (all zones)', value: totalFree, unit: 'pages' },
        { name: 'high watermarks (all zones)', value: highWm, unit: 'pages' },
        { name: `zone ${main.zone}: free pages in order ≥${th.highOrder}`, value: mainHigh, unit: 'pages' },
        { name: `zone ${main.zone}: share of free in order ≥${th.highOrder}`, value: round(highShare, 2), unit: '%' },
        { name: `zone ${main.zone}: highest order with a free block`, value: highestFreeOrder(main.freeBlocks!), unit: 'order' },
        { name: 'allocation failures order>0', value: failures.length, unit: 'count' },
      );
      const freeText = `${humanKb(totalFree * pageKb)} free${highWm !== null ? ` (high watermarks ${humanKb(highWm * pageKb)})` : ''}`;
      if (!freeFine) {
        finding = 'no';
        text = `Free memory itself is low (${freeText}): a shortage, not fragmentation.`;
      } else if (highShare < th.highOrderEmptyPct) {
        finding = 'yes';
        text = `${freeText}, but zone ${main.zone} holds only ${pct(highShare)} of it in blocks of order ≥${th.highOrder} (highest free order ${highestFreeOrder(main.freeBlocks!)})${failures.length ? `; ${failures.length} order>0 allocation failure(s)` : ''}.`;
      } else if (failures.length && highShare < 10) {
        finding = 'possible';
        text = `${freeText}; ${pct(highShare)} in order ≥${th.highOrder} in zone ${main.zone} and ${failures.length} allocation failure(s) up to order ${maxFailOrder}.`;
      } else {
        finding = 'no';
        text = `${freeText}, ${pct(highShare)} of zone ${main.zone}'s free pages in blocks of order ≥${th.highOrder}.`;
      }
    }
    rows.push(row('fragmentation', finding, text, ev));
  }

  // 5. No leak evident --------------------------------------------------------------------------
  {
    const flagged = rows.filter((r) => r.finding === 'yes' || r.finding === 'possible');
    const allNoData = rows.every((r) => r.finding === 'no-data');
    const finding: Finding = flagged.length ? 'no' : allNoData ? 'no-data' : 'yes';
    const text = flagged.length
      ? `See: ${flagged.map((r) => `${r.label} (${r.finding})`).join(', ')}.`
      : allNoData ? 'Not enough data for any rule.' : 'No rule found a leak, overuse or fragmentation pattern.';
    rows.push(row('no-leak-evident', finding, text, [{ name: 'basis samples', value: seg.length, unit: 'count' }, { name: 'basis duration', value: round(hours, 2), unit: 'h' }]));
  }

  const order: VerdictId[] = ['kernel-slab-leak', 'page-level-leak', 'userspace-overuse', 'fragmentation'];
  const pick = order.map((id) => rows.find((r) => r.id === id)!).find((r) => r.finding === 'yes')
    ?? order.map((id) => rows.find((r) => r.id === id)!).find((r) => r.finding === 'possible');
  const none = rows[4];
  const conclusion: Verdict['conclusion'] = pick ? pick.id : none.finding === 'yes' ? 'no-leak-evident' : 'insufficient-data';
  const finding: Finding = pick ? pick.finding : none.finding;
  const summary = pick
    ? `${pick.label}${pick.finding === 'possible' ? ' (possible)' : ''}: ${pick.explanation}`
    : none.finding === 'yes' ? `No leak evident over ${humanHours(hours)} (${seg.length} samples).` : 'Not enough memory samples or snapshots for a verdict.';

  return {
    kind: 'kml-verdict',
    conclusion,
    finding,
    summary,
    basis: {
      bootId: basis.bootId,
      samples: seg.length,
      firstSnapshot: seg[0]?.snapshot ?? null,
      lastSnapshot: seg[seg.length - 1]?.snapshot ?? null,
      hours: round(hours, 3),
      otherBoots: basis.otherBoots,
    },
    rows,
    thresholds: th,
    notes,
  };
}

/**
 * For every sample whose kmsg holds a system kill, compare anon with the sample before it:
 * a drop of at least max(1 MB, 5 %) counts as a recovery.
 */
function recoveriesAfterKills(seg: MemorySample[], kills: MemoryEvent[], anonOf: (s: MemorySample) => number | null, th: VerdictThresholds): { recoveries: number; killSamples: number } {
  const killSnapshots = new Set(kills.map((k) => k.snapshot));
  let recoveries = 0, killSamples = 0;
  for (let k = 1; k < seg.length; k++) {
    if (!killSnapshots.has(seg[k].snapshot)) continue;
    killSamples++;
    const before = anonOf(seg[k - 1]), after = anonOf(seg[k]);
    if (before !== null && after !== null && before - after >= Math.max(th.minRiseKb, 0.05 * before)) recoveries++;
  }
  return { recoveries, killSamples };
}

function row(id: VerdictId, finding: Finding, explanation: string, evidence: Evidence[]): VerdictRow {
  return { id, label: LABELS[id], finding, explanation, evidence };
}

function round(x: number | null | undefined, digits = 0): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function sum(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined ? null : a + (b ?? 0);
}

function lastOf<T>(xs: readonly T[], get: (x: T) => number | null | undefined): number | undefined {
  for (let i = xs.length - 1; i >= 0; i--) {
    const v = get(xs[i]);
    if (v !== null && v !== undefined) return v;
  }
  return undefined;
}

function minBy<T>(xs: readonly T[], get: (x: T) => number | null): T | undefined {
  let best: T | undefined, bv = Infinity;
  for (const x of xs) { const v = get(x); if (v !== null && v < bv) { bv = v; best = x; } }
  return best;
}

function maxBy<T>(xs: readonly T[], get: (x: T) => number): T | undefined {
  let best: T | undefined, bv = -Infinity;
  for (const x of xs) { const v = get(x); if (v > bv) { bv = v; best = x; } }
  return best;
}

/** Type guard for AnalyzedRun.verdict (typed unknown in model.ts). */
export function isVerdict(x: unknown): x is Verdict {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'kml-verdict' && Array.isArray((x as Verdict).rows);
}
