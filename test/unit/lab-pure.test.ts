// Pure pieces of the lab (host/lab): QEMU command line, accelerator choice, guest config, console
// markers, and the pluggable relay (real loopback sockets, no VM).
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { cpuHasVirtFlags, decideAccel } from '../../host/lab/accel.js';
import { parseLdd, renderAdbdArgs, renderDeviceProps, renderGuestEnv, shQuote, toGuestPath } from '../../host/lab/guest-config.js';
import { normaliseSerial, parseLeakPaths } from '../../host/lab/lab.js';
import { kernelCmdline, qemuArgs } from '../../host/lab/qemu.js';
import { PluggableRelay } from '../../host/lab/relay.js';
import { parseConsoleLine } from '../../host/lab/supervisor.js';
import { isKmlError } from '../../host/errors.js';

const spec = {
  name: 'kml-lab-1', accel: 'tcg' as const, cpus: 1, memMb: 512, kernel: '/k/bzImage', initramfs: '/k/initramfs.cpio.gz',
  kmemleak: true, debugfsMounted: true, forwardPort: 40001, dataImage: '/s/data.img',
  shares: [{ tag: 'usr', hostPath: '/usr', guestPath: '/host/usr' }], qmpSocket: '/s/qmp.sock', pidFile: '/s/qemu.pid',
};

describe('qemu command line', () => {
  test('forwards adbd on loopback only and keeps the guest network restricted', () => {
    const args = qemuArgs(spec);
    const netdev = args[args.indexOf('-netdev') + 1];
    assert.equal(netdev, 'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:5555');
    assert.deepEqual(args.slice(args.indexOf('-accel'), args.indexOf('-accel') + 4), ['-accel', 'tcg,thread=multi', '-cpu', 'max']);
    assert.ok(args.includes('local,path=/usr,mount_tag=usr,security_model=none,readonly=on'));
  });

  test('kmemleak=on only when asked; debugfs state is passed to the guest', () => {
    assert.match(kernelCmdline({ kmemleak: true, debugfsMounted: true }), /\bkmemleak=on\b.*kml\.debugfs=mounted/);
    const off = kernelCmdline({ kmemleak: false, debugfsMounted: false });
    assert.doesNotMatch(off, /kmemleak/);
    assert.match(off, /kml\.debugfs=unmounted/);
  });

  test('refuses share paths QEMU cannot parse', () => {
    assert.throws(() => qemuArgs({ ...spec, shares: [{ tag: 'x', hostPath: '/a,b', guestPath: '/x' }] }), (e) => isKmlError(e) && /cannot share/.test(e.message));
  });
});

describe('accelerator choice', () => {
  test('kvm_pvm-like hosts (a /dev/kvm but no vmx/svm) get TCG', () => {
    assert.deepEqual(decideAccel('auto', { hardwareVirt: false, kvmDevice: true }), { accel: 'tcg', reason: 'no vmx/svm CPU flag' });
    assert.throws(() => decideAccel('kvm', { hardwareVirt: false, kvmDevice: true }), (e) => isKmlError(e) && e.exitCode === 7);
  });
  test('real KVM is probed in auto mode, used when requested', () => {
    assert.equal(decideAccel('auto', { hardwareVirt: true, kvmDevice: true }), undefined);
    assert.equal(decideAccel('kvm', { hardwareVirt: true, kvmDevice: true })?.accel, 'kvm');
    assert.equal(decideAccel('tcg', { hardwareVirt: true, kvmDevice: true })?.accel, 'tcg');
  });
  test('reads vmx/svm from /proc/cpuinfo flags', () => {
    assert.equal(cpuHasVirtFlags('flags\t\t: fpu vme de pse svm lahf_lm\n'), true);
    assert.equal(cpuHasVirtFlags('flags\t\t: fpu vme de pse lahf_lm\nmodel name: svmx\n'), false);
  });
});

