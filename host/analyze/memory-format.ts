// Human-readable sizes and rates, shared by verdict sentences (analyze) and renderers (report).
// Binary units (1 MB = 1024 kB), as /proc and the kernel's own messages use them.

/** 1536 → "1.5 MB", 512 → "512 kB", negative values keep their sign. */
export function humanKb(kb: number | null | undefined): string {
  if (kb === null || kb === undefined || !Number.isFinite(kb)) return '?';
  const sign = kb < 0 ? '-' : '';
  const a = Math.abs(kb);
  if (a >= 1024 * 1024) return `${sign}${trim(a / (1024 * 1024))} GB`;
  if (a >= 1024) return `${sign}${trim(a / 1024)} MB`;
  return `${sign}${trim(a)} kB`;
}

/** Bytes: 1536 → "1.5 kB", 100 → "100 B". */
export function humanBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return '?';
  if (Math.abs(b) < 1024) return `${Math.round(b)} B`;
  return humanKb(b / 1024);
}

/** "+1.5 MB" / "-512 kB" / "0 kB". */
export function signedKb(kb: number | null | undefined): string {
  if (kb === null || kb === undefined || !Number.isFinite(kb)) return '?';
  return kb > 0 ? `+${humanKb(kb)}` : humanKb(kb);
}

export function signedBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return '?';
  return b > 0 ? `+${humanBytes(b)}` : humanBytes(b);
}

function trim(x: number): string {
  if (x >= 100) return String(Math.round(x));
  if (x >= 10) return (Math.round(x * 10) / 10).toString();
  return (Math.round(x * 100) / 100).toString();
}

/** 1.25 → "1.3 h", 0.25 → "15 min". */
export function humanHours(h: number | null | undefined): string {
  if (h === null || h === undefined || !Number.isFinite(h)) return '?';
  if (h < 1) return `${Math.round(h * 60)} min`;
  return `${trim(h)} h`;
}

export function pct(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '?';
  return `${Math.round(x * 10) / 10}%`;
}
