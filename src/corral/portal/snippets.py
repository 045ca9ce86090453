"""Copy-paste snippets for calling a model: curl, the Python OpenAI SDK and JavaScript."""

from __future__ import annotations

import json

KEY_VARIABLE = "CORRAL_API_KEY"


def snippets(base_url: str, model: str, task: str = "chat") -> dict[str, str]:
    """Snippets that call ``model`` at ``base_url``; the key comes from $CORRAL_API_KEY.
    An embeddings model gets /embeddings calls (a chat call to it would be refused)."""
    if task == "embeddings":
        return _embedding_snippets(base_url, model)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    shell_body = body.replace("'", "'\\''")
    py_model, js_model = json.dumps(model), json.dumps(model)
    return {
        "curl": (
            f"curl {base_url}/chat/completions \\\n"
            f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
            '  -H "Content-Type: application/json" \\\n'
            f"  -d '{shell_body}'"
        ),
        "python": (
            "import os\n"
            "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{base_url}", api_key=os.environ["{KEY_VARIABLE}"])\n'
            "reply = client.chat.completions.create(\n"
            f"    model={py_model},\n"
            '    messages=[{"role": "user", "content": "Hello!"}],\n'
            ")\n"
            "print(reply.choices[0].message.content)"
        ),
        "javascript": (
            'import OpenAI from "openai";\n\n'
            "const client = new OpenAI({\n"
            f'  baseURL: "{base_url}",\n'
            f"  apiKey: process.env.{KEY_VARIABLE},\n"
            "});\n"
            "const reply = await client.chat.completions.create({\n"
            f"  model: {js_model},\n"
            '  messages: [{ role: "user", content: "Hello!" }],\n'
            "});\n"
            "console.log(reply.choices[0].message.content);"
        ),
    }


def _embedding_snippets(base_url: str, model: str) -> dict[str, str]:
    body = json.dumps({"model": model, "input": ["a cat", "a dog"]})
    shell_body = body.replace("'", "'\\''")
    quoted = json.dumps(model)
    return {
        "curl": (
            f"curl {base_url}/embeddings \\\n"
            f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
            '  -H "Content-Type: application/json" \\\n'
            f"  -d '{shell_body}'"
        ),
        "python": (
            "import os\n"
            "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{base_url}", api_key=os.environ["{KEY_VARIABLE}"])\n'
            f'vectors = client.embeddings.create(model={quoted}, input=["a cat", "a dog"])\n'
            "print(len(vectors.data[0].embedding))"
        ),
        "javascript": (
            'import OpenAI from "openai";\n\n'
            "const client = new OpenAI({\n"
            f'  baseURL: "{base_url}",\n'
            f"  apiKey: process.env.{KEY_VARIABLE},\n"
            "});\n"
            "const vectors = await client.embeddings.create({\n"
            f"  model: {quoted},\n"
            '  input: ["a cat", "a dog"],\n'
            "});\n"
            "console.log(vectors.data[0].embedding.length);"
        ),
    }
