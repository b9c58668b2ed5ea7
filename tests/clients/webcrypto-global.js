// Node 18 (Debian 12's nodejs package) has the Web Crypto API only as require('crypto').webcrypto;
// Node 19 and later also expose it as globalThis.crypto, which @azure/storage-file-datalake 12.31
// uses without checking ("crypto is not defined" on Node 18). Required first by the scripts that load
// that SDK, it gives Node 18 the same global; on newer Node it does nothing.
'use strict';

if (typeof globalThis.crypto === 'undefined') {
  Object.defineProperty(globalThis, 'crypto', { value: require('crypto').webcrypto, configurable: true });
}
