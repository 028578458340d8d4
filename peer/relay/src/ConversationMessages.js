import { graphql } from 'relay-runtime';

export const messages = graphql`
  fragment ConversationMessages_conversation on Conversation
  @refetchable(queryName: "ConversationMessagesPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
    title
    messageCount
    messages(first: $count, after: $cursor) @connection(key: "ConversationMessages_messages") {
      edges {
        node {
          id
          role
          content
        }
      }
    }
  }
`;
