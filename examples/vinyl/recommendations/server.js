// Recommendations, in Node.js with @grpc/grpc-js: serves vinyl.Recommendations from the same
// .proto files as the Python services, and calls the (Python) Catalog back.
// The reckon runtime starts it with RECKON_SVC_PORT (where to serve; 0:
// any free port, reported in RECKON_SVC_PORT_FILE) and RECKON_SVC_ADDR_CATALOG
// (where the Catalog answers), and probes it with grpc.health.v1.Health/Check.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protos = path.join(__dirname, '..', 'protos');
const definition = protoLoader.loadSync(
  ['vinyl/catalog.proto', 'vinyl/recommendations.proto'],
  { includeDirs: [protos], keepCase: true, defaults: true, longs: Number },
);
const vinyl = grpc.loadPackageDefinition(definition).vinyl;
const catalog = new vinyl.Catalog(process.env.RECKON_SVC_ADDR_CATALOG, grpc.credentials.createInsecure());

function call(method, request, metadata) {
  return new Promise((resolve, reject) => {
    catalog[method](request, metadata, { deadline: Date.now() + 10000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function recommend(call_, callback) {
  const md = new grpc.Metadata();
  const auth = call_.metadata.get('authorization');
  if (auth.length > 0) md.set('authorization', auth[0]);
  try {
    const record = await call('GetRecord', { id: call_.request.id }, md);
    const same = await call('ListRecords', { genre: record.genre }, md);
    const records = same.records.filter((r) => r.id !== record.id).slice(0, 3);
    callback(null, { records });
  } catch (err) {
    callback({ code: err.code || grpc.status.INTERNAL, details: `recommendations: ${err.details || err.message}` });
  }
}

const identity = (b) => b;
const health = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const server = new grpc.Server();
server.addService(vinyl.Recommendations.service, { Recommend: recommend });
server.addService(health, { Check: (c, cb) => cb(null, Buffer.from([8, 1])) }); // SERVING
const port = process.env.RECKON_SVC_PORT;
// Port 0 means any free one: the runtime learns which from RECKON_SVC_PORT_FILE.
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    console.error(`recommendations: cannot bind 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  const report = process.env.RECKON_SVC_PORT_FILE;
  if (report) {
    fs.writeFileSync(`${report}.tmp`, JSON.stringify({ port: bound }));
    fs.renameSync(`${report}.tmp`, report); // whole or absent for the runtime
  }
});

function stop() {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
