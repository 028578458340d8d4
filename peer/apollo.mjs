// Apollo Client (no React) against taskchat: cursor pagination merged by the cache with
// relayStylePagination. Creates 5 tasks, pages through them 2 at a time with fetchMore,
// and checks that the merged list holds all 5, newest first.
//   node apollo.mjs <server-url> <token>   (a token for a user with no tasks yet)
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { relayStylePagination } from '@apollo/client/utilities';
import { requireToken, serverArgs } from './args.mjs';

const { httpUrl, token: maybeToken } = serverArgs();
const token = requireToken(maybeToken);

const client = new ApolloClient({
  link: new HttpLink({ uri: httpUrl, headers: { authorization: `Bearer ${token}` } }),
  cache: new InMemoryCache({
    typePolicies: { Query: { fields: { tasks: relayStylePagination(['status']) } } },
  }),
});

const CREATE_TASK = gql`
  mutation CreateTask($title: String!) {
    createTask(input: { title: $title }) { task { id title } }
  }
`;
const TASKS = gql`
  query Tasks($first: Int!, $after: String) {
    tasks(first: $first, after: $after) {
      edges { cursor node { id title status } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

const run = Date.now().toString(36);
const created = [];
for (let n = 1; n <= 5; n += 1) {
  const { data } = await client.mutate({ mutation: CREATE_TASK, variables: { title: `task ${n} ${run}` } });
  created.push(data.createTask.task);
}
const newestFirst = created.map((task) => task.title).reverse();

const query = client.watchQuery({ query: TASKS, variables: { first: 2 } });
let firstPage;
const firstResult = new Promise((resolve) => {
  firstPage = resolve;
});
const subscription = query.subscribe({
  next: (result) => {
    if (result.error) fail(`query error: ${result.error.message}`);
    if (result.dataState === 'complete') firstPage(result.data);
  },
  error: (error) => fail(`watchQuery error: ${error.message}`),
});

let data = await firstResult;
if (data.tasks.edges.length !== 2) fail(`the first page has ${data.tasks.edges.length} tasks`);
for (let round = 0; round < 2; round += 1) {
  const { endCursor, hasNextPage } = data.tasks.pageInfo;
  if (!hasNextPage) fail(`expected another page after ${data.tasks.edges.length} tasks`);
  await query.fetchMore({ variables: { after: endCursor } });
  data = client.readQuery({ query: TASKS, variables: { first: 2 } });
}
subscription.unsubscribe();

const titles = data.tasks.edges.map((edge) => edge.node.title);
console.log(`cache-merged tasks: ${JSON.stringify(titles)}`);
console.log(`hasNextPage after the last page: ${data.tasks.pageInfo.hasNextPage}`);
if (JSON.stringify(titles) !== JSON.stringify(newestFirst)) {
  fail(`expected ${JSON.stringify(newestFirst)}`);
}
if (data.tasks.pageInfo.hasNextPage) fail('the last page still reports hasNextPage');
console.log('ok: all 5 tasks merged newest first');
process.exit(0);
