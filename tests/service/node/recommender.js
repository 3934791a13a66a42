// The Recommender service of rtest.proto, in Node.js with @grpc/grpc-js.
// The reckon runtime starts it with RECKON_SVC_PORT (where to serve; 0:
// any free port, reported in RECKON_SVC_PORT_FILE) and RECKON_SVC_ADDR_CATALOG
// (where the Catalog it requires answers); it calls Catalog back for every recommendation,
// forwarding the caller's credentials, and answers grpc.health.v1 so the supervisor can probe it.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protoFile = process.env.RTEST_PROTO || path.join(__dirname, '..', 'protos', 'rtest.proto');
const definition = protoLoader.loadSync(protoFile, { keepCase: true, defaults: true });
const rtest = grpc.loadPackageDefinition(definition).rtest;

const catalog = new rtest.Catalog(process.env.RECKON_SVC_ADDR_CATALOG, grpc.credentials.createInsecure());

function recommend(call, callback) {
  const md = new grpc.Metadata();
  const auth = call.metadata.get('authorization');
  if (auth.length > 0) md.set('authorization', auth[0]);
  const pick = call.request.id === 'a' ? 'b' : 'a';
  catalog.Get({ id: pick }, md, { deadline: Date.now() + 10000 }, (err, item) => {
    if (err) {
      callback({ code: err.code, details: `catalog failed: ${err.details}` });
      return;
    }
    callback(null, { id: item.id, title: `node recommends ${item.title}`, count: item.count, tags: ['node'] });
  });
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
server.addService(rtest.Recommender.service, { Recommend: recommend });
server.addService(health, { Check: (call, cb) => cb(null, Buffer.from([8, 1])) });
const port = process.env.RECKON_SVC_PORT;
// Port 0 means any free one: the runtime learns which from RECKON_SVC_PORT_FILE.
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    console.error(`recommender: cannot bind 127.0.0.1:${port}: ${err.message}`);
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
