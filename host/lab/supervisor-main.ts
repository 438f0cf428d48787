// Entry point of a lab device's supervisor process: `node supervisor-main.js <lab state dir> <slot>`.
// Started detached by `kml lab up`; lives until `kml lab down` (or the guest powers off).
import { createLogger } from '../log.js';
import { DeviceDir } from './state.js';
import { Supervisor } from './supervisor.js';

const [root, slotText] = process.argv.slice(2);
const slot = Number(slotText);
if (!root || !Number.isInteger(slot) || slot <= 0) {
  process.stderr.write('usage: supervisor-main.js <lab state dir> <slot>\n');
  process.exit(2);
}
const dev = new DeviceDir(root, slot);
const config = dev.readConfig();
if (!config) {
  process.stderr.write(`no config.json in ${dev.dir}\n`);
  process.exit(2);
}
const log = createLogger({ file: dev.supervisorLog, pretty: false, level: 'info' });
const supervisor = new Supervisor(dev, config, log);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(sig, () => void supervisor.stop(`signal ${sig}`));
}
process.on('uncaughtException', (e) => void supervisor.fail(e));
process.on('unhandledRejection', (e) => void supervisor.fail(e));
supervisor.start().catch((e) => supervisor.fail(e));
