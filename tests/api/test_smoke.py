from tests.conftest import GraphQLClient


async def test_me_is_created_on_first_sight(alice: GraphQLClient) -> None:
    first = await alice.data("{ me { id createdAt } }")
    second = await alice.data("{ me { id createdAt } }")
    assert first == second
    assert first["me"]["createdAt"].endswith("+00:00")
