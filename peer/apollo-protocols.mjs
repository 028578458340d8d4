// Apollo Client's transports against taskchat: automatic persisted queries over HttpLink,
// a subscription over multipart HTTP (HttpLink), and one over graphql-ws (GraphQLWsLink).
//   node apollo-protocols.mjs <server-url> <token>
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { requireToken, serverArgs } from './args.mjs';

const { httpUrl, wsUrl, token: maybeToken } = serverArgs();
const token = requireToken(maybeToken);
const headers = { authorization: `Bearer ${token}` };

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

// --- automatic persisted queries ---
const sent = [];
const recordingFetch = (url, init) => {
  sent.push(init.body ? JSON.parse(init.body) : { get: String(url) });
  return fetch(url, init);
};
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const apq = new ApolloClient({
  link: ApolloLink.from([
    new PersistedQueryLink({ sha256 }),
    new HttpLink({ uri: httpUrl, headers, fetch: recordingFetch }),
  ]),
  cache: new InMemoryCache(),
});
// a document this server has not seen yet
const ME = gql(`query PersistedMe${Date.now().toString(36)} { me { id } }`);
const first = await apq.query({ query: ME, fetchPolicy: 'network-only' });
const second = await apq.query({ query: ME, fetchPolicy: 'network-only' });
if (!first.data?.me?.id || second.data?.me?.id !== first.data.me.id) fail(`APQ results: ${JSON.stringify([first, second])}`);
const shapes = sent.map((body) => (body.query ? 'hash+document' : 'hash'));
console.log(`APQ requests: ${JSON.stringify(shapes)}`);
if (JSON.stringify(shapes) !== JSON.stringify(['hash', 'hash+document', 'hash'])) {
  fail('expected a miss, a registration, then a hit by hash alone');
}
console.log('ok: automatic persisted queries');

// --- subscriptions: multipart HTTP and graphql-ws ---
const STREAM = gql`
  subscription Stream($content: String!) {
    sendMessageStream(input: { content: $content }) {
      __typename
      ... on ReplyDelta { text }
      ... on ReplyCompleted { message { id content } }
    }
  }
`;

function streamTurn(client, content) {
  return new Promise((resolve, reject) => {
    const events = [];
    client.subscribe({ query: STREAM, variables: { content } }).subscribe({
      next: (result) => {
        if (result.error) reject(result.error);
        else events.push(result.data.sendMessageStream);
      },
      error: reject,
      complete: () => resolve(events),
    });
  });
}

function checkTurn(label, events, task) {
  const kinds = events.map((event) => event.__typename);
  const text = events.filter((event) => event.__typename === 'ReplyDelta').map((event) => event.text).join('');
  const last = events.at(-1);
  console.log(`${label}: ${kinds.length} events, ${JSON.stringify(text)}`);
  if (kinds[0] !== 'UserMessageSaved' || last?.__typename !== 'ReplyCompleted') fail(`${label}: ${JSON.stringify(kinds)}`);
  if (text !== last.message.content || !text.includes(task)) fail(`${label}: deltas ${JSON.stringify(text)} vs ${JSON.stringify(last.message.content)}`);
}

const multipart = new ApolloClient({ link: new HttpLink({ uri: httpUrl, headers }), cache: new InMemoryCache() });
checkTurn('multipart HTTP', await streamTurn(multipart, 'add a task to buy milk'), 'buy milk');
console.log('ok: subscription over multipart HTTP');

const wsClient = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: headers, retryAttempts: 0 });
const overWs = new ApolloClient({ link: new GraphQLWsLink(wsClient), cache: new InMemoryCache() });
checkTurn('graphql-ws', await streamTurn(overWs, 'add a task to buy bread'), 'buy bread');
await wsClient.dispose();
console.log('ok: subscription over graphql-ws');
process.exit(0);
