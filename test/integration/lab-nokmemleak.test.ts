// A lab device booted WITHOUT kmemleak=on (the kernel has DEBUG_KMEMLEAK_DEFAULT_OFF=y, like the
// seed's) and with debugfs left unmounted, as on an Android 12+ userdebug build after boot.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ensureLabArtifacts, startLabDevice, type LabDeviceHandle } from '../helpers/lab.js';

describe('lab device (--no-kmemleak --debugfs unmounted)', { timeout: 20 * 60_000 }, () => {
  let lab: LabDeviceHandle;

  before(async () => {
    await ensureLabArtifacts();
    lab = await startLabDevice({ kmemleak: false, debugfsMounted: false });
  }, { timeout: 20 * 60_000 });

  after(async () => {
    await lab?.stop();
  }, { timeout: 60_000 });

  test('debugfs is not mounted until someone mounts it', { timeout: 30_000 }, async () => {
    const r = await lab.sh('grep -c " /sys/kernel/debug " /proc/mounts; ls /sys/kernel/debug/kmemleak');
    assert.match(r.stdout, /^0$/m);
    assert.match(r.stderr, /No such file or directory/);
    const m = await lab.sh('mount -t debugfs debugfs /sys/kernel/debug && ls /sys/kernel/debug/kmemleak');
    assert.equal(m.code, 0, m.stderr);
    assert.equal(m.stdout, '/sys/kernel/debug/kmemleak\n');
  });

  test('writing scan fails with "Operation not permitted" and the report reads empty', { timeout: 30_000 }, async () => {
    const cmdline = await lab.sh('cat /proc/cmdline');
    assert.doesNotMatch(cmdline.stdout, /kmemleak=on/);
    const scan = await lab.sh('echo scan > /sys/kernel/debug/kmemleak');
    assert.notEqual(scan.code, 0);
    assert.match(scan.stderr, /Operation not permitted/);
    const read = await lab.sh('cat /sys/kernel/debug/kmemleak | wc -c');
    assert.equal(read.code, 0);
    assert.equal(read.stdout.trim(), '0');
    const dmesg = await lab.sh('dmesg | grep -i "kmemleak"');
    assert.match(dmesg.stdout, /Kernel memory leak detector disabled/);
  });
});
