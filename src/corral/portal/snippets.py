"""Copy-paste snippets for calling a model: curl, the Python OpenAI SDK and JavaScript."""

from __future__ import annotations

import json
from typing import Any

KEY_VARIABLE = "CORRAL_API_KEY"


def snippets(base_url: str, model: str, task: str = "chat") -> dict[str, str]:
    """Snippets that call ``model`` at ``base_url``; the key comes from $CORRAL_API_KEY.
    An embeddings model gets /embeddings calls (a chat call to it would be refused)."""
    quoted = json.dumps(model)
    if task == "embeddings":
        body: dict[str, Any] = {"model": model, "input": ["a cat", "a dog"]}
        return {
            "curl": _curl(base_url, "/embeddings", body),
            "python": _python_client(base_url)
            + f'vectors = client.embeddings.create(model={quoted}, input=["a cat", "a dog"])\n'
            "print(len(vectors.data[0].embedding))",
            "javascript": _javascript_client(base_url)
            + "const vectors = await client.embeddings.create({\n"
            f"  model: {quoted},\n"
            '  input: ["a cat", "a dog"],\n'
            "});\n"
            "console.log(vectors.data[0].embedding.length);",
        }
    body = {"model": model, "messages": [{"role": "user", "content": "Hello!"}]}
    return {
        "curl": _curl(base_url, "/chat/completions", body),
        "python": _python_client(base_url) + "reply = client.chat.completions.create(\n"
        f"    model={quoted},\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)",
        "javascript": _javascript_client(base_url)
        + "const reply = await client.chat.completions.create({\n"
        f"  model: {quoted},\n"
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(reply.choices[0].message.content);",
    }


def _curl(base_url: str, path: str, body: dict[str, Any]) -> str:
    shell_body = json.dumps(body).replace("'", "'\\''")
    return (
        f"curl {base_url}{path} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{shell_body}'"
    )


def _python_client(base_url: str) -> str:
    return (
        "import os\n"
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}", api_key=os.environ["{KEY_VARIABLE}"])\n'
    )


def _javascript_client(base_url: str) -> str:
    return (
        'import OpenAI from "openai";\n\n'
        "const client = new OpenAI({\n"
        f'  baseURL: "{base_url}",\n'
        f"  apiKey: process.env.{KEY_VARIABLE},\n"
        "});\n"
    )
