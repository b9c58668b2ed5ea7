// Real-client test: the published npm `webhdfs` 1.2.0 client (Hadoop WebHDFS, two-step 307 writes)
// against the Gen1 emulator, in whichever dialect the driver started (adls: 307 to the same URL plus
// write=true; hadoop: 307 to a separate data listener). Every step goes through the client's own API
// and checks what a user of the client relies on: the bytes read back, the status fields, the errors.
// Exits non-zero (uncaught rejection / assert) on the first failure.
// Environment: DP_GEN1_HOST, DP_GEN1_PORT (the emulator), DP_GEN1_DIALECT (for messages only),
// DP_GEN1_PROTOCOL (http, the default, or https: the client's own option; the CA comes from Node's
// NODE_EXTRA_CA_CERTS).
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const WebHDFS = require('webhdfs');

const host = process.env.DP_GEN1_HOST;
const port = process.env.DP_GEN1_PORT;
const dialect = process.env.DP_GEN1_DIALECT || '?';
if (!host || !port) {
  console.error('webhdfs_client: DP_GEN1_HOST / DP_GEN1_PORT not set');
  process.exit(2);
}

// 'hdfs' is the emulator's superuser: the client sends user.name=hdfs on every call, and chown
// (SETOWNER) is a superuser operation in HDFS.
const protocol = process.env.DP_GEN1_PROTOCOL || 'http';
const hdfs = WebHDFS.createClient({ host, port, protocol, path: '/webhdfs/v1', user: 'hdfs' });

// The client's API is callback-based; wrap the calls so each step can be awaited.
function call(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn.call(hdfs, ...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
}
const mkdir = (p, mode) => call(hdfs.mkdir, p, mode);
const stat = (p) => call(hdfs.stat, p);
const readdir = (p) => call(hdfs.readdir, p);
const rename = (a, b) => call(hdfs.rename, a, b);
const chmod = (p, m) => call(hdfs.chmod, p, m);
const chown = (p, u, g) => call(hdfs.chown, p, u, g);
const unlink = (p, rec) => call(hdfs.unlink, p, rec);
const rmdir = (p, rec) => call(hdfs.rmdir, p, rec);
const readFile = (p) => call(hdfs.readFile, p);
const writeFile = (p, data, opts) => call(hdfs.writeFile, p, data, opts || {});
const appendFile = (p, data) => call(hdfs.appendFile, p, data, {});
// exists() reports through a single boolean argument, not (err, value).
const exists = (p) => new Promise((resolve) => hdfs.exists(p, resolve));

// The error a call fails with; fails the test if the call succeeds.
async function failure(promise, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof Error, what + ': rejected with a non-Error ' + e);
    return e;
  }
  assert.fail(what + ': expected the client to report an error');
}

function step(name) {
  console.log('[webhdfs/' + dialect + '] ' + name);
}

