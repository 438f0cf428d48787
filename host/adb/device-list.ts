// Device states as the adb server reports them. The state is any string: adb 29 knows device,
// offline, unauthorized, authorizing, connecting, bootloader, recovery, rescue, sideload, host and
// a long "no permissions (...)" text; adbkit's type union is narrower than reality.

export type DeviceState = string;

/** Not a server state: the serial is not listed at all. */
export const ABSENT = 'absent';

export interface DeviceEntry {
  serial: string;
  state: DeviceState;
}

/** Parse a `host:devices` answer: `serial\tstate\n` lines. */
export function parseDeviceList(text: string): DeviceEntry[] {
  const out: DeviceEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    out.push({ serial: line.slice(0, tab), state: line.slice(tab + 1).trim() });
  }
  return out;
}

/** One word for a state, for tables and JSON: "no permissions (user in plugdev...)" → "no-permissions". */
export function stateWord(state: DeviceState): string {
  if (/^no permissions/i.test(state) || /insufficient permissions/i.test(state)) return 'no-permissions';
  return state.split(/\s+/)[0] || 'unknown';
}

/** States in which shell/sync work. */
export function isOnline(state: DeviceState): boolean {
  return state === 'device' || state === 'emulator';
}
