"""Usage rows shaped for charts and tables, budgets, and the copy-paste snippets."""

from __future__ import annotations

import ast
import json

from corral.portal.rendering import money, when
from corral.portal.snippets import snippets
from corral.portal.usage import budget_view, by_member, daily_series

ROWS = [
    {
        "day": "2026-11-26",
        "model": "b",
        "requests": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.5,
    },
    {
        "day": "2026-11-25",
        "model": "a",
        "requests": 2,
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "cost_usd": 0.25,
    },
    {
        "day": "2026-11-26",
        "model": "a",
        "requests": 3,
        "prompt_tokens": 4,
        "completion_tokens": 4,
        "cost_usd": 0.125,
    },
]


def test_daily_series_sorts_days_and_models_and_fills_gaps() -> None:
    series = daily_series(ROWS)
    assert series["days"] == ["2026-11-25", "2026-11-26"]
    assert series["models"] == ["a", "b"]
    assert series["tokens"] == {"a": [3, 8], "b": [0, 15]}
    assert series["cost"] == {"a": [0.25, 0.125], "b": [0.0, 0.5]}
    assert series["totals"] == {
        "requests": 6,
        "prompt_tokens": 15,
        "completion_tokens": 11,
        "cost_usd": 0.875,
    }


def test_daily_series_of_nothing() -> None:
    assert daily_series([])["days"] == []


def test_by_member_names_members_and_puts_the_costliest_first() -> None:
    rows = [
        {
            "user": "u1",
            "model": "a",
            "requests": 1,
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "cost_usd": 0.1,
        },
        {
            "user": "u2",
            "model": "a",
            "requests": 1,
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "cost_usd": 0.3,
        },
        {
            "user": None,
            "model": "a",
            "requests": 4,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
        },
    ]
    table = by_member(rows, {"u1": "Ada", "u2": "Grace"})
    assert [(r["member"], r["requests"]) for r in table] == [
        ("Grace", 1),
        ("Ada", 1),
        ("(service keys)", 4),
    ]


def test_budget_view_left_and_share_used() -> None:
    view = budget_view(
        {
            "budget": {
                "monthly_usd": 500.0,
                "spent_usd": 125.0,
                "resets_at": "2026-12-01T00:00:00Z",
            },
            "limits": {"rpm": 600, "tpm": None},
        }
    )
    assert view is not None
    assert (view["left_usd"], view["used_percent"]) == (375.0, 25)
    over = budget_view({"budget": {"monthly_usd": 10.0, "spent_usd": 12.0}})
    assert over is not None
    assert (over["left_usd"], over["used_percent"]) == (0.0, 100)
    unlimited = budget_view({"budget": {"monthly_usd": None, "spent_usd": 3.0}})
    assert unlimited is not None
    assert unlimited["left_usd"] is None
    assert budget_view(None) is None


def test_snippets_fill_in_the_base_url_and_never_a_key() -> None:
    got = snippets("https://ai.example.com/v1", "llama-3.1-8b")
    assert "curl https://ai.example.com/v1/chat/completions" in got["curl"]
    assert '"Authorization: Bearer $CORRAL_API_KEY"' in got["curl"]
    ast.parse(got["python"])  # the Python snippet is valid Python
    assert 'base_url="https://ai.example.com/v1"' in got["python"]
    assert 'baseURL: "https://ai.example.com/v1"' in got["javascript"]
    body = got["curl"].split("-d '", 1)[1].rstrip("'")
    assert json.loads(body)["model"] == "llama-3.1-8b"


def test_a_quote_in_a_model_name_cannot_break_out_of_the_shell_snippet() -> None:
    got = snippets("http://x/v1", "it's")
    assert "'\\''" in got["curl"]


def test_money_and_when() -> None:
    assert (money(0), money(1234.5), money(0.00012)) == ("$0.00", "$1,234.50", "$0.00012")
    assert when("2026-11-26T23:32:10Z") == "2026-11-26 23:32 UTC"
    assert when(None) == "—"


def test_an_embeddings_model_gets_embedding_calls_that_compile() -> None:
    got = snippets("http://x/v1", "all-minilm", "embeddings")
    assert got["curl"].startswith("curl http://x/v1/embeddings ")
    assert '"input": ["a cat", "a dog"]' in got["curl"]
    assert "client.embeddings.create" in got["python"]
    compile(got["python"], "snippet", "exec")
    assert "chat" not in got["javascript"]