async function main() {
  const base = '/wh-' + dialect;
  const dir = base + '/dir';

  step('mkdir with a mode, stat of the directory');
  await mkdir(dir, '0750');
  let st = await stat(dir);
  assert.strictEqual(st.type, 'DIRECTORY');
  assert.strictEqual(st.permission, '750');
  assert.strictEqual(st.length, 0);
  assert.strictEqual((await stat(base)).type, 'DIRECTORY', 'mkdirs creates missing parents');

  step('writeFile (CREATE, two-step 307) and readFile back');
  const first = crypto.randomBytes(1536 * 1024 + 7);
  await writeFile(dir + '/a.bin', first);
  let back = await readFile(dir + '/a.bin');
  assert.ok(Buffer.isBuffer(back));
  assert.strictEqual(back.length, first.length);
  assert.ok(back.equals(first), 'bytes read back differ from the bytes written');
  st = await stat(dir + '/a.bin');
  assert.strictEqual(st.type, 'FILE');
  assert.strictEqual(st.length, first.length);
  assert.strictEqual(st.owner, 'hdfs');

  step('appendFile (APPEND, two-step 307) and readFile back');
  const more = crypto.randomBytes(300 * 1024 + 3);
  await appendFile(dir + '/a.bin', more);
  const whole = Buffer.concat([first, more]);
  back = await readFile(dir + '/a.bin');
  assert.strictEqual(back.length, whole.length);
  assert.ok(back.equals(whole), 'appended content differs');
  assert.strictEqual((await stat(dir + '/a.bin')).length, whole.length);

  step('a string body and an empty file');
  await writeFile(dir + '/text.txt', 'hello, webhdfs\n');
  assert.strictEqual((await readFile(dir + '/text.txt')).toString('utf8'), 'hello, webhdfs\n');
  await writeFile(dir + '/empty', Buffer.alloc(0));
  assert.strictEqual((await stat(dir + '/empty')).length, 0);
  assert.strictEqual((await readFile(dir + '/empty')).length, 0);

  step('overwrite (default overwrite=true) replaces the content');
  await writeFile(dir + '/text.txt', 'second version');
  assert.strictEqual((await readFile(dir + '/text.txt')).toString('utf8'), 'second version');

  step('overwrite=false on an existing file is refused and leaves it unchanged');
  const e0 = await failure(writeFile(dir + '/text.txt', 'third', { overwrite: false }), 'create overwrite=false');
  assert.notStrictEqual(e0.message, 'Unknown error', 'error body was not a RemoteException');
  assert.strictEqual((await readFile(dir + '/text.txt')).toString('utf8'), 'second version');

  step('rename, then stat both names');
  await rename(dir + '/a.bin', dir + '/b.bin');
  assert.strictEqual(await exists(dir + '/a.bin'), false);
  assert.strictEqual((await stat(dir + '/b.bin')).length, whole.length);
  assert.ok((await readFile(dir + '/b.bin')).equals(whole), 'renamed file content differs');

  step('readdir lists the entries with their types');
  await mkdir(dir + '/sub');
  const entries = await readdir(dir);
  const byName = {};
  for (const e of entries) byName[e.pathSuffix] = e;
  assert.deepStrictEqual(Object.keys(byName).sort(), ['b.bin', 'empty', 'sub', 'text.txt']);
  assert.strictEqual(byName['b.bin'].type, 'FILE');
  assert.strictEqual(byName['b.bin'].length, whole.length);
  assert.strictEqual(byName['sub'].type, 'DIRECTORY');
  assert.strictEqual(byName['sub'].permission, '755', 'mkdir without a mode sends permission=0755');

  step('chmod (SETPERMISSION) and chown (SETOWNER)');
  await chmod(dir + '/b.bin', '640');
  assert.strictEqual((await stat(dir + '/b.bin')).permission, '640');
  await chmod(dir + '/sub', '1777');
  assert.strictEqual((await stat(dir + '/sub')).permission, '1777');
  await chown(dir + '/b.bin', 'alice', 'staff');
  st = await stat(dir + '/b.bin');
  assert.strictEqual(st.owner, 'alice');
  assert.strictEqual(st.group, 'staff');

  step('a missing file gives the client an error carrying the service message');
  const missing = base + '/no-such-file';
  const e1 = await failure(stat(missing), 'stat of a missing file');
  assert.ok(e1.message.includes('no-such-file'), 'stat error message: ' + e1.message);
  const e2 = await failure(readFile(missing), 'readFile of a missing file');
  assert.ok(e2.message.includes('no-such-file'), 'readFile error message: ' + e2.message);
  assert.strictEqual(await exists(missing), false);
  const e3 = await failure(readdir(base + '/no-such-dir'), 'readdir of a missing directory');
  assert.ok(e3.message.includes('no-such-dir'), 'readdir error message: ' + e3.message);

  step('unlink a file; a non-empty directory needs recursive');
  await unlink(dir + '/empty');
  assert.strictEqual(await exists(dir + '/empty'), false);
  await failure(rmdir(dir, false), 'non-recursive delete of a non-empty directory');
  assert.strictEqual(await exists(dir + '/b.bin'), true, 'failed delete removed content');
  await rmdir(dir + '/sub');
  assert.strictEqual(await exists(dir + '/sub'), false);
  await rmdir(dir, true);
  assert.strictEqual(await exists(dir), false);
  assert.deepStrictEqual(await readdir(base), []);

  step('leave one known file for the driver to check over raw HTTP');
  await writeFile(base + '/final.txt', 'webhdfs-' + dialect + '-final');
  console.log('[webhdfs/' + dialect + '] all steps passed');
}

main().catch((e) => {
  console.error('[webhdfs/' + dialect + '] FAILED:', e && e.stack ? e.stack : e);
  process.exit(1);
});
