// Gen2-side reader for the through-proxy client tests: Microsoft's npm `@azure/storage-file-datalake`
// 12.31.0 lists a filesystem (recursively, in small pages), reads every file and fetches every path's
// access control, and prints what it found as one JSON document on stdout. The Python driver
// (test_proxy_clients.py) compares that with Gen1 as read directly, so the Gen2 side of each test is
// checked by Microsoft's SDK, not only by the test's own HTTP code.
// Environment: DP_GEN2_URL (http://127.0.0.1:PORT), DP_GEN2_ACCOUNT, DP_GEN2_KEY, DP_GEN2_FS,
// DP_GEN2_DIR (optional: only this directory's subtree).
// Output: {"paths": {"<name>": {"type": "FILE"|"DIRECTORY", "length": n, "sha256": hex|null,
//          "permission": "0750", "owner": s, "group": s, "acl": ["user::rwx", ...]}}}
'use strict';

require('./webcrypto-global'); // before the SDK: Node 18 needs it (see the file)

const crypto = require('crypto');
const { DataLakeServiceClient, StorageSharedKeyCredential } = require('@azure/storage-file-datalake');

const base = process.env.DP_GEN2_URL;
const account = process.env.DP_GEN2_ACCOUNT;
const key = process.env.DP_GEN2_KEY;
const fsName = process.env.DP_GEN2_FS;
const dir = process.env.DP_GEN2_DIR || '';
if (!base || !account || !key || !fsName) {
  console.error('gen2_check_client: DP_GEN2_URL / DP_GEN2_ACCOUNT / DP_GEN2_KEY / DP_GEN2_FS not set');
  process.exit(2);
}

const service = new DataLakeServiceClient(base + '/' + account, new StorageSharedKeyCredential(account, key),
  { retryOptions: { maxTries: 1 } });
const fs = service.getFileSystemClient(fsName);

function bits(p) {
  return (p.read ? 4 : 0) + (p.write ? 2 : 0) + (p.execute ? 1 : 0);
}

function rwx(p) {
  return (p.read ? 'r' : '-') + (p.write ? 'w' : '-') + (p.execute ? 'x' : '-');
}

function octal(perms) {
  const v = (perms.stickyBit ? 0o1000 : 0) + bits(perms.owner) * 64 + bits(perms.group) * 8 + bits(perms.other);
  return v.toString(8).padStart(4, '0');
}

function aclText(e) {
  return (e.defaultScope ? 'default:' : '') + e.accessControlType + ':' + (e.entityId || '') + ':' + rwx(e.permissions);
}

async function main() {
  const out = {};
  const options = { recursive: true };
  if (dir) options.path = dir;
  for await (const page of fs.listPaths(options).byPage({ maxPageSize: 7 })) {
    for (const p of page.pathItems || []) {
      const entry = { type: p.isDirectory ? 'DIRECTORY' : 'FILE', length: Number(p.contentLength || 0), sha256: null };
      const client = p.isDirectory ? fs.getDirectoryClient(p.name) : fs.getFileClient(p.name);
      const ac = await client.getAccessControl();
      entry.permission = octal(ac.permissions);
      entry.owner = ac.owner;
      entry.group = ac.group;
      entry.acl = ac.acl.map(aclText).sort();
      if (!p.isDirectory) {
        const data = entry.length ? await fs.getFileClient(p.name).readToBuffer() : Buffer.alloc(0);
        entry.sha256 = crypto.createHash('sha256').update(data).digest('hex');
        entry.bytes = data.length;
      }
      out[p.name] = entry;
    }
  }
  process.stdout.write(JSON.stringify({ paths: out }) + '\n');
}

main().catch((e) => {
  console.error('gen2_check_client FAILED:', e && e.stack ? e.stack : e);
  process.exit(1);
});
