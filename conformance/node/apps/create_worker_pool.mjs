// An app written for Google Cloud, run unchanged: a WorkerPoolsClient with no options (no
// endpoint, no transport, no credentials), so Application Default Credentials and the
// client's default transport, gRPC to run.googleapis.com:443 over TLS. Where it goes is the
// environment's business (`eval "$(runpool env)"`). It creates worker pool ID under PARENT
// through the long-running operation and prints, as one JSON line, what it saw.
import {v2} from '@google-cloud/run';

const [parent, id] = process.argv.slice(2);
const client = new v2.WorkerPoolsClient();
try {
  const [operation] = await client.createWorkerPool({
    parent,
    workerPoolId: id,
    workerPool: {
      template: {containers: [{image: 'us-docker.pkg.dev/cloudrun/container/worker-pool:latest', command: ['sleep', '3600']}]},
      scaling: {manualInstanceCount: 1},
    },
  });
  const [pool] = await operation.promise();
  const [got] = await client.getWorkerPool({name: pool.name});
  const [listed] = await client.listWorkerPools({parent});
  console.log(JSON.stringify({
    operation: {name: operation.name, done: operation.done},
    pool: {name: pool.name, uid: pool.uid, generation: String(pool.generation),
           latestCreatedRevision: pool.latestCreatedRevision,
           serviceAccount: pool.template.serviceAccount},
    got: {name: got.name, etag: got.etag},
    listed: listed.map(p => p.name),
  }));
} catch (e) {
  // google-gax decodes grpc-status-details-bin into reason, domain and errorInfoMetadata.
  console.log(JSON.stringify({error: {code: e.code, details: e.details, reason: e.reason,
                                      domain: e.domain, metadata: e.errorInfoMetadata}}));
}
