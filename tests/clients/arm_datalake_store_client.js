// Real-client test: the npm `azure-arm-datalake-store` 0.4.2 SDK (on ms-rest 1.15.7), the Node ADLS
// Gen1 client, against the Gen1 emulator in the adls dialect. It sends the path as one
// percent-encoded segment, one-step write=true/append=true/read=true, MSLISTSTATUS, CONCURRENTAPPEND
// under /WebHdfsExt/, and uploads Buffers with BOTH Transfer-Encoding: chunked and Content-Length
// (chunked must win). Each step checks what the SDK hands back to its caller.
// Exits non-zero on the first failure.
// Environment: DP_GEN1_URL (http://127.0.0.1:PORT).
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const { Readable } = require('stream');
const msRest = require('ms-rest');
const adls = require('azure-arm-datalake-store');

const url = process.env.DP_GEN1_URL;
if (!url) {
  console.error('arm_datalake_store_client: DP_GEN1_URL not set');
  process.exit(2);
}

// clients.md: point the client at loopback by replacing its https://{accountName}.{suffix} base.
const client = new adls.DataLakeStoreFileSystemClient(new msRest.TokenCredentials('x'), { noRetryPolicy: true });
client.baseUri = url;
const fsOps = client.fileSystem;
const ACCOUNT = 'emu';

