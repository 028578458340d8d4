from tests.api.test_statement_counts import *  # noqa
async def test_probe(server_factory, backend):
    live, client = await fresh_client(server_factory)
    turn = None
    tids=[]; mids=[]
    for i in range(4):
        d = await client.data(SEND, {"conversationId": turn, "content": f"add task: t{i}"})
        turn = d["sendMessage"]["conversation"]["id"]
    d = await client.data("{ tasks { edges { node { id } } } }")
    tids=[e["node"]["id"] for e in d["tasks"]["edges"]]
    d = await client.data("query($id: ID!) { conversation(id: $id) { messages { edges { node { id } } } } }", {"id": turn})
    mids=[e["node"]["id"] for e in d["conversation"]["messages"]["edges"]]
    for name, ids in (("Task", tids), ("Message", mids)):
        for size in (2, 4):
            c, _ = await measure(live, client, aliased_nodes(size, ""), {f"id{i}": ids[i] for i in range(size)})
            print(backend, name, size, c)
