"""Security headers: `nosniff` on every response; a strict CSP and no framing on HTML
(the only HTML is GraphiQL's page, whose scripts and styles all come from this server)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: GraphiQL renders inline style attributes (React), hence 'unsafe-inline' for styles
#: only; scripts come from this origin alone
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


NOSNIFF = (b"x-content-type-options", b"nosniff")


def cors_options(allowed_origins: list[str]) -> dict[str, Any]:
    """CORSMiddleware's settings: bearer tokens, not cookies, so no credentials mode."""
    return {
        "allow_origins": allowed_origins,
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["Authorization", "Content-Type", "Accept", "X-Request-ID"],
        "expose_headers": ["X-Request-ID"],
        "max_age": 600,
    }


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append(NOSNIFF)
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", HTML_CSP.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                    headers.append((b"referrer-policy", b"no-referrer"))
            await send(message)

        await self.app(scope, receive, send_with_headers)
