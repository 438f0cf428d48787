// The agent's per-snapshot meta.txt (key=value lines, see the device contract) and the
// meta_<N>.json kml stores from it. Pure: text in, object out; unknown keys are kept.

export interface DeviceMeta {
  seq: number | null;
  bootId: string | null;
  uptimeS: number | null;
  wallTime: number | null;
  protocol: string | null;
  scan1Ms: number | null;
  scan2Ms: number | null;
  kmemleakBytes: number | null;
  leakCount: number | null;
  errors: string | null;
  /** Per device file: sha256 / md5 hex and size in bytes, when the agent recorded them. */
  sha256: Record<string, string>;
  md5: Record<string, string>;
  size: Record<string, number>;
  /** Every key=value line as written (last one wins). */
  fields: Record<string, string>;
}

const num = (v: string | undefined): number | null => {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v.trim());
  return Number.isFinite(n) ? n : null;
};

export function parseDeviceMeta(text: string): DeviceMeta {
  const fields: Record<string, string> = Object.create(null);
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    fields[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  const sha256: Record<string, string> = {};
  const md5: Record<string, string> = {};
  const size: Record<string, number> = {};
  for (const [k, v] of Object.entries(fields)) {
    const m = /^(sha256|md5|size)\.(.+)$/.exec(k);
    if (!m) continue;
    const val = v.trim().toLowerCase();
    if (m[1] === 'sha256' && /^[0-9a-f]{64}$/.test(val)) sha256[m[2]] = val;
    else if (m[1] === 'md5' && /^[0-9a-f]{32}$/.test(val)) md5[m[2]] = val;
    else if (m[1] === 'size' && /^\d+$/.test(val)) size[m[2]] = Number(val);
  }
  const seq = num(fields.seq);
  return {
    seq: seq !== null && Number.isSafeInteger(seq) && seq >= 0 ? seq : null,
    bootId: fields.boot_id?.trim() || null,
    uptimeS: num(fields.uptime_s),
    wallTime: num(fields.wall_time),
    protocol: fields.protocol?.trim() || null,
    scan1Ms: num(fields.scan1_ms),
    scan2Ms: num(fields.scan2_ms),
    kmemleakBytes: num(fields.kmemleak_bytes),
    leakCount: num(fields.leak_count),
    errors: fields.errors?.trim() || null,
    sha256,
    md5,
    size,
    fields: { ...fields },
  };
}

export const META_JSON_SCHEMA_VERSION = 1;

/** meta_<N>.json: the parsed fields plus the device's text verbatim, so nothing is lost. */
export function metaJson(meta: DeviceMeta, rawText: string, extra: Record<string, unknown> = {}): string {
  const { fields, ...parsed } = meta;
  return JSON.stringify({ schemaVersion: META_JSON_SCHEMA_VERSION, ...parsed, ...extra, fields, raw: rawText }, null, 2) + '\n';
}