// The SDK is callback-based: callback(err, result, request, response).
function call(name, ...args) {
  return new Promise((resolve, reject) => {
    fsOps[name](ACCOUNT, ...args, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function failure(promise, what) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail(what + ': expected the SDK to report an error');
}

// open() hands back the response stream, which is already flowing: its data has to be collected
// inside the callback, before control returns to the event loop (awaiting first loses chunks).
function open(path, options) {
  return new Promise((resolve, reject) => {
    fsOps.open(ACCOUNT, path, options || {}, (err, stream) => {
      if (err) return reject(err);
      const parts = [];
      stream.on('data', (d) => parts.push(Buffer.from(d)));
      stream.on('end', () => resolve(Buffer.concat(parts)));
      stream.on('error', reject);
    });
  });
}

async function listNames(path, options) {
  const res = await call('listFileStatus', path, options || {});
  return res.fileStatuses.fileStatus.map((s) => s.pathSuffix);
}

function step(name) {
  console.log('[arm-datalake-store] ' + name);
}

async function main() {
  const dir = '/arm/dir one';   // a space: the SDK percent-encodes the whole path as one segment

  step('mkdirs');
  assert.strictEqual((await call('mkdirs', dir)).operationResult, true);
  let st = (await call('getFileStatus', dir)).fileStatus;
  assert.strictEqual(st.type, 'DIRECTORY');

  step('create with a Buffer body (chunked + Content-Length) and open it back');
  const first = crypto.randomBytes(600 * 1024 + 11);
  await call('create', dir + '/data.bin', { streamContents: first, overwrite: true });
  assert.ok((await open(dir + '/data.bin')).equals(first), 'created content differs');
  st = (await call('getFileStatus', dir + '/data.bin')).fileStatus;
  assert.strictEqual(st.type, 'FILE');
  assert.strictEqual(st.length, first.length);

  step('create with a stream body (chunked only)');
  await call('create', dir + '/stream.txt', { streamContents: Readable.from([Buffer.from('from a stream')]), overwrite: true });
  assert.strictEqual((await open(dir + '/stream.txt')).toString(), 'from a stream');

  step('append at the right offset, then at a wrong one (BadOffsetException)');
  const more = crypto.randomBytes(100 * 1024);
  await call('append', dir + '/data.bin', more, { offset: first.length });
  const whole = Buffer.concat([first, more]);
  assert.ok((await open(dir + '/data.bin')).equals(whole), 'appended content differs');
  const eoff = await failure(call('append', dir + '/data.bin', Buffer.from('x'), { offset: 5 }), 'append at a wrong offset');
  assert.strictEqual(eoff.statusCode, 400);
  assert.ok(JSON.stringify(eoff.body || {}).includes('BadOffsetException') || /BadOffset/.test(eoff.message),
    'wrong-offset error does not name BadOffsetException: ' + eoff.message);
  assert.strictEqual((await call('getFileStatus', dir + '/data.bin')).fileStatus.length, whole.length);

  step('open with offset and length');
  assert.ok((await open(dir + '/data.bin', { offset: 1000, length: 4096 })).equals(whole.subarray(1000, 5096)));

  step('create without overwrite on an existing file is refused');
  await failure(call('create', dir + '/data.bin', { streamContents: Buffer.from('no'), overwrite: false }), 'create overwrite=false');
  assert.strictEqual((await call('getFileStatus', dir + '/data.bin')).fileStatus.length, whole.length);

  step('concurrentAppend with appendMode=autocreate (/WebHdfsExt/)');
  await call('concurrentAppend', dir + '/log.txt', Buffer.from('line 1\n'), { appendMode: 'autocreate' });
  await call('concurrentAppend', dir + '/log.txt', Buffer.from('line 2\n'), {});
  assert.strictEqual((await open(dir + '/log.txt')).toString(), 'line 1\nline 2\n');

  step('MSLISTSTATUS, with listSize and listAfter paging');
  for (const n of ['p1', 'p2', 'p3']) await call('create', dir + '/' + n, { streamContents: Buffer.from(n), overwrite: true });
  const all = await listNames(dir);
  assert.deepStrictEqual(all.slice().sort(), ['data.bin', 'log.txt', 'p1', 'p2', 'p3', 'stream.txt']);
  const res = await call('listFileStatus', dir, {});
  const dataEntry = res.fileStatuses.fileStatus.find((s) => s.pathSuffix === 'data.bin');
  assert.strictEqual(dataEntry.length, whole.length);
  assert.strictEqual(dataEntry.type, 'FILE');
  const sorted = all.slice().sort();
  const page1 = await listNames(dir, { listSize: 2 });
  assert.deepStrictEqual(page1, sorted.slice(0, 2));
  const page2 = await listNames(dir, { listSize: 2, listAfter: page1[1] });
  assert.deepStrictEqual(page2, sorted.slice(2, 4));

  step('rename (boolean result), rename of a missing source is false');
  assert.strictEqual((await call('rename', dir + '/p1', dir + '/renamed')).operationResult, true);
  assert.strictEqual((await open(dir + '/renamed')).toString(), 'p1');
  assert.strictEqual((await call('rename', dir + '/no-such', dir + '/x')).operationResult, false);

  step('setPermission, setOwner');
  await call('setPermission', dir + '/renamed', { permission: '640' });
  assert.strictEqual((await call('getFileStatus', dir + '/renamed')).fileStatus.permission, '640');
  const oid = '11111111-2222-3333-4444-555555555555';
  await call('setOwner', dir + '/renamed', { owner: oid, group: 'g-' + oid });
  st = (await call('getFileStatus', dir + '/renamed')).fileStatus;
  assert.strictEqual(st.owner, oid);
  assert.strictEqual(st.group, 'g-' + oid);

  step('ACLs: setAcl, modifyAclEntries, removeAclEntries, getAclStatus');
  const uid = 'aaaaaaaa-0000-0000-0000-000000000001';
  const uid2 = 'aaaaaaaa-0000-0000-0000-000000000002';
  await call('setAcl', dir + '/renamed', 'user::rw-,user:' + uid + ':r--,group::r--,mask::r--,other::---');
  let acl = (await call('getAclStatus', dir + '/renamed')).aclStatus;
  assert.ok(acl.entries.includes('user:' + uid + ':r--'), 'setAcl entry missing: ' + acl.entries);
  await call('modifyAclEntries', dir + '/renamed', 'user:' + uid2 + ':rw-');
  acl = (await call('getAclStatus', dir + '/renamed')).aclStatus;
  assert.ok(acl.entries.includes('user:' + uid2 + ':rw-'), 'modifyAclEntries entry missing: ' + acl.entries);
  assert.ok(acl.entries.includes('user:' + uid + ':r--'), 'modifyAclEntries dropped an entry: ' + acl.entries);
  await call('removeAclEntries', dir + '/renamed', 'user:' + uid);
  acl = (await call('getAclStatus', dir + '/renamed')).aclStatus;
  assert.ok(!acl.entries.some((e) => e.startsWith('user:' + uid + ':')), 'removeAclEntries left the entry: ' + acl.entries);
  assert.strictEqual(acl.owner, oid);

  step('missing paths: getFileStatus 404, open 404');
  const e404 = await failure(call('getFileStatus', dir + '/missing'), 'getFileStatus of a missing file');
  assert.strictEqual(e404.statusCode, 404);
  const eopen = await failure(open(dir + '/missing'), 'open of a missing file');
  assert.strictEqual(eopen.statusCode, 404);

  step('delete: file, missing path is false, directory recursive');
  assert.strictEqual((await call('deleteMethod', dir + '/p2', { recursive: false })).operationResult, true);
  assert.strictEqual((await call('deleteMethod', dir + '/p2', { recursive: false })).operationResult, false);
  assert.strictEqual((await call('deleteMethod', '/arm', { recursive: true })).operationResult, true);
  await failure(call('getFileStatus', '/arm'), 'getFileStatus after recursive delete');

  step('leave one known file for the driver to check over raw HTTP');
  await call('create', '/arm-final.txt', { streamContents: Buffer.from('arm-final'), overwrite: true });
  console.log('[arm-datalake-store] all steps passed');
}

main().catch((e) => {
  console.error('[arm-datalake-store] FAILED:', e && e.stack ? e.stack : e);
  if (e && e.statusCode) console.error('status:', e.statusCode, 'body:', JSON.stringify(e.body));
  if (e && e.request) console.error('request:', e.request.method, e.request.url);
  process.exit(1);
});
