// Relay fragments compiled by tests/peer/test_clients.py with relay-compiler against
// schema/schema.graphql: a paginated @connection, @refetchable on Query and on a Node.
import { graphql } from 'relay-runtime';

export const query = graphql`
  query TasksListQuery($status: TaskStatus) {
    ...TasksList_query @arguments(status: $status)
  }
`;

export const list = graphql`
  fragment TasksList_query on Query
  @refetchable(queryName: "TasksListPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int", defaultValue: 2 }
    after: { type: "String" }
    status: { type: "TaskStatus" }
  ) {
    tasks(first: $first, after: $after, status: $status)
      @connection(key: "TasksList_tasks", filters: ["status"]) {
      totalCount
      edges {
        node {
          id
          ...TaskRow_task
        }
      }
    }
  }
`;
