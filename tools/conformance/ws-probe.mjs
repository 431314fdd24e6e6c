// graphql-transport-ws against a live cadt-gateway: close codes from raw frames (npm `ws`),
// ping/pong, the refused legacy subprotocol, and interop with the reference `graphql-ws` client.
// URL: ws://host:port/graphql; API_KEY: sent in connection_init when set (4403 is probed only
// then); the server's CADT_WS_CONNECTION_INIT_TIMEOUT_SECONDS should be about 1 s (4408).
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';

const url = process.env.URL;
if (!url) throw new Error('set URL to the ws:// /graphql endpoint');
const apiKey = process.env.API_KEY;
const initPayload = apiKey ? { apiKey } : {};
const PROTOCOL = 'graphql-transport-ws';
const DEADLINE_MS = 10_000;
const LONG_SUBSCRIPTION = 'subscription { operationProgress { kind } }';

/** Open a raw socket, run `steps(send, next)`, resolve with what happened. */
function raw(steps, protocols = [PROTOCOL]) {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, protocols);
    const messages = [];
    const waiters = [];
    const timer = setTimeout(() => finish({ timeout: true }), DEADLINE_MS);
    let done = false;
    function finish(outcome) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.terminate();
      resolve({ messages, ...outcome });
    }
    const send = (message) => socket.send(JSON.stringify(message));
    const next = () =>
      new Promise((res) => (messages.length ? res(messages.shift()) : waiters.push(res)));
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      const waiter = waiters.shift();
      waiter ? waiter(message) : messages.push(message);
    });
    socket.on('open', () => steps(send, next).catch((error) => finish({ error: String(error) })));
    socket.on('close', (code, reason) => finish({ code, reason: String(reason) }));
    socket.on('error', (error) => finish({ error: String(error.message ?? error) }));
  });
}

async function init(send, next) {
  send({ type: 'connection_init', payload: initPayload });
  const ack = await next();
  if (ack.type !== 'connection_ack') throw new Error(`expected connection_ack, got ${JSON.stringify(ack)}`);
}

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok, detail });
  console.log(`${ok ? 'ok    ' : 'FAIL  '} ${name}${ok ? '' : `: ${JSON.stringify(detail)}`}`);
}

let r = await raw(async (send) => send({ id: '1', type: 'subscribe', payload: { query: '{ __typename }' } }));
check('4401 subscribe before connection_ack', r.code === 4401, r);

r = await raw(async (send, next) => {
  await init(send, next);
  send({ type: 'connection_init', payload: initPayload });
});
check('4429 second connection_init', r.code === 4429, r);

r = await raw(async (send, next) => {
  await init(send, next);
  send({ id: 'dup', type: 'subscribe', payload: { query: LONG_SUBSCRIPTION } });
  send({ id: 'dup', type: 'subscribe', payload: { query: LONG_SUBSCRIPTION } });
});
check('4409 duplicate subscriber id', r.code === 4409, r);

r = await raw(async (send, next) => {
  await init(send, next);
  send({ type: 'no-such-type' });
});
check('4400 unknown message type', r.code === 4400, r);

r = await raw(async (send) => {});
check('4408 no connection_init in time', r.code === 4408, r);

if (apiKey) {
  r = await raw(async (send) => send({ type: 'connection_init', payload: { apiKey: 'wrong' } }));
  check('4403 wrong API key in connection_init', r.code === 4403, r);
} else {
  console.log('skip   4403 (the server has no API key)');
}

r = await raw(async (send, next) => {
  send({ type: 'ping' });
  const before = await next();
  await init(send, next);
  send({ type: 'ping', payload: { n: 1 } });
  let after = await next();
  while (after.type === 'ping') after = await next(); // server keep-alive pings
  throw new Error(JSON.stringify({ before: before.type, after: after.type }));
});
check(
  'ping -> pong (before and after the ack)',
  (r.error ?? '').endsWith(JSON.stringify({ before: 'pong', after: 'pong' })),
  r,
);

r = await raw(async () => {}, ['graphql-ws']);
check(
  'legacy graphql-ws subprotocol refused',
  r.code === 4406 || /subprotocol/i.test(r.error ?? ''),
  r,
);

// Interop with the reference client: a query and a subscription over one socket.
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: true,
  retryAttempts: 0,
  connectionParams: initPayload,
});
try {
  const query = client.iterate({ query: '{ __typename }' });
  const { value: first } = await query.next();
  check('graphql-ws client: query', first?.data?.__typename === 'Query', first);
  const subscription = client.iterate({ query: 'subscription { creationStatus { inProgress } }' });
  const { value: snapshot } = await subscription.next();
  check(
    'graphql-ws client: subscription snapshot',
    typeof snapshot?.data?.creationStatus?.inProgress === 'boolean',
    snapshot,
  );
  await subscription.return();
  const bad = client.iterate({ query: '{ nope }' });
  let rejected;
  try {
    await bad.next();
  } catch (errors) {
    rejected = errors;
  }
  check('graphql-ws client: validation errors reach the client', Array.isArray(rejected) && rejected.length > 0, rejected);
} catch (error) {
  check('graphql-ws client interop', false, String(error));
} finally {
  await client.dispose();
}

const failed = checks.filter((c) => !c.ok);
console.log(`graphql-transport-ws probe: ${checks.length} checks, ${checks.length - failed.length} ok, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
