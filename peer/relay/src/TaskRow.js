import { graphql } from 'relay-runtime';

export const task = graphql`
  fragment TaskRow_task on Task @refetchable(queryName: "TaskRowRefetchQuery") {
    id
    title
    status
    completedAt
  }
`;
