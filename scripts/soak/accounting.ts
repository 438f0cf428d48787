// The soak's independent accounting. Pure: the device side (the agent's ledger and skipped.log,
// read over the adb CLI, never through kml) against the host store (manifest.jsonl read and the
// stored files hashed here, not by kml's code).
//
//   written      published snapshots in the ledger (unique boot_id+seq)
//   pulled       of those, stored in the host store
//   lost         in the ledger, not in the store (and not left on the device)
//   duplicated   stored more than once (or stored as a conflicting copy)
//   mismatched   stored, but a file's sha256 (manifest or on disk) differs from the ledger's
//   unledgered   stored, but not in the ledger
//   skipped      cycles the agent recorded in skipped.log
//   interrupted  the number a new agent start found used but neither published nor skipped: the
//                cycle the previous agent died in (nothing published, nothing cleared)
//   unexplained  sequence numbers in none of the above: a gap the agent did not account for

export interface LedgerPublished {
  seq: number;
  bootId: string;
  wallTime: number;
  leakCount?: number;
  /** file name → hex (sha256, or md5 on devices without sha256sum) */
  hashes: Record<string, string>;
  hashKind: 'sha256' | 'md5' | 'none';
  recovered: boolean;
}

export interface LedgerStart {
  seq: number;
  bootId: string;
  wallTime: number;
  pid: number;
}

export interface Ledger {
  published: LedgerPublished[];
  starts: LedgerStart[];
  /** Lines that are neither (a torn write followed by its retry). */
  torn: number;
  /** The same published line seen again (a retried append whose first try had got through). */
  repeats: number;
  /** Same boot_id+seq published twice with different hashes: the agent reused a number. */
  reused: string[];
}

function kv(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of line.trim().split(/\s+/)) {
    const i = w.indexOf('=');
    if (i > 0) out[w.slice(0, i)] = w.slice(i + 1);
  }
  return out;
}

const UINT = /^\d{1,12}$/;

export function parseLedger(text: string): Ledger {
  const led: Ledger = { published: [], starts: [], torn: 0, repeats: 0, reused: [] };
  const byKey = new Map<string, LedgerPublished>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const k = kv(line);
    if (line.startsWith('start ')) {
      if (!UINT.test(k.seq ?? '') || !k.boot_id || !UINT.test(k.wall_time ?? '')) { led.torn++; continue; }
      led.starts.push({ seq: Number(k.seq), bootId: k.boot_id, wallTime: Number(k.wall_time), pid: Number(k.pid) });
      continue;
    }
    // a published line: starts with seq=, exactly one seq= (a torn fragment glued to a retry has two)
    if (!line.startsWith('seq=') || (line.match(/(^| )seq=/g) ?? []).length !== 1 || !UINT.test(k.seq ?? '') || !k.boot_id || !UINT.test(k.wall_time ?? '')) {
      led.torn++;
      continue;
    }
    const hashes: Record<string, string> = {};
    let hashKind: LedgerPublished['hashKind'] = 'none';
    for (const [key, v] of Object.entries(k)) {
      const m = /^(sha256|md5)\.(.+)$/.exec(key);
      if (m) {
        hashes[m[2]] = v;
        hashKind = m[1] as 'sha256' | 'md5';
      }
    }
    const p: LedgerPublished = {
      seq: Number(k.seq), bootId: k.boot_id, wallTime: Number(k.wall_time), hashes, hashKind,
      leakCount: UINT.test(k.leak_count ?? '') ? Number(k.leak_count) : undefined, recovered: k.recovered === '1',
    };
    const key = `${p.bootId}#${p.seq}`;
    const prev = byKey.get(key);
    if (prev) {
      if (JSON.stringify(prev.hashes) === JSON.stringify(p.hashes)) led.repeats++;
      else led.reused.push(key);
      continue;
    }
    byKey.set(key, p);
    led.published.push(p);
  }
  return led;
}

export interface SkippedLine { seq: number; bootId: string; wallTime: number; reason: string }

export function parseSkippedLog(text: string): SkippedLine[] {
  const out: SkippedLine[] = [];
  for (const raw of text.split('\n')) {
    const k = kv(raw);
    if (!UINT.test(k.seq ?? '') || !k.boot_id || !k.reason) continue;
    out.push({ seq: Number(k.seq), bootId: k.boot_id, wallTime: Number(k.wall_time), reason: k.reason });
  }
  return out;
}

/** One manifest entry as the harness sees it, with the stored files hashed on disk by the harness. */
export interface StoredSnapshot {
  bootId: string;
  seq: number;
  wallTime: number | null;
  /** ms since epoch */
  pulledAt: number;
  conflict: boolean;
  runId: string;
  /** device file name → { manifest's device-side sha256, sha256 of the stored file read back now } */
  files: Record<string, { manifest: string; disk: string | null; converted: boolean }>;
}

export interface DeviceAccountInput {
  serial: string;
  ledger: Ledger;
  skipped: SkippedLine[];
  stored: StoredSnapshot[];
  /** Snapshot dirs still on the device after the run (should be none). */
  leftOnDevice: number[];
  /** Expected seconds between snapshots (for the cadence figure). */
  expectedCycleS: number;
}

