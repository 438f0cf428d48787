// Turning a record's `jiffies` (allocation time) into seconds of uptime.
//
// include/linux/jiffies.h: `#define INITIAL_JIFFIES ((unsigned long)(unsigned int) (-300*HZ))` —
// jiffies start 300 s before the 32-bit wrap so wrap bugs show early. On a 64-bit kernel the value
// is zero-extended and never wraps in practice (4294667296 at HZ=1000, real samples match:
// syzkaller's `comm "swapper", pid 0, jiffies 4294667296`). On a 32-bit kernel jiffies wraps to 0
// about 300 s after boot and again every 2^32/HZ seconds (49.7 days at HZ=1000).
// research/landscape.md §0.7, research/kmemleak-kernel.md §2.4.

const TWO32 = 4294967296;

/** HZ values Linux can be configured with (CONFIG_HZ_100/250/300/1000). */
export const HZ_CANDIDATES: readonly number[] = [100, 250, 300, 1000];
/** Android GKI and most arm64 Android kernels use CONFIG_HZ=250; used when nothing better is known. */
export const DEFAULT_HZ = 250;

export function initialJiffies(hz: number): number {
  return TWO32 - 300 * hz;
}

/**
 * Uptime (seconds) at which an object with `jiffies` was allocated, or null if impossible for
 * this HZ (a 64-bit value below INITIAL_JIFFIES means HZ is wrong).
 * `readUptimeS` (device uptime when the snapshot was read) resolves 32-bit wraps: the latest
 * candidate that is not after the read is chosen.
 */
export function allocUptimeS(jiffies: number, hz: number, pointerBits: 32 | 64, readUptimeS: number | null = null): number | null {
  const init = initialJiffies(hz);
  if (pointerBits === 64) {
    const d = jiffies - init;
    return d < 0 ? null : d / hz;
  }
  if (jiffies >= TWO32 || jiffies < 0) return null;
  let d = (jiffies - init) % TWO32;
  if (d < 0) d += TWO32;
  let t = d / hz;
  if (readUptimeS !== null) {
    const period = TWO32 / hz;
    while (t + period <= readUptimeS + 1) t += period;
  }
  return t;
}

/**
 * Streaming HZ inference for when the kernel config is not known. Each record narrows the set of
 * plausible HZ values: a 64-bit jiffies value must be ≥ INITIAL_JIFFIES(HZ) and, when the read's
 * uptime is known, the allocation must not be after the read; when `(age ...)` is printed too,
 * uptime − age must match (jiffies − INITIAL_JIFFIES)/HZ, which pins HZ down.
 */
export class HzEstimator {
  // Arrays indexed like `candidates` (this runs once per record: no Map lookups).
  private readonly impossible: number[];
  private readonly residual: number[];
  private observations = 0;
  private ageObservations = 0;
  private readonly pairVotes = new Map<number, number>();

  constructor(readonly candidates: readonly number[] = HZ_CANDIDATES) {
    this.impossible = candidates.map(() => 0);
    this.residual = candidates.map(() => 0);
  }

  observe(jiffies: number, pointerBits: 32 | 64, readUptimeS: number | null, ageMs: number | null): void {
    const uptimes = this.candidates.map((hz) => allocUptimeS(jiffies, hz, pointerBits, readUptimeS));
    this.observeUptimes(uptimes, readUptimeS, ageMs);
  }

  /** Same as observe(), with the allocation uptimes per candidate already computed (the hot path; null or NaN: unknown). */
  observeUptimes(uptimes: ArrayLike<number | null>, readUptimeS: number | null, ageMs: number | null): void {
    this.observations++;
    const withAge = ageMs !== null && readUptimeS !== null;
    for (let i = 0; i < this.candidates.length; i++) {
      if (this.impossible[i] > 0 && !withAge) continue; // already ruled out; nothing more to learn
      const t = uptimes[i];
      if (t === null || t !== t || (readUptimeS !== null && t > readUptimeS + 2)) {
        this.impossible[i]++;
        continue;
      }
      if (withAge) this.residual[i] += Math.abs(readUptimeS - ageMs / 1000 - t);
    }
    if (withAge) this.ageObservations++;
  }

  /**
   * Two records of the same read with `(age ...)`: their jiffies differ by HZ × their age
   * difference, which gives HZ without knowing the uptime (the seed's plain folders).
   */
  observeAgePair(j1: number, age1Ms: number, j2: number, age2Ms: number, pointerBits: 32 | 64): void {
    let dj = j2 - j1;
    if (pointerBits === 32) {
      dj = ((dj % TWO32) + TWO32) % TWO32;
      if (dj > TWO32 / 2) dj -= TWO32;
    }
    const da = (age1Ms - age2Ms) / 1000;
    if (Math.abs(dj) < 500 || da === 0 || Math.sign(dj) !== Math.sign(da)) return;
    const est = dj / da;
    let best = this.candidates[0];
    for (const hz of this.candidates) if (Math.abs(hz - est) < Math.abs(best - est)) best = hz;
    if (Math.abs(best - est) / best < 0.05) this.pairVotes.set(best, (this.pairVotes.get(best) ?? 0) + 1);
  }

  /** Best HZ and whether the data decided it ('inferred') or it fell back to DEFAULT_HZ ('assumed'). */
  result(): { hz: number; source: 'inferred' | 'assumed'; why: string } {
    if (this.observations === 0) return { hz: DEFAULT_HZ, source: 'assumed', why: 'no record with jiffies' };
    const possible = this.candidates.filter((_hz, i) => this.impossible[i] === 0);
    const residualOf = (hz: number): number => this.residual[this.candidates.indexOf(hz)];
    if (possible.length === 0) return { hz: DEFAULT_HZ, source: 'assumed', why: 'no HZ value fits every record' };
    if (this.ageObservations > 0) {
      const best = [...possible].sort((a, b) => residualOf(a) - residualOf(b))[0];
      const meanErr = residualOf(best) / this.ageObservations;
      if (meanErr < 5) return { hz: best, source: 'inferred', why: `uptime − age matches jiffies within ${meanErr.toFixed(2)} s on average` };
    }
    const votes = [...this.pairVotes.entries()].filter(([hz]) => possible.includes(hz)).sort((a, b) => b[1] - a[1]);
    if (votes.length) return { hz: votes[0][0], source: 'inferred', why: `jiffies differences match age differences at HZ=${votes[0][0]} (${votes[0][1]} snapshot(s))` };
    if (possible.length === 1) return { hz: possible[0], source: 'inferred', why: 'the only HZ for which every jiffies value is after boot and before its read' };
    const hz = possible.includes(DEFAULT_HZ) ? DEFAULT_HZ : possible[possible.length - 1];
    return { hz, source: 'assumed', why: `jiffies fit HZ ${possible.join('/')}` };
  }
}

/** CONFIG_HZ from any text holding kernel config lines (run.json config excerpt, /proc/config.gz text). */
export function hzFromConfigText(text: string): number | null {
  const m = /CONFIG_HZ["']?\s*[=:]\s*["']?(\d+)/.exec(text);
  if (!m) return null;
  const hz = Number(m[1]);
  return hz >= 24 && hz <= 10000 ? hz : null;
}
