// `kml devices`: attached devices, their adb state and a one-word readiness for kmemleak collection.
import { Command } from 'commander';
import { Adb, resolveAdbEndpoint } from '../adb/client.js';
import { quickReadiness, type QuickReadiness } from '../device/doctor.js';
import { action, globalOptions, stderrLogger } from './context.js';
import { terminalSafe } from '../terminal.js';

export function renderDevices(rows: readonly QuickReadiness[]): string {
  if (rows.length === 0) return 'no devices attached (see `kml lab up` for a lab device)\n';
  const head = ['SERIAL', 'STATE', 'READINESS', 'MODEL', 'NOTE'];
  const table = [head, ...rows.map((r) => [r.serial, r.state.split(/\s/)[0], r.readiness, r.model ?? '-', r.reason])];
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

export function registerDevices(program: Command): void {
  program
    .command('devices')
    .description('list attached devices with their state and whether they are ready for kmemleak collection')
    .option('--json', 'print a JSON array: [{serial, state, readiness, reason, model, rootMethod}]')
    .addHelpText('after', `
READINESS is "ready" (root works and kmemleak is running), "not-ready" (see NOTE; run
\`kml doctor -s SERIAL\` for the full check and the fix), or the adb state when the device cannot be
used (offline, unauthorized, no-permissions, ...). Quick checks only: no adb root, no mounting.

Examples:
  kml devices
  kml devices --json | jq -r '.[] | select(.readiness == "ready") | .serial'`)
    .action(action(async (o: { json?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const log = stderrLogger(g.logLevel === 'info' ? 'warn' : g.logLevel);
      const adb = new Adb(resolveAdbEndpoint({ port: g.adbPort }), { log });
      const list = await adb.listDevices();
      const rows = await Promise.all(list.map((d) => quickReadiness(adb, d.serial, d.state)));
      process.stdout.write(o.json ? JSON.stringify(rows, null, 2) + '\n' : terminalSafe(renderDevices(rows)));
    }));
}
