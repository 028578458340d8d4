// graphql-ws against taskchat: subscribe to messageAdded, send a message over HTTP,
// and exit 0 once both the question and the reply arrived over the socket.
//   node subscribe.mjs <server-url> <token> <conversation-id>
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { graphql, requireToken, serverArgs } from './args.mjs';

const { httpUrl, wsUrl, token: maybeToken, rest } = serverArgs();
const token = requireToken(maybeToken);
const conversationId = rest[0] ?? process.env.TASKCHAT_CONVERSATION_ID;
if (!conversationId) {
  console.error('a conversation id is required');
  process.exit(2);
}

const MESSAGE_ADDED = `subscription ($conversationId: ID!) {
  messageAdded(conversationId: $conversationId) { id role content }
}`;
const SEND_MESSAGE = `mutation ($input: SendMessageInput!) {
  sendMessage(input: $input) { userMessage { id } message { id } }
}`;

const received = new Map(); // message id -> message
const waiters = new Set();
function arrived(ids) {
  return ids.every((id) => received.has(id));
}
function waitFor(ids, ms) {
  return new Promise((resolve) => {
    if (arrived(ids)) return resolve(true);
    const waiter = () => {
      if (!arrived(ids)) return;
      clearTimeout(timer);
      waiters.delete(waiter);
      resolve(true);
    };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      resolve(false);
    }, ms);
    waiters.add(waiter);
  });
}

const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
});

let failed = null;
const unsubscribe = client.subscribe(
  { query: MESSAGE_ADDED, variables: { conversationId } },
  {
    next: (result) => {
      if (result.errors) {
        failed = new Error(`subscription errors: ${JSON.stringify(result.errors)}`);
        return;
      }
      const message = result.data.messageAdded;
      console.log(`received ${message.role} ${message.id}: ${JSON.stringify(message.content)}`);
      received.set(message.id, message);
      for (const waiter of [...waiters]) waiter();
    },
    error: (error) => {
      failed = error instanceof Error ? error : new Error(JSON.stringify(error));
    },
    complete: () => {},
  },
);

async function send(content) {
  const data = await graphql(httpUrl, token, SEND_MESSAGE, { input: { conversationId, content } });
  return [data.sendMessage.userMessage.id, data.sendMessage.message.id];
}

let code = 1;
try {
  // graphql-transport-ws does not acknowledge a subscribe: warm up until a reply arrives,
  // so that the measured message is surely sent to a listening subscription
  let live = false;
  for (let attempt = 0; attempt < 5 && !live && !failed; attempt += 1) {
    const [, replyId] = await send(`warm-up ${attempt}`);
    live = await waitFor([replyId], 1000);
  }
  if (failed) throw failed;
  if (!live) throw new Error('the subscription never delivered a warm-up reply');

  const ids = await send('add a task to buy milk');
  if (await waitFor(ids, 5000)) {
    const [question, reply] = ids.map((id) => received.get(id));
    if (question.role !== 'USER' || question.content !== 'add a task to buy milk' || reply.role !== 'ASSISTANT') {
      throw new Error(`unexpected messages: ${JSON.stringify([question, reply])}`);
    }
    console.log('ok: both messages of the turn arrived');
    code = 0;
  } else {
    throw failed ?? new Error(`timed out waiting for ${ids.join(', ')}`);
  }
} catch (error) {
  console.error(`FAILED: ${error.message}`);
} finally {
  unsubscribe();
  await client.dispose();
}
process.exit(code);
