// urql (@urql/core) against taskchat: a mutation and a query over fetchExchange, and a
// streamed turn over subscriptionExchange + graphql-ws.
//   node urql.mjs <server-url> <token>   (a token for a user with no tasks yet)
import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { pipe, subscribe } from 'wonka';
import { requireToken, serverArgs } from './args.mjs';

const { httpUrl, wsUrl, token: maybeToken } = serverArgs();
const token = requireToken(maybeToken);
const authorization = `Bearer ${token}`;

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

const ws = createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization }, retryAttempts: 0 });
const client = new Client({
  url: httpUrl,
  fetchOptions: { headers: { authorization } },
  exchanges: [
    cacheExchange,
    fetchExchange,
    subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }),
      }),
    }),
  ],
});

const created = await client
  .mutation(gql`mutation ($title: String!) { createTask(input: { title: $title }) { task { id title } } }`, { title: 'water the plants' })
  .toPromise();
if (created.error) fail(`mutation: ${created.error.message}`);
const listed = await client.query(gql`{ tasks { totalCount edges { node { id title } } } }`, {}).toPromise();
if (listed.error) fail(`query: ${listed.error.message}`);
const titles = listed.data.tasks.edges.map((edge) => edge.node.title);
console.log(`tasks: ${JSON.stringify(titles)}`);
if (!titles.includes('water the plants')) fail('the created task is not listed');
console.log('ok: mutation and query');

const events = await new Promise((resolve, reject) => {
  const seen = [];
  pipe(
    client.subscription(gql`subscription ($content: String!) {
      sendMessageStream(input: { content: $content }) {
        __typename
        ... on ReplyDelta { text }
        ... on ReplyCompleted { message { content } }
      }
    }`, { content: 'list my tasks' }),
    subscribe((result) => {
      if (result.error) return reject(result.error);
      seen.push(result.data.sendMessageStream);
      if (result.data.sendMessageStream.__typename === 'ReplyCompleted') resolve(seen);
    }),
  );
});
const text = events.filter((event) => event.__typename === 'ReplyDelta').map((event) => event.text).join('');
console.log(`streamed: ${JSON.stringify(text)}`);
if (text !== events.at(-1).message.content || !text.includes('water the plants')) fail('the streamed reply does not list the task');
console.log('ok: subscription over graphql-ws');
await ws.dispose();
process.exit(0);
