#!/usr/bin/env node
// A standard grpc-js client of lootlab's LootService, for tests/e2e/test_interop_js.py.
//
// It knows the service only through the public lootlab/remote/loot.proto (loaded with
// @grpc/proto-loader), so it checks what any other-language client would see, whatever
// encoder the server uses.
//
//   node client.js --target HOST:PORT (--ca CA.pem | --plaintext) [--timeout SECONDS]
//
// stdin:  a JSON list of queries, e.g. [{"method": "Near", "request": {"at": {"x": 1,
//         "y": 64, "z": 2}, "radius": 16, "packed": true}}, {"method": "ServerStats"}]
// stdout: {"fields": [...], "answers": [...]}, one answer per query, in order:
//         {"ok": true, "generation": "1", "records": [[x, y, z, ...], ...],
//          "packed": [[...], ...], "packed_bytes": N}  (records: the repeated field;
//          packed: the bytes field decoded per loot.proto's layout), or {"ok": true,
//          "stats": {...}} (64-bit integers as decimal strings), or
//         {"ok": false, "code": "INVALID_ARGUMENT", "details": "..."}.
// Exit codes: 0 answered (query errors are answers); 2 bad usage or input;
// 3 cannot reach the server (connection or TLS failure); 4 an answer that cannot be
// decoded.  Every non-zero exit says why on stderr.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, '..', '..', '..', 'lootlab', 'remote', 'loot.proto');
const FIELDS = ['x', 'y', 'z', 'item_id', 'value', 'quantity', 'rarity', 'flags', 'tick'];
const METHODS = ['Get', 'Near', 'Box', 'Knn', 'ServerStats'];
const RECORD_BYTES = 24;

// Node warns (DEP0123) when TLS's server name is an IP address, as grpc-js sets it for a
// target like 127.0.0.1:PORT; the certificate is still checked against that address.
// Only that warning is dropped, so stderr stays for real problems.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? rest[0].code : rest[1];
  if (code === 'DEP0123') return;
  emitWarning.call(process, warning, ...rest);
};

class Fatal extends Error {
  constructor(message, exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

function parseArgs(argv) {
  const opts = { target: null, ca: null, plaintext: false, timeout: 30, proto: PROTO };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Fatal(`${arg} needs a value`, 2);
      return argv[++i];
    };
    if (arg === '--target') opts.target = value();
    else if (arg === '--ca') opts.ca = value();
    else if (arg === '--plaintext') opts.plaintext = true;
    else if (arg === '--timeout') opts.timeout = Number(value());
    else if (arg === '--proto') opts.proto = value();
    else throw new Fatal(`unknown argument ${JSON.stringify(arg)}`, 2);
  }
  if (!opts.target) throw new Fatal('--target HOST:PORT is required', 2);
  if (opts.plaintext === (opts.ca !== null)) {
    throw new Fatal('give exactly one of --ca CA.pem (TLS) or --plaintext', 2);
  }
  if (!(opts.timeout > 0)) throw new Fatal('--timeout must be a positive number of seconds', 2);
  return opts;
}

function credentials(opts) {
  if (opts.plaintext) return grpc.credentials.createInsecure();
  let ca;
  try {
    ca = fs.readFileSync(opts.ca);
  } catch (err) {
    throw new Fatal(`cannot read the CA file ${opts.ca}: ${err.message}`, 2);
  }
  return grpc.credentials.createSsl(ca);
}

function loadService(protoPath) {
  // keepCase: the proto's own field names; longs as strings: uint64 without rounding;
  // defaults: proto3 omits zero fields on the wire, the decoded record still has them.
  const def = protoLoader.loadSync(protoPath, {
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(def).lootlab.v1.LootService;
}

function readQueries() {
  let queries;
  try {
    queries = JSON.parse(fs.readFileSync(0, 'utf8'));
  } catch (err) {
    throw new Fatal(`stdin is not JSON: ${err.message}`, 2);
  }
  if (!Array.isArray(queries)) throw new Fatal('stdin must be a JSON list of queries', 2);
  queries.forEach((q, i) => {
    if (!q || !METHODS.includes(q.method)) {
      throw new Fatal(`query ${i}: method must be one of ${METHODS.join(', ')}`, 2);
    }
  });
  return queries;
}

function repeatedRows(records) {
  return records.map((r) => FIELDS.map((f) => r[f]));
}

function packedRows(buf) {
  // The layout documented at Records.packed in loot.proto.
  if (buf.length % RECORD_BYTES !== 0) {
    throw new Fatal(`packed answer of ${buf.length} bytes is not a whole number of ` +
                    `${RECORD_BYTES}-byte records`, 4);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const rows = [];
  for (let off = 0; off < buf.length; off += RECORD_BYTES) {
    const k = view.getBigUint64(off, true);
    rows.push([
      Number(BigInt.asIntN(26, k >> 38n)),
      Number(BigInt.asIntN(12, k)),
      Number(BigInt.asIntN(26, k >> 12n)),
      view.getUint32(off + 8, true),
      view.getUint32(off + 12, true),
      view.getUint16(off + 16, true),
      view.getUint8(off + 18),
      view.getUint8(off + 19),
      view.getUint32(off + 20, true),
    ]);
  }
  return rows;
}

function call(client, method, request, timeoutSeconds) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + timeoutSeconds * 1000);
    client[method](request, { deadline }, (err, resp) => resolve({ err, resp }));
  });
}

function reason(details) {
  // grpc-js ends the text with an empty "Resolution note: " when there is none.
  return String(details).replace(/\.? Resolution note: *$/, '');
}

function describeMode(opts) {
  return opts.plaintext ? 'plaintext' : `TLS (CA ${opts.ca})`;
}

async function run(opts, queries) {
  const Service = loadService(opts.proto);
  const client = new Service(opts.target, credentials(opts));
  const answers = [];
  try {
    for (const [i, q] of queries.entries()) {
      const { err, resp } = await call(client, q.method, q.request || {}, opts.timeout);
      if (err) {
        if (err.code === grpc.status.UNAVAILABLE) {
          throw new Fatal(`cannot reach ${opts.target} over ${describeMode(opts)} ` +
                          `(query ${i}, ${q.method}): ${reason(err.details)}`, 3);
        }
        answers.push({ ok: false, code: grpc.status[err.code], details: err.details });
      } else if (q.method === 'ServerStats') {
        answers.push({ ok: true, stats: resp });   // 64-bit integers as strings
      } else {
        answers.push({
          ok: true,
          generation: String(resp.generation),
          records: repeatedRows(resp.records),
          packed: packedRows(resp.packed),
          packed_bytes: resp.packed.length,
        });
      }
    }
  } finally {
    client.close();
  }
  return { fields: FIELDS, answers };
}

async function main() {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const out = await run(opts, readQueries());
    process.stdout.write(JSON.stringify(out) + '\n');
  } catch (err) {
    if (!(err instanceof Fatal)) throw err;
    process.stderr.write(`lootlab interop client: ${err.message}\n`);
    process.exitCode = err.exitCode;
  }
}

main();
