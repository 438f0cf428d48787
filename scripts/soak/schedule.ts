// The soak's fault schedule: a seeded, replayable list of faults spread over the run. Pure.
//
// Device faults (unplug, reboot, adbd-kill, device-full) hit the heavily faulted device only, so
// the others show whether their cadence holds; host faults (adb-server, kml-kill, host-full) hit
// every device at once. Faults run one after another (each recovery is measured on its own) and
// are placed in CYCLES (the devices' snapshot sequence), not seconds: the same seed gives the same
// schedule on a fast machine and a loaded one.

export const FAULT_KINDS = ['adb-server', 'unplug', 'reboot', 'adbd-kill', 'kml-kill', 'device-full', 'host-full'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that act on one device (the heavy one); the rest act on the host, i.e. every device. */
export const DEVICE_FAULTS: readonly FaultKind[] = ['unplug', 'reboot', 'adbd-kill', 'device-full'];

export interface FaultEvent {
  /** 1-based position in the schedule. */
  n: number;
  kind: FaultKind;
  /** Fires once the devices have run this many cycles (the most advanced device's sequence number). */
  atCycle: number;
  /** Device index for device faults; undefined = the host (every device). */
  device?: number;
  /** How long the fault lasts before it is cleared (unplug, adb server down, full disks, kml down). */
  holdS: number;
}

export interface ScheduleOptions {
  seed: number;
  kinds: readonly FaultKind[];
  /** Every kind fires at least this often. */
  perKind: number;
  /** Cycles of the run; faults go between `firstCycle` and 90 % of it. */
  cycles: number;
  firstCycle: number;
  /** Estimated seconds per cycle, to turn a fault's duration into cycles. */
  cycleS: number;
  /** Smallest gap between one fault's recovery and the next fault, cycles. */
  minGapCycles: number;
  heavy: number;
}

/** mulberry32: small, fast, good enough for a fault schedule, identical on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hold ranges, seconds: [min, max]. unplug 5–40 s is the range. */
export const HOLD_RANGES: Record<FaultKind, [number, number]> = {
  'adb-server': [1, 8],
  unplug: [5, 40],
  reboot: [0, 0],
  'adbd-kill': [0, 0],
  'kml-kill': [0, 5],
  // long enough for the agent to skip a few cycles / the store to fill and stay full a while
  'device-full': [12, 40],
  'host-full': [10, 35],
};

/** Rough time a fault takes beyond its hold (reboot, reconnects), for spreading the schedule. */
const OVERHEAD_S: Record<FaultKind, number> = {
  'adb-server': 3, unplug: 5, reboot: 20, 'adbd-kill': 4, 'kml-kill': 2, 'device-full': 5, 'host-full': 3,
};

export function makeSchedule(o: ScheduleOptions): FaultEvent[] {
  const rnd = prng(o.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const bag: FaultKind[] = [];
  for (const k of o.kinds) for (let i = 0; i < o.perKind; i++) bag.push(k);
  // Fisher–Yates
  for (let i = bag.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [bag[i], bag[j]] = [bag[j], bag[i]];
  }
  const holds = bag.map((k) => int(HOLD_RANGES[k][0], HOLD_RANGES[k][1]));
  // a fault occupies its hold, its overhead and about two cycles of recovery
  const busy = bag.map((k, i) => Math.ceil((holds[i] + OVERHEAD_S[k]) / o.cycleS) + 2);
  const room = Math.max(0, Math.floor(o.cycles * 0.9) - o.firstCycle);
  const spare = Math.max(0, room - busy.reduce((a, b) => a + b, 0) - bag.length * o.minGapCycles);
  const weights = bag.map(() => 0.25 + rnd());
  const wsum = weights.reduce((a, b) => a + b, 0) || 1;
  const events: FaultEvent[] = [];
  let c = o.firstCycle;
  bag.forEach((kind, i) => {
    c += Math.round((spare * weights[i]) / wsum);
    events.push({ n: i + 1, kind, atCycle: c, device: DEVICE_FAULTS.includes(kind) ? o.heavy : undefined, holdS: holds[i] });
    c += busy[i] + o.minGapCycles;
  });
  return events;
}

export function parseFaultList(text: string): FaultKind[] {
  const out: FaultKind[] = [];
  for (const raw of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (raw === 'all') out.push(...FAULT_KINDS);
    else if (raw === 'none') continue;
    else if ((FAULT_KINDS as readonly string[]).includes(raw)) out.push(raw as FaultKind);
    else throw new Error(`unknown fault kind ${JSON.stringify(raw)} (known: ${FAULT_KINDS.join(', ')}, all, none)`);
  }
  return [...new Set(out)];
}

export function describeEvent(e: FaultEvent, serials: string[]): string {
  const where = e.device === undefined ? 'host' : `device ${e.device} (${serials[e.device] ?? '?'})`;
  const hold = e.holdS ? ` hold ${e.holdS}s` : '';
  return `#${String(e.n).padStart(2)} cycle ${String(e.atCycle).padStart(4)} ${e.kind.padEnd(11)} ${where}${hold}`;
}
