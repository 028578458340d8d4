"""The committed SDL matches the live schema; development settings behave as documented."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings
from schema.schema import print_sdl

ROOT = Path(__file__).resolve().parent.parent


def test_committed_sdl_matches_the_live_schema() -> None:
    committed = (ROOT / "schema" / "schema.graphql").read_text()
    assert committed == print_sdl(), (
        "schema/schema.graphql is stale: run 'python main.py schema > schema/schema.graphql'"
    )


@pytest.mark.parametrize(
    "contract_line",
    [
        "sendMessage(input: SendMessageInput!): SendMessagePayload!",
        "messageAdded(\n    conversationId: ID!",
        "sendMessageStream(input: SendMessageInput!): ReplyEvent!",
        "union ReplyEvent = UserMessageSaved | ReplyStarted | ReplyDelta | ToolCallCompleted"
        " | ReplyCompleted",
        "replyStream(messageId: ID!, afterSequence: Int",
        "stopReply(input: StopReplyInput!): StopReplyPayload!",
        "conversationEvents(after: String",
        "union ConversationEvent = ConversationUpserted | ConversationDeleted",
        "onBusy: BusyPolicy = QUEUE",
        "activeReply: Message",
        "status: MessageStatus!",
        "interface Node",
        "totalCount: Int!",
    ],
)
def test_sdl_carries_the_contracts_names(contract_line: str) -> None:
    assert contract_line in print_sdl()


def test_development_secret_is_generated_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    first = Settings(_env_file=None, environment="development").signing_secret  # type: ignore[call-arg]
    second = Settings(_env_file=None, environment="development").signing_secret  # type: ignore[call-arg]
    assert first == second
    assert len(first.encode()) >= 32
    secret_file = tmp_path / ".taskchat-dev-secret"
    assert secret_file.read_text().strip() == first
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600


def test_agent_provider_defaults_to_groq_only_with_a_key() -> None:
    assert Settings(_env_file=None, groq_api_key=None).resolved_agent_provider == "offline"  # type: ignore[call-arg]
    assert Settings(_env_file=None, groq_api_key="k").resolved_agent_provider == "groq"  # type: ignore[call-arg]


def test_token_command_refuses_to_sign_in_jwks_mode(tmp_path: Path) -> None:
    """With a JWKS the issuer signs tokens; a locally signed one would be refused."""
    env = {"PATH": os.environ.get("PATH", ""), "JWKS_URL": "http://127.0.0.1:9/jwks.json"}
    finished = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "token", "alice"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "JWKS_URL" in finished.stderr
    assert finished.stdout == ""
