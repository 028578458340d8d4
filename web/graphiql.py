"""GraphiQL in development, served with its assets from this server (no CDN): it works
offline and behind a firewall. The assets are vendored by `scripts/vendor-graphiql.sh`."""

from __future__ import annotations

from pathlib import Path

import orjson

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = "/static"

#: the README's example operations, one GraphiQL tab each
EXAMPLE_TABS: list[dict[str, str]] = [
    {
        "query": """# Ctrl-Enter runs the operation. The demo token is in the Headers pane.
mutation SendMessage {
  sendMessage(input: {content: "add a task to buy milk"}) {
    conversation { id title }
    message { content toolCalls { name arguments result ok } }
  }
}""",
    },
    {
        "query": """mutation MarkDone($c: ID!) {
  sendMessage(input: {conversationId: $c, content: "mark buy milk as done"}) {
    message { content }
  }
}""",
        "variables": '{"c": "<conversation id from SendMessage>"}',
    },
    {
        "query": """query Conversations {
  conversations(first: 10) {
    edges { node { id title messageCount lastMessage { role content } } }
  }
}""",
    },
    {
        "query": """query CompletedTasks {
  tasks(status: COMPLETED) { totalCount edges { node { title completedAt } } }
}""",
    },
    {
        "query": """subscription Stream {
  sendMessageStream(input: {content: "list my tasks"}) {
    __typename
    ... on UserMessageSaved { message { id } }
    ... on ReplyDelta { text }
    ... on ToolCallCompleted { toolCall { name ok } }
    ... on ReplyCompleted { message { id content } }
  }
}""",
    },
    {
        "query": """subscription MessageAdded($c: ID!) {
  messageAdded(conversationId: $c) { id role content }
}""",
        "variables": '{"c": "<conversation id>"}',
    },
]

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>taskchat GraphiQL</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="{static}/graphiql/graphiql.min.css" />
    <link rel="stylesheet" href="{static}/graphiql/plugin-explorer.css" />
    <link rel="stylesheet" href="{static}/graphiql-page.css" />
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script id="taskchat-graphiql-config" type="application/json">{config}</script>
    <script src="{static}/graphiql/react.production.min.js"></script>
    <script src="{static}/graphiql/react-dom.production.min.js"></script>
    <script src="{static}/graphiql/graphiql.min.js"></script>
    <script src="{static}/graphiql/plugin-explorer.umd.js"></script>
    <script src="{static}/graphiql-page.js"></script>
  </body>
</html>
"""


def graphiql_html(demo_token: str | None) -> str:
    """The page; its script reads the configuration from a JSON block (no inline code,
    so the page's CSP can forbid inline scripts)."""
    bearer = f"Bearer {demo_token}" if demo_token else "Bearer <token from `main.py token`>"
    config = {
        "headers": orjson.dumps({"Authorization": bearer}, option=orjson.OPT_INDENT_2).decode(),
        "tabs": EXAMPLE_TABS,
    }
    # `<` escaped: nothing in the data can close the script element
    encoded = orjson.dumps(config).decode().replace("<", "\\u003c")
    return _PAGE.replace("{static}", STATIC_PATH).replace("{config}", encoded)
