// The kml CLI as a user runs it (bin/kml.js in a child process), for integration tests.
//
//   const r = await runKml(['devices', '--json'], env);          // { code, stdout, stderr }
//   const { code, result } = await doctorJson(lab, ['--no-adb-root']);   // lab: { serial, env }
import { spawn } from 'node:child_process';
import os from 'node:os';
import { KML_BIN } from './paths.js';
import type { DoctorResult } from '../../host/device/doctor.js';

export interface KmlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `kml ARGS` with `env`; SIGKILL after timeoutMs (the result then has code null). */
export function runKml(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<KmlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KML_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** `kml doctor -s SERIAL --json` (free space checked in the temp folder) and its parsed result. */
export async function doctorJson(dev: { serial: string; env: NodeJS.ProcessEnv }, extra: string[] = []): Promise<{ code: number | null; result: DoctorResult; stderr: string }> {
  const r = await runKml(['doctor', '-s', dev.serial, '--json', '--out', os.tmpdir(), ...extra], dev.env);
  try {
    return { code: r.code, result: JSON.parse(r.stdout) as DoctorResult, stderr: r.stderr };
  } catch {
    throw new Error(`kml doctor printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}