export interface DeviceAccount {
  serial: string;
  written: number;
  pulled: number;
  lost: string[];
  duplicated: string[];
  mismatched: string[];
  unledgered: string[];
  skipped: number;
  skippedReasons: Record<string, number>;
  interrupted: number[];
  unexplained: number[];
  leftOnDevice: number[];
  agentStarts: number;
  ledgerTorn: number;
  ledgerReused: string[];
  runs: number;
  maxSeq: number;
  /** seconds from the device's wall_time to the host's pulledAt */
  pullLagS: { max: number; p95: number; median: number };
  /** seconds between consecutive published snapshots (device wall clock) */
  cadence: { maxGapS: number; medianGapS: number; gapsOver2x: number };
  leaks: number;
  ok: boolean;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function accountDevice(inp: DeviceAccountInput): DeviceAccount {
  const { ledger } = inp;
  const key = (b: string, s: number) => `${b}#${s}`;
  const storedBy = new Map<string, StoredSnapshot[]>();
  for (const s of inp.stored) {
    const k = key(s.bootId, s.seq);
    storedBy.set(k, [...(storedBy.get(k) ?? []), s]);
  }
  const lost: string[] = [];
  const duplicated: string[] = [];
  const mismatched: string[] = [];
  let pulled = 0;
  const left = new Set(inp.leftOnDevice);
  for (const p of ledger.published) {
    const k = key(p.bootId, p.seq);
    const copies = storedBy.get(k) ?? [];
    if (copies.length === 0) {
      if (!left.has(p.seq)) lost.push(k);
      continue;
    }
    pulled++;
    if (copies.length > 1 || copies.some((c) => c.conflict)) duplicated.push(k);
    for (const c of copies) {
      const bad: string[] = [];
      for (const [name, hex] of Object.entries(p.hashes)) {
        const f = c.files[name];
        if (p.hashKind !== 'sha256') continue; // md5 ledgers are checked by kml against meta; sha256 here
        if (!f) bad.push(`${name} missing`);
        else if (f.manifest !== hex) bad.push(`${name} manifest`);
        else if (!f.converted && f.disk !== hex) bad.push(`${name} disk`);
      }
      if (bad.length) mismatched.push(`${k} (${bad.join(', ')})`);
    }
  }
  const ledgerKeys = new Set(ledger.published.map((p) => key(p.bootId, p.seq)));
  const unledgered = [...storedBy.keys()].filter((k) => !ledgerKeys.has(k));

  // sequence numbers: published, skipped, interrupted, or unexplained
  const published = new Set(ledger.published.map((p) => p.seq));
  const skippedSeqs = new Set(inp.skipped.map((s) => s.seq));
  const storedSeqs = new Set(inp.stored.map((s) => s.seq));
  const startSeqs = new Set(ledger.starts.map((s) => s.seq));
  const maxSeq = Math.max(0, ...published, ...skippedSeqs, ...startSeqs, ...storedSeqs);
  const interrupted: number[] = [];
  const unexplained: number[] = [];
  for (let s = 1; s <= maxSeq; s++) {
    if (published.has(s) || skippedSeqs.has(s) || storedSeqs.has(s)) continue;
    if (startSeqs.has(s)) interrupted.push(s);
    else unexplained.push(s);
  }
  const skippedReasons: Record<string, number> = {};
  for (const s of inp.skipped) skippedReasons[s.reason] = (skippedReasons[s.reason] ?? 0) + 1;

  const lags = inp.stored.filter((s) => s.wallTime !== null && !s.conflict).map((s) => s.pulledAt / 1000 - s.wallTime!).sort((a, b) => a - b);
  const times = ledger.published.map((p) => p.wallTime).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
  const sortedGaps = [...gaps].sort((a, b) => a - b);
  const runs = new Set(inp.stored.map((s) => s.runId)).size;
  const acc: DeviceAccount = {
    serial: inp.serial,
    written: ledger.published.length,
    pulled,
    lost,
    duplicated,
    mismatched,
    unledgered,
    skipped: inp.skipped.length,
    skippedReasons,
    interrupted,
    unexplained,
    leftOnDevice: inp.leftOnDevice,
    agentStarts: ledger.starts.length,
    ledgerTorn: ledger.torn,
    ledgerReused: ledger.reused,
    runs,
    maxSeq,
    pullLagS: { max: round1(lags[lags.length - 1] ?? 0), p95: round1(quantile(lags, 0.95)), median: round1(quantile(lags, 0.5)) },
    cadence: {
      maxGapS: sortedGaps[sortedGaps.length - 1] ?? 0,
      medianGapS: quantile(sortedGaps, 0.5),
      gapsOver2x: gaps.filter((g) => g > 2 * inp.expectedCycleS).length,
    },
    leaks: ledger.published.reduce((s, p) => s + (p.leakCount ?? 0), 0),
    ok: false,
  };
  acc.ok = lost.length === 0 && duplicated.length === 0 && mismatched.length === 0 && unledgered.length === 0
    && unexplained.length === 0 && inp.leftOnDevice.length === 0 && ledger.reused.length === 0 && runs <= 1 && acc.written > 0;
  return acc;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