describe('guest config', () => {
  test('parses ldd output (Debian node)', () => {
    const r = parseLdd(`\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f38)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f38)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f38)\n`);
    assert.equal(r.interpreter, '/lib64/ld-linux-x86-64.so.2');
    assert.deepEqual(r.libraries, ['/lib/x86_64-linux-gnu/libdl.so.2', '/lib/x86_64-linux-gnu/libc.so.6']);
    assert.equal(parseLdd('\tnot a dynamic executable\n').isStatic, true);
  });
  test('maps host paths into shares and nothing else', () => {
    const shares = [{ tag: 'usr', hostPath: '/usr', guestPath: '/host/usr' }, { tag: 'kmlrepo', hostPath: '/work/main', guestPath: '/host/kml' }];
    assert.equal(toGuestPath('/usr/bin/node', shares), '/host/usr/bin/node');
    assert.equal(toGuestPath('/work/main/dist/scripts/lab/adbd/main.js', shares), '/host/kml/dist/scripts/lab/adbd/main.js');
    assert.equal(toGuestPath('/usrlocal/bin/node', shares), undefined);
    assert.equal(toGuestPath('/etc/shadow', shares), undefined);
  });
  test('guest.env values are shell-quoted; adbd args one per line', () => {
    assert.equal(shQuote("it's"), `'it'\\''s'`);
    const env = renderGuestEnv({ loader: '/host/usr/lib/ld.so', libraryPath: '/host/usr/lib', node: '/host/usr/bin/node', shares: [{ tag: 'usr', hostPath: '/usr', guestPath: '/host/usr' }] }, "/host/kml/a b'c.js", 'localhost');
    assert.match(env, /^KML_ADBD='\/host\/kml\/a b'\\''c\.js'$/m);
    assert.match(env, /^KML_SHARES='usr:\/host\/usr'$/m);
    const argv = renderAdbdArgs({ serialno: 'S', model: 'kml_lab', product: 'p', device: 'd' }).trimEnd().split('\n');
    assert.deepEqual(argv.slice(0, 6), ['--port', '5555', '--listen', '0.0.0.0', '--shell', '/system/bin/sh']);
  });
});

describe('lab CLI helpers', () => {
  test('leak paths by name, number or all', () => {
    assert.equal(parseLeakPaths('cache,name'), 5);
    assert.equal(parseLeakPaths('2'), 2);
    assert.equal(parseLeakPaths('all'), 7);
    assert.throws(() => parseLeakPaths('bogus'), (e) => isKmlError(e) && e.exitCode === 2);
  });
  test('serial spellings', () => {
    assert.equal(normaliseSerial('40123'), '127.0.0.1:40123');
    assert.equal(normaliseSerial('localhost:40123'), '127.0.0.1:40123');
    assert.equal(normaliseSerial('127.0.0.1:40123'), '127.0.0.1:40123');
  });
  test('console markers, also behind kernel text on the same line', () => {
    assert.deepEqual(parseConsoleLine('KMLCTL-DONE kill-adbd rc=0'), { kind: 'ctl-done', text: 'KMLCTL-DONE kill-adbd rc=0', cmd: 'kill-adbd', rc: 0 });
    assert.equal(parseConsoleLine('[    3.1] foo KML-ADBD-LISTENING uptime=3.2')?.kind, 'adbd-listening');
    assert.equal(parseConsoleLine('KMLCTL reboot'), undefined); // our own echo is not an answer
  });
});

describe('pluggable relay', () => {
  async function echoServer(): Promise<net.Server> {
    const srv = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    return srv;
  }
  function connect(port: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
  }
  function roundTrip(s: net.Socket, text: string): Promise<string> {
    return new Promise((resolve) => {
      s.once('data', (d: Buffer) => resolve(d.toString()));
      s.write(text);
    });
  }

  test('passes bytes, resets connections on unplug, refuses while unplugged, accepts after replug', { timeout: 10_000 }, async () => {
    const target = await echoServer();
    const relay = new PluggableRelay({ listenPort: 0, targetPort: (target.address() as net.AddressInfo).port });
    const port = await relay.listen();
    try {
      const a = await connect(port);
      assert.equal(await roundTrip(a, 'ping'), 'ping');
      const reset = new Promise<string>((resolve) => {
        a.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        a.once('close', () => resolve('closed'));
      });
      assert.equal(relay.unplug(), 1);
      assert.equal(await reset, 'ECONNRESET');
      // While unplugged the relay resets a new connection at once (connect may already see it).
      const refused = await new Promise<string>((resolve) => {
        const b = net.connect({ host: '127.0.0.1', port }, () => b.write('x'));
        b.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        b.once('close', () => resolve('closed'));
      });
      assert.ok(['ECONNRESET', 'EPIPE', 'closed'].includes(refused), refused);
      relay.replug();
      const c = await connect(port);
      assert.equal(await roundTrip(c, 'again'), 'again');
      c.destroy();
    } finally {
      await relay.close();
      target.close();
    }
  });
});

describe('device.prop per build (read by the guest\'s getprop and adbd-service)', () => {
  const id = { serialno: 'KMLLAB0001', model: 'm', product: 'p', device: 'd' };
  const props = (text: string): Map<string, string> => new Map(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

  test('userdebug-root (the default) keeps build.prop\'s root adbd and has AOSP su', () => {
    const p = props(renderDeviceProps(id));
    assert.equal(p.get('service.adb.root'), undefined, 'build.prop says 1');
    assert.equal(p.get('ro.debuggable'), undefined, 'build.prop says 1');
    assert.equal(p.get('kml.lab.su'), 'aosp');
    assert.equal(p.get('ro.serialno'), 'KMLLAB0001');
  });

  test('userdebug: adbd not root until adb root; user: not debuggable, no su unless asked for', () => {
    const ud = props(renderDeviceProps(id, true, 'userdebug'));
    assert.equal(ud.get('service.adb.root'), '0');
    assert.equal(ud.get('kml.lab.su'), 'aosp');
    const user = props(renderDeviceProps(id, true, 'user'));
    assert.equal(user.get('ro.debuggable'), '0');
    assert.equal(user.get('ro.build.type'), 'user');
    assert.equal(user.get('service.adb.root'), '0');
    assert.equal(user.get('kml.lab.su'), 'none');
    assert.equal(props(renderDeviceProps(id, true, 'user', 'magisk')).get('kml.lab.su'), 'magisk');
    assert.equal(props(renderDeviceProps(id, false, 'userdebug', 'none')).get('ro.product.debugfs_restrictions.enabled'), 'true');
  });
});
